# Two commands do all set-up on a fresh machine: `make demo` and `make test`. System packages
# come from ONE list, scripts/install-system-deps.sh (CI's .ci/run only calls `make test`).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install system-deps demo test bench bench-backbone bench-beams bench-tracker bench-camera bench-summary mosquitto clean

$(STAMP): pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench,jit]'
	$(PY) -m pip install -q --no-deps 'norfair>=2.1,<3'  # see pyproject.toml [bench]: its pins conflict, it runs fine
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

mosquitto: system-deps

demo: install system-deps
	$(VENV)/bin/footfall demo

test: install system-deps
	$(PY) -m pytest -q

bench: bench-backbone bench-beams bench-tracker bench-camera bench-summary

bench-backbone: install system-deps
	$(PY) -m bench.backbone_bench --days 30

bench-beams: install
	$(PY) -m bench.beam_bench

bench-tracker: install
	$(PY) -m bench.tracker_bench

bench-camera: install
	$(PY) -m bench.camera_bench --accuracy --seeds 2

bench-summary: install
	$(PY) -m bench.summary_bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
