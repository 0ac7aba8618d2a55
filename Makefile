# musicrec: `make all` sets up .venv, generates the default data and runs the six stages;
# `make test` runs the test suite. `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# implicit parallelises itself; a second BLAS thread pool makes ALS and recommend slower.
export OPENBLAS_NUM_THREADS ?= 1
MUSICREC := $(BIN)/musicrec
A := artifacts
STAMPS := $(A)/.config
RAW := data/generated/tracks.parquet
INSTALLED := $(VENV)/.installed

.PHONY: help install install-spark all test test-all lint typecheck format check bench bench-full \
        clean-artifacts clean \
        generate preprocess split features train predict evaluate report

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(INSTALLED) ## Create .venv and install musicrec with its test tools

install-spark: $(INSTALLED) ## Add the optional Spark engine (pyspark, ~500 MB; needs Java 17+)
	$(BIN)/pip install --quiet -e ".[dev,spark]"

all: evaluate ## Install, generate the default data and run every stage (only what is stale)

test: $(INSTALLED) ## Run the test suite (fast tests; see test-all)
	$(BIN)/pytest -q

test-all: $(INSTALLED) ## Run every test, slow ones included
	$(BIN)/pytest -q -m ""

lint: $(INSTALLED) ## Check style with ruff
	$(BIN)/ruff check stages musicrec_cli tests benchmarks

typecheck: $(INSTALLED) ## Check types with mypy (strict on stages/ and musicrec_cli/)
	$(BIN)/mypy

format: $(INSTALLED) ## Format with ruff
	$(BIN)/ruff format stages musicrec_cli tests benchmarks

check: lint typecheck test ## Lint, type-check and test (what CI runs, before make all)

bench: $(INSTALLED) ## Run the benchmarks against DuckDB, implicit and ranx (tens of minutes)
	$(BIN)/python benchmarks/bench_preprocess.py 1000000 10000000 --repeats 3
	$(BIN)/python benchmarks/bench_als.py
	$(BIN)/python benchmarks/bench_predict.py --scale 100000x100000 --scale 1000000x800000 \
	    --sample 20000 --small-sample 3000
	$(BIN)/python benchmarks/bench_evaluate.py 1000000 100000 100000 3

# the headline run's settings: ALS and popularity (BPR would take ~4 h at 800M), plain lists
HEADLINE = --set 'train.models=["popularity","als"]' --set 'predict.rerank_models=[]' \
           --set predict.similar_k=0

bench-full: $(INSTALLED) ## The headline run: 800M events through every stage (hours; SCALE=80 for 1/80)
	$(BIN)/python benchmarks/full_scale.py --scale $(or $(SCALE),1) $(HEADLINE)

clean-artifacts: ## Delete every stage's outputs
	rm -rf $(A)/0* $(A)/.0* $(A)/report $(STAMPS)

clean: clean-artifacts ## Delete outputs, generated data and .venv (never your data in data/raw)
	rm -rf data/generated $(VENV)

# Per-stage stamps: each holds the stage's settings and the sha256 of its code (the runner and
# every module it imports; musicrec_cli/codehash.py). `stamp-config` rewrites a stamp only when
# it changed, so editing [train] or stages/models/als.py reruns train, predict and evaluate, and
# nothing before them; editing a message in console.py reruns nothing.
SOURCES := $(shell find stages musicrec_cli -name '*.py')
$(STAMPS)/generate.json $(STAMPS)/preprocess.json $(STAMPS)/split.json $(STAMPS)/features.json $(STAMPS)/train.json \
$(STAMPS)/predict.json $(STAMPS)/evaluate.json &: musicrec.toml $(INSTALLED) $(SOURCES)
	$(MUSICREC) stamp-config $(STAMPS)

generate: $(RAW) ## Generate the built-in synthetic dataset into data/generated/ (never data/raw/)
$(RAW): $(STAMPS)/generate.json
	$(MUSICREC) generate

preprocess: $(A)/01_preprocess/manifest.json ## Clean, de-duplicate, aggregate and encode the raw log
$(A)/01_preprocess/manifest.json: $(RAW) $(STAMPS)/preprocess.json
	$(MUSICREC) preprocess

split: $(A)/02_split/manifest.json ## Temporal train/test split
$(A)/02_split/manifest.json: $(A)/01_preprocess/manifest.json $(STAMPS)/split.json
	$(MUSICREC) split

features: $(A)/03_features/manifest.json ## Confidence weights, user and item features
$(A)/03_features/manifest.json: $(A)/02_split/manifest.json $(STAMPS)/features.json
	$(MUSICREC) features

train: $(A)/04_train/manifest.json ## Fit the models
$(A)/04_train/manifest.json: $(A)/03_features/manifest.json $(STAMPS)/train.json
	$(MUSICREC) train

predict: $(A)/05_predict/manifest.json ## Top-N recommendations for every user
$(A)/05_predict/manifest.json: $(A)/04_train/manifest.json $(STAMPS)/predict.json
	$(MUSICREC) predict

evaluate: $(A)/06_evaluate/manifest.json ## Ranking metrics per model, printed as a table
$(A)/06_evaluate/manifest.json: $(A)/05_predict/manifest.json $(STAMPS)/evaluate.json
	$(MUSICREC) evaluate

report: $(A)/report/index.html ## HTML report: metric vs K, popularity, coverage, NDCG spread, data quality
$(A)/report/index.html: $(A)/06_evaluate/manifest.json musicrec_cli/report.py \
                                    musicrec_cli/plots.py
	$(MUSICREC) report
