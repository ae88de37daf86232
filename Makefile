# kicc-analysis — every target builds the environment it needs.
#   make study   build .venv, generate the demo repository if KICC_REPOSITORY is unset, run every notebook
#   make test    build .venv and run the whole test suite
#   make bench   run the benchmark scripts (results go to docs/benchmarks.md by hand)
#   make lab     start JupyterLab from .venv (kicc-analysis kernel; notebooks/*.py open as notebooks)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_repository
# make study's demo size: 300 of the published 522 patients keeps make study under 10 min on 2 cores (docs/demo.md);
# `make study DEMO_PATIENTS=522` builds the full-size cohort
DEMO_PATIENTS ?= 300
RESULTS ?= results
KICC_REPOSITORY ?=
# JupyterLab settings that live in the environment, not in the user's home: the jupytext helper writes the
# labconfig default-setting overrides read by jupyterlab_server from <prefix>/etc/jupyter/labconfig/.
LABCONFIG := $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json
LAB_PORT ?= 8888

.PHONY: env study test lint bench demo clean lab

env: $(STAMP) $(LABCONFIG)

$(STAMP): pyproject.toml requirements/constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 --display-name "kicc-analysis" >/dev/null
	touch $(STAMP)

# Double-click on a percent-format .py opens it as a notebook ("Jupytext Notebook" default viewer for Python).
$(LABCONFIG): $(STAMP)
	$(BIN)/jupytext-config --settings-file $(LABCONFIG) set-default-viewer python
	@test -s $(LABCONFIG)

lab: env
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) --ServerApp.root_dir=$(CURDIR) \
		--LabApp.default_url=/lab/tree/notebooks

demo: $(STAMP)
	$(BIN)/kicc demo $(DEMO_DIR)

study: env
ifeq ($(strip $(KICC_REPOSITORY)),)
	$(BIN)/kicc demo $(DEMO_DIR) --if-missing --patients $(DEMO_PATIENTS) --deid-problems
	$(BIN)/kicc study --repository $(DEMO_DIR) --output $(RESULTS)
else
	$(BIN)/kicc study --repository "$(KICC_REPOSITORY)" --output $(RESULTS)
endif

test: env
	KICC_NO_PROGRESS=1 $(BIN)/python -m pytest -n 2 --dist loadgroup -q

lint: $(STAMP)
	$(BIN)/ruff check kicc_analysis tests benchmarks
	$(BIN)/ruff format --check kicc_analysis tests benchmarks

bench: $(STAMP)
	for script in benchmarks/*_benchmark.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) $(RESULTS) .pytest_cache
