"""Switchback under load through PgBouncer: the clients go back to the source, the forward stream is set up again."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from typer.testing import Result

from pgbaton.config import ClusterConfig
from pgbaton.errors import PgbatonError
from pgbaton.migrate import execute, tend
from pgbaton.migrate.status import switch_history, wait_synced
from pgbaton.migrate.switch_exec import switchback, switchover
from pgbaton.migrate.switchers import switcher_for
from pgbaton.migrate.switchover import Action
from pgbaton.sandbox.servers import PostgresServer
from tests.migrate.conftest import Migration, client_dsn
from tests.migrate.test_finish import _leftovers
from tests.migrate.test_switchover import (
    PGBOUNCER,
    BouncedMigration,
    Crash,
    CrashAfterPointing,
    Load,
    _fingerprint,
    _objects,
    bounced,
)


@pytest.fixture
def migration(migration: Migration) -> Iterator[BouncedMigration]:
    """test_switchover's: the migration with its clients through a PgBouncer of this test."""
    yield from bounced(migration)


@pytest.mark.skipif(not os.path.exists(PGBOUNCER), reason="pgbouncer is not installed")
def test_switchback_under_load_through_pgbouncer(
        migration: BouncedMigration, run_cli: Callable[..., Result]) -> None:
    m = migration
    assert m.bouncer is not None
    with Load([m.bouncer.dsn(db) for db in m.databases]) as load:
        execute.start(m.config, m.name)
        wait_synced(m.config, m.name, timeout=40)
        assert run_cli("switchback", m.name).exit_code == 1  # not switched over: refused, nothing touched
        assert switchover(m.config, m.name).switched
        load.phase = "on target"
        wait_synced(m.config, m.name, timeout=30)  # now the reverse stream: its workers running, caught up
        # a failed switchback is rolled back like a failed switchover: clients stay on the target
        with pytest.raises(PgbatonError, match="switchback of .* failed at point_switcher.*"
                                               "drop_reverse, unfreeze_source, resume_clients"):
            switchback(m.config, m.name, fail_at=Action.point_switcher)
        assert f"port={m.target.port}" in m.bouncer.ini.read_text()
        assert _objects(m, "fwd") == [] and len(_objects(m, "rev")) == 3 * len(m.databases)
        for db in m.databases:
            with psycopg.connect(m.target.dsn(db), autocommit=True) as t:
                t.execute("INSERT INTO events (payload) VALUES ('{\"direct\": 1}')")  # writable again
        wait_synced(m.config, m.name, timeout=30)  # the reverse stream carries on
        res = run_cli("switchback", m.name, "--json")
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)
        load.phase = "back"
        before = load.done
        time.sleep(0.5)
        assert load.done > before + 10  # clients go on, on the source again
    print(f"\nswitchback: {load.done} transactions, longest client stall {load.longest * 1000:.0f} ms, "
          f"paused {out['paused_seconds'] * 1000:.0f} ms; steps {out['step_seconds']}")
    assert load.failures == []
    assert out["switched"] and out["direction"] == "switchback" and out["steps"] == [a.value for a in Action]
    assert f"port={m.source.port}" in m.bouncer.ini.read_text()
    # the switch history: the switchover, the failed switchback, the switchback, each with its pause
    history = switch_history(m.config, m.name)
    assert [(h["direction"], h["outcome"]) for h in history] == [
        ("switchover", "complete"), ("switchback", "rolled_back"), ("switchback", "complete")], history
    assert history[-1]["paused_seconds"] == out["paused_seconds"] and history[-1]["ended_at"]
    assert "failed at point_switcher" in history[1]["reason"] and history[1]["paused_seconds"] > 0
    assert set(history[-1]["databases"]) == set(m.databases)
    assert all({"read_source_lsn", "create_reverse", "open_reverse"} <= set(steps)
               for steps in history[-1]["databases"].values()), history[-1]
    assert _objects(m, "rev") == []
    assert len(_objects(m, "fwd")) == 3 * len(m.databases)  # forward stream re-established
    rows = json.loads(run_cli("status", m.name, "--json").output)["databases"]
    assert all(r["direction"] == "forward" and r["state"] == "streaming" for r in rows), rows
    wait_synced(m.config, m.name, timeout=30)
    for db in m.databases:
        with psycopg.connect(m.source.dsn(db)) as s:
            row = s.execute("SELECT count(*) FROM orders WHERE note = 'on target'").fetchone()
            assert row is not None and row[0] > 0  # written on the target, carried back by the reverse stream
        assert _fingerprint(m.source.dsn(db)) == _fingerprint(m.target.dsn(db))
        with psycopg.connect(client_dsn(m.target, db)) as t, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            t.execute("INSERT INTO orders (amount) VALUES (1)")  # the cluster left behind is frozen
    again = run_cli("switchback", m.name, "--json")
    assert again.exit_code == 0 and json.loads(again.output)["steps"] == []
    # `migrate run` passes repair the forward stream but leave the state alone (they used to set it
    # back to `streaming`, after which abort was not refused and failed on the frozen target)
    for _ in range(2):
        tend.tend(m.config, m.name)
    status = json.loads(run_cli("status", m.name, "--json").output)
    assert status["state"] == "switched_back", status
    with pytest.raises(PgbatonError, match=r"switched over and back.*migrate finish"):
        execute.abort(m.config, m.name)
    res = run_cli("finish", m.name, "--yes")
    assert res.exit_code == 0, res.output
    assert _leftovers(m) == []
    for db in m.databases:
        with psycopg.connect(m.source.dsn(db), autocommit=True) as s:
            s.execute("INSERT INTO orders (amount, note) VALUES (1, 'after finish')")  # the primary writes


