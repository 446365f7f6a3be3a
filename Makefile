# pgbaton developer entry points.  See README.md.
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: all venv venv-full test test-fast test-ha test-pacemaker install-agent typecheck lint demo demo-ha demo-clean bench clean torture-replica torture-replica-ddl test-ha-torture

all: test

venv:
	@scripts/bootstrap.sh

# everything, including the Pacemaker/Corosync stack for the HA cluster test
venv-full:
	@scripts/bootstrap.sh --pacemaker

typecheck: venv
	$(VENV)/bin/mypy

lint: venv
	$(VENV)/bin/ruff check src tests bench

# The whole suite: type check, then every test against real servers
# (MariaDB, PostgreSQL 15 and 18, Pacemaker/Corosync), all started by the tests.
test: venv-full
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Pure unit tests only: no servers, a few seconds.
test-fast: venv
	$(VENV)/bin/pytest tests/unit tests/ha/test_decide.py tests/ha/test_parsing.py $(PYTEST_ARGS)

# HA agent against two real PostgreSQL instances, without a cluster
test-ha: venv
	$(VENV)/bin/pytest tests/ha -m "not pacemaker" $(PYTEST_ARGS)

# the Pacemaker + Corosync cluster test (root)
test-pacemaker: venv-full
	$(VENV)/bin/pytest tests/ha -m pacemaker $(PYTEST_ARGS)

# The HA agent's fault injection in the real two-node Pacemaker cluster (root):
# make test-ha-torture ITERATIONS=50 SEED=7
test-ha-torture: venv-full
	$(PY) scripts/ha_torture.py --seed $(SEED) --iterations $(ITERATIONS)

# The replica's torture run: seeded random workload, faults, exact oracle, both position modes.
# make torture-replica ITERATIONS=100 SEED=7
ITERATIONS ?= 50
SEED ?= 1
torture-replica: venv
	$(PY) -m tests.torture.replica --seed $(SEED) --iterations $(ITERATIONS)
	$(PY) -m tests.torture.replica --seed $(SEED) --iterations $(ITERATIONS) --gtid

# the same with random DDL mixed into the workload: make torture-replica-ddl ITERATIONS=100 SEED=7
torture-replica-ddl: venv
	$(PY) -m tests.torture.replica --seed $(SEED) --iterations $(ITERATIONS) --ddl
	$(PY) -m tests.torture.replica --seed $(SEED) --iterations $(ITERATIONS) --ddl --gtid

install-agent: venv
	$(PY) -m pgbaton ha install-agent

# The whole story in a private sandbox under .demo/ (under 3 minutes): the status page's URL,
# the MariaDB -> PostgreSQL replica, then PostgreSQL 15 -> 18 with clients through PgBouncer,
# switchover and switchback.  DEMO_ARGS="--keep-running" leaves it all running.
DEMO_ARGS ?=
demo: venv
	$(PY) -m pgbaton.sandbox.demo run --dir .demo $(DEMO_ARGS)

# The two-node Pacemaker cluster (network namespaces on this machine, root): kill -9 of the
# primary, the failover time, the old primary back as a standby.
demo-ha: venv-full
	$(PY) -m pgbaton.sandbox.demo_ha

demo-clean:
	@if [ -x $(PY) ]; then $(PY) -m pgbaton.sandbox.demo clean --dir .demo; else rm -rf .demo; fi

bench: venv
	$(PY) bench/replica_bench.py --dir .bench

clean: demo-clean
	rm -rf .bench .pytest_cache .mypy_cache
