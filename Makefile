# dlrwatch: one command per job. `make test` is what CI runs, on a fresh clone, with nothing preinstalled
# but Python 3.11+, make and access to the package registries.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# aws-sam-cli pins old boto3/pydantic: it lives in a venv of its own, never beside the code under test.
SAM_VENV := .tools/sam
SAM := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
SAM_VERSION := 1.170.0
export AWS_DEFAULT_REGION ?= eu-central-1

.PHONY: help install lint lint-template test test-unit test-component build clean

help:
	@echo "make test       lint everything, validate the template, build it, run every test tier"
	@echo "make lint       ruff and mypy on the code"
	@echo "make build      sam build (no Docker needed)"
	@echo "make clean      remove the venvs and build output"

$(BIN)/.installed: requirements-dev.txt layers/dlrwatch/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r layers/dlrwatch/requirements.txt -r requirements-dev.txt
	touch $@

$(SAM_VENV)/.installed:
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_VERSION)
	touch $@

install: $(BIN)/.installed $(SAM_VENV)/.installed

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

lint-template: $(BIN)/.installed $(SAM_VENV)/.installed
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint

build: $(SAM_VENV)/.installed
	$(SAM) build

test-unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests/unit -q

test-component: $(BIN)/.installed
	$(BIN)/python -m pytest tests/component -q

test: lint lint-template build $(BIN)/.installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .tools .aws-sam .pytest_cache .mypy_cache .ruff_cache
