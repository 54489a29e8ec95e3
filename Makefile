# Set-up is part of every target: the venv is made and the project installed once;
# a re-run reinstalls only when pyproject.toml changed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SPEC ?= search_spaces/quick.yaml
PYTEST_ARGS ?=

export RAY_USAGE_STATS_ENABLED := 0
export MLFLOW_DISABLE_TELEMETRY := true
export RAY_CHDIR_TO_TRIAL_DIR := 0

.PHONY: install study train test test-all bench lint

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

study: install
	$(VENV)/bin/hcl-study study $(SPEC)

train: install
	$(VENV)/bin/hcl-study train --config configs/latent_class.yaml --out runs/train --overwrite

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest --run-slow $(PYTEST_ARGS)

bench: install
	for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

lint: install
	$(VENV)/bin/ruff check hcl_study analysis tests benchmarks
