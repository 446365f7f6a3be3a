"""A short seeded fault-injection run in the real Pacemaker cluster (the long one: scripts/ha_torture.py)."""

from __future__ import annotations

import os

import pytest

from pgbaton.sandbox.ha_pacemaker import usable
from tests.ha.torture import run, table

pytestmark = [
    pytest.mark.pacemaker,
    pytest.mark.slow,
    pytest.mark.skipif(not usable(), reason="needs root, pacemaker, corosync, iproute2 and psql"),
]


def test_seeded_faults_lose_no_acknowledged_commit() -> None:
    # seed 12 draws pacemaker-restart, kill9-primary, kill9-standby and standby-disk-full
    seed = int(os.environ.get("PGBATON_TORTURE_SEED", "12"))
    iterations = int(os.environ.get("PGBATON_TORTURE_ITERATIONS", "4"))
    result = run(seed, iterations)
    print(table(result))
    assert len(result.outcomes) == iterations
    for o in result.outcomes:
        assert not o.error, f"seed {seed}, iteration {o.iteration} ({o.fault}): {o.error}"
        assert o.lost == 0, f"seed {seed}, iteration {o.iteration} ({o.fault}): {o.lost} commits lost"
        assert not o.loop, f"seed {seed}, iteration {o.iteration} ({o.fault}): {o.promotions} promotions"
        if o.fault == "standby-disk-full":
            assert "not enough free space" in o.detail
