# pgbaton developer entry points.  See README.md.
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: all venv test test-fast typecheck lint demo demo-clean bench clean

all: test

venv:
	@scripts/bootstrap.sh

typecheck: venv
	$(VENV)/bin/mypy

lint: venv
	$(VENV)/bin/ruff check src tests bench

# The whole suite: type check, then every test against real servers.
test: venv
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Unit tests only: no servers, a few seconds.
test-fast: venv
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

# MariaDB -> PostgreSQL end to end in a private sandbox under .demo/
demo: venv
	$(PY) -m pgbaton.sandbox.demo run --dir .demo

demo-clean:
	@if [ -x $(PY) ]; then $(PY) -m pgbaton.sandbox.demo clean --dir .demo; else rm -rf .demo; fi

bench: venv
	$(PY) bench/replica_bench.py --dir .bench

clean: demo-clean
	rm -rf .bench .pytest_cache .mypy_cache
