# The two commands of this project:
#   make report   set up .venv, run the pipeline on config/config.yaml, write reports/report.html
#   make test     set up .venv, lint (ruff, snakefmt, snakemake --lint) and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
CORES ?= all
# Another grid: make report CONFIG=config/paper.yaml (config/config.yaml is always read first).
CONFIG ?=

# Rules call the `flooding` command: the virtual environment's bin comes first on PATH.
export PATH := $(BIN):$(PATH)

.PHONY: setup report test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

report: setup
	$(BIN)/snakemake --cores $(CORES) $(if $(CONFIG),--configfile $(CONFIG))
	@tail -n 1 results/logs/aggregate.log
	@echo "Report: reports/report.html"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

test: lint
	$(BIN)/pytest

clean:
	rm -rf results/runs results/*.parquet reports/*.html reports/*.zip .snakemake
