# Two entry points: `make demo` runs the whole workflow on generated demo data, `make test` runs the tests.
# Both create .venv on first use (torch is pinned in pyproject.toml; pip takes it from the local wheel cache).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: demo test lint clean-demo

$(BIN)/fer: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/fer
	$(BIN)/snakemake --cores $(CORES) --configfile config.yaml
	@echo
	@echo "Tables: results/tables/ (Markdown and CSV). MLflow: $(BIN)/mlflow ui --backend-store-uri sqlite:///results/mlflow.db"

test: $(BIN)/fer
	$(BIN)/pytest -q

lint: $(BIN)/fer
	$(BIN)/ruff check fer tests workflow_scripts benchmarks
	$(BIN)/ruff format --check fer tests workflow_scripts benchmarks
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules

clean-demo:
	rm -rf data/demo results/* logs .snakemake
