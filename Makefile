# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench bench-backbone mosquitto clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m pip install -q --no-deps 'norfair>=2.1,<3'  # see pyproject.toml [bench]: its pins conflict, it runs fine
	touch $(STAMP)

install: $(STAMP)

mosquitto:
	@bash broker/ensure-mosquitto.sh

demo: install mosquitto
	$(VENV)/bin/footfall demo

test: install mosquitto
	$(PY) -m pytest -q

bench: bench-backbone

bench-backbone: install mosquitto
	$(PY) -m bench.backbone_bench --days 30

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
