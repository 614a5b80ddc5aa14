# Two entry points, each creating or reusing .venv: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.aimc-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch 2.13.0 first: a looser spec would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/aimc demo --out results/demo

test: $(STAMP)
	$(PY) -m pytest -q -x --durations=10

lint: $(STAMP)
	$(VENV)/bin/ruff check aimc tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bench_forward.py --out docs/results

clean:
	rm -rf $(VENV) results
