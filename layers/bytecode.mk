# Included by each layer's Makefile. /opt is read-only on Lambda, so a layer without bytecode is compiled again on
# every cold start (the callback's init took 1.8x as long): it is written at build time, for the runtime's Python.
# unchecked-hash: the runtime trusts each .pyc without comparing its source's time, and the bytes do not depend on
# when the build ran (a fixed hash seed keeps set constants in one order too). -d: tracebacks name the files where
# the layer is mounted. Without that Python the layer still works, only slower to start: a warning says so.
LAMBDA_PYTHON ?= 3.13
# The repository's Makefile passes the interpreter it found (on PATH or in pyenv).
BYTECODE_PYTHON ?= $(shell command -v python$(LAMBDA_PYTHON) 2>/dev/null)

define compile_bytecode
	@if [ -z "$(BYTECODE_PYTHON)" ]; then \
		echo "warning: no python$(LAMBDA_PYTHON) found: the layer ships no bytecode and compiles on every cold start" >&2; \
	elif [ "$$($(BYTECODE_PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$(LAMBDA_PYTHON)" ]; then \
		echo "error: $(BYTECODE_PYTHON) is not Python $(LAMBDA_PYTHON)" >&2; exit 1; \
	else \
		PYTHONHASHSEED=0 "$(BYTECODE_PYTHON)" -m compileall -q -j 0 --invalidation-mode unchecked-hash \
			-d /opt/python "$(1)" >/dev/null; \
	fi
endef
