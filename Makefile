# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench mosquitto firmware-test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

mosquitto:
	@bash broker/ensure-mosquitto.sh

demo: install mosquitto
	$(VENV)/bin/footfall demo

test: install mosquitto
	$(PY) -m pytest -q

bench: install mosquitto
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
