"""pgbaton killed (SIGKILL) at every switchover step (and at switchback steps), under load
through PgBouncer, then rerun.

Each kill lands right after a step did its work and before it was recorded as done: the
worst moment.  The rerun must roll back (killed before the switch) or finish (killed after
it, when the stream back is not subscribed yet); no client transaction may fail, and no row
may be lost on either side.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from pgbaton.migrate import execute
from pgbaton.migrate.finish import finish
from pgbaton.migrate.status import switch_history, wait_synced
from pgbaton.migrate.switch_exec import FAULT_ENV, switchback, switchover
from pgbaton.migrate.switchover import ORDER, Action
from tests.migrate.conftest import Migration
from tests.migrate.test_finish import _leftovers
from tests.migrate.test_switchover import (
    PGBOUNCER,
    BouncedMigration,
    Load,
    _assert_back_on_source,
    _fingerprint,
    _wait_reverse_applied,
    bounced,
)

pytestmark = pytest.mark.skipif(not os.path.exists(PGBOUNCER), reason="pgbouncer is not installed")


@pytest.fixture
def migration(migration: Migration) -> Iterator[BouncedMigration]:
    yield from bounced(migration)


def _killed(m: BouncedMigration, cfg_file: Path, point: str) -> None:
    """``migrate switchover|switchback`` in a process of its own, killed at ``point``."""
    env = {**os.environ, FAULT_ENV: point}
    command = point.split(":", 1)[0]
    proc = subprocess.run([sys.executable, "-m", "pgbaton", "-c", str(cfg_file), "migrate", command, m.name],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, (point, proc.returncode, proc.stderr[-2000:])


def test_kill_at_every_switchover_step_then_rerun(migration: BouncedMigration, tmp_path: Path) -> None:
    m = migration
    assert m.bouncer is not None
    cfg_file = tmp_path / "pgbaton.yaml"
    cfg_file.write_text(yaml.safe_dump(m.config.model_dump(mode="json", exclude_none=True)))
    # killed with the step done but not recorded, at every step before the clients move; and once
    # before anything happened
    points = ["pause_clients:before"] + [f"{a.value}:after" for a in ORDER[:ORDER.index(Action.point_switcher) + 1]]
    with Load([m.bouncer.dsn(db) for db in m.databases]) as load:
        execute.start(m.config, m.name)
        wait_synced(m.config, m.name, timeout=60)
        for point in points:
            load.phase = point
            _killed(m, cfg_file, f"switchover:{point}")
            res = switchover(m.config, m.name)  # the rerun rolls the half-done switchover back
            assert not res.switched and res.rolled_back, (point, res)
            _assert_back_on_source(m, load)
        # killed once the clients moved (the stream back not subscribed yet): the rerun finishes
        load.phase = "open_reverse"
        _killed(m, cfg_file, "switchover:open_reverse:after")
        res = switchover(m.config, m.name)
        assert res.switched and res.steps == ["open_reverse", "drop_forward", "record_state"], res
        load.phase = "after"
        done, deadline = load.done, time.monotonic() + 10
        while load.done < done + 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert load.done >= done + 50  # clients carry on, on the target
        _wait_reverse_applied(m)
        # the switchback is the same procedure the other way: killed at a few steps, rolled back
        for point in ("freeze_source:after", "copy_sequences:after", "create_reverse:after",
                      "point_switcher:after"):
            load.phase = f"back:{point}"
            _killed(m, cfg_file, f"switchback:{point}")
            res = switchback(m.config, m.name)
            assert not res.switched and res.rolled_back, (point, res)
            assert f"port={m.target.port}" in m.bouncer.ini.read_text()
            done, deadline = load.done, time.monotonic() + 10
            while load.done < done + 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert load.done >= done + 20, point  # clients resumed, still on the target
        load.phase = "after"
    assert load.failures == []
    assert f"port={m.target.port}" in m.bouncer.ini.read_text()
    _wait_reverse_applied(m)
    for db in m.databases:
        assert _fingerprint(m.source.dsn(db)) == _fingerprint(m.target.dsn(db))
        with psycopg.connect(m.target.dsn(db)) as t:
            phases = {r[0] for r in t.execute("SELECT DISTINCT note FROM orders")}
        assert {"before", "after"} <= phases  # rows from before the kills and after the switch both kept
    # every interrupted switch is closed in the history by its rerun: rolled back, or finished
    outcomes = [(h["direction"], h["outcome"]) for h in switch_history(m.config, m.name, limit=100)]
    assert outcomes == [("switchover", "rolled_back")] * len(points) + [("switchover", "complete")] + [
        ("switchback", "rolled_back")] * 4, outcomes
    finish(m.config, m.name)
    assert _leftovers(m) == []