class FailAfterPointing(CrashAfterPointing):
    """The first point_to rewrites the entries, then fails; the rollback's point_to works."""
    failed = False

    def point_to(self, cluster: ClusterConfig, dbs: list[str]) -> None:
        self.inner.point_to(cluster, dbs)
        if not self.failed:
            self.failed = True
            raise PgbatonError("the switcher failed after rewriting its entries")


def _frozen(server: PostgresServer, db: str) -> bool:
    with psycopg.connect(client_dsn(server, db), autocommit=True) as c:
        try:
            c.execute("INSERT INTO orders (amount, note) VALUES (1, 'probe')")
        except psycopg.errors.ReadOnlySqlTransaction:
            return True
        return False


@pytest.mark.skipif(not os.path.exists(PGBOUNCER), reason="pgbouncer is not installed")
def test_switchback_rolled_back_inside_point_keeps_the_source_frozen(migration: BouncedMigration,
                                                                    run_cli: Callable[..., Result]) -> None:
    """point_switcher of a switchback unfreezes the source before it rewrites the entries; a
    rollback from inside it (a failing switcher, or a crash and a rerun) must freeze it again,
    or it takes writes that the target, where the clients stay, never sees."""
    m = migration
    assert m.bouncer is not None
    execute.start(m.config, m.name)
    wait_synced(m.config, m.name, timeout=40)
    assert switchover(m.config, m.name).switched
    wait_synced(m.config, m.name, timeout=30)
    assert all(_frozen(m.source, db) for db in m.databases)
    cfg = m.config.migration(m.name)

    with pytest.raises(PgbatonError, match="failed at point_switcher.*rolled back"):
        switchback(m.config, m.name, switcher=FailAfterPointing(switcher_for(cfg)))
    assert f"port={m.target.port}" in m.bouncer.ini.read_text()
    assert [db for db in m.databases if not _frozen(m.source, db)] == []
    assert [db for db in m.databases if _frozen(m.target, db)] == []

    with pytest.raises(Crash):  # the process dies there: the rerun rolls back
        switchback(m.config, m.name, switcher=CrashAfterPointing(switcher_for(cfg)))
    res = run_cli("switchback", m.name, "--json")
    assert res.exit_code == 1, res.output
    assert "resume_clients" in json.loads(res.output)["rolled_back"]
    assert f"port={m.target.port}" in m.bouncer.ini.read_text()
    assert [db for db in m.databases if not _frozen(m.source, db)] == []
    assert [db for db in m.databases if _frozen(m.target, db)] == []

    wait_synced(m.config, m.name, timeout=30)  # the reverse stream still carries the target's writes
    res = run_cli("switchback", m.name, "--json")
    assert res.exit_code == 0, res.output
    assert f"port={m.source.port}" in m.bouncer.ini.read_text()
    assert [db for db in m.databases if _frozen(m.source, db)] == []
