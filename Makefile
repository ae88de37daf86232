# kicc-analysis — every target builds the environment it needs.
#   make study   build .venv, generate the demo repository if KICC_REPOSITORY is unset, run every notebook
#   make test    build .venv and run the whole test suite
#   make bench   run the benchmark scripts (results go to docs/benchmarks.md by hand)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_repository
RESULTS ?= results
KICC_REPOSITORY ?=

.PHONY: env study test lint bench demo clean

env: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 --display-name "kicc-analysis" >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kicc demo $(DEMO_DIR)

study: $(STAMP)
ifeq ($(strip $(KICC_REPOSITORY)),)
	$(BIN)/kicc demo $(DEMO_DIR) --if-missing
	$(BIN)/kicc study --repository $(DEMO_DIR) --output $(RESULTS)
else
	$(BIN)/kicc study --repository "$(KICC_REPOSITORY)" --output $(RESULTS)
endif

test: $(STAMP)
	KICC_NO_PROGRESS=1 $(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check kicc_analysis tests benchmarks

bench: $(STAMP)
	for script in benchmarks/*_benchmark.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) $(RESULTS) .pytest_cache
