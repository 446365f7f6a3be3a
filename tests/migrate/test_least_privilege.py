"""Least privilege on real servers: pgbaton makes no role, and the role an earlier build made
for the streams into a frozen database (``pgbaton_apply``, LOGIN SUPERUSER) is handed over and
dropped by the next `migrate run` pass, with the stream back still carrying DDL and rows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from pgbaton.migrate import tend
from pgbaton.migrate.finish import finish
from pgbaton.migrate.names import object_name
from pgbaton.migrate.status import wait_synced
from pgbaton.migrate.switch_exec import FAULT_ENV, switchback, switchover
from tests.migrate.conftest import Migration, client_dsn, start_synced
from tests.migrate.test_finish import _leftovers

SCHEMA = "CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, amount int, note text);"


def _roles(m: Migration) -> list[str]:
    out = []
    for server in (m.source, m.target):
        with psycopg.connect(server.dsn()) as c:
            out += [f"{server.port}:{r[0]}" for r in c.execute(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE 'pgbaton%'").fetchall()]
    return out


def _owners(m: Migration, db: str) -> list[str]:
    with psycopg.connect(m.source.dsn(db)) as c:
        return [str(r[0]) for r in c.execute(
            "SELECT s.subowner::regrole::text FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
            "AND d.datname = current_database()").fetchall()]


def _wait_until(what: str, check: object, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_no_role_is_made_and_an_earlier_builds_role_is_handed_over(migration: Migration) -> None:
    m = migration
    start_synced(m, SCHEMA)
    assert switchover(m.config, m.name).switched  # method none: only the replication moves
    assert _roles(m) == []
    assert all(_owners(m, db) == ["postgres"] for db in m.databases)

    # what an earlier build left: its role owns the streams back and alone may write there
    with psycopg.connect(m.source.dsn(), autocommit=True) as c:
        c.execute("CREATE ROLE pgbaton_apply LOGIN SUPERUSER PASSWORD NULL")
        for db in m.databases:
            c.execute(f'ALTER ROLE pgbaton_apply IN DATABASE "{db}" SET default_transaction_read_only = off')
            c.execute(f'ALTER ROLE postgres IN DATABASE "{db}" RESET default_transaction_read_only')
    for db in m.databases:
        with psycopg.connect(m.source.dsn(db), autocommit=True) as c:
            c.execute("SET default_transaction_read_only = off")
            c.execute(f'ALTER SUBSCRIPTION "{object_name(m.name, db, "rev")}" OWNER TO pgbaton_apply')
    assert all(_owners(m, db) == ["pgbaton_apply"] for db in m.databases)

    done = tend.tend(m.config, m.name)
    assert "source: role pgbaton_apply" in done, done
    assert _roles(m) == []
    assert all(_owners(m, db) == ["postgres"] for db in m.databases)

    # the stream back, now running as the configured user, still applies DDL into the frozen source
    for db in m.databases:
        with psycopg.connect(m.target.dsn(db), autocommit=True) as t:
            t.execute("ALTER TABLE orders ADD COLUMN extra int")
            t.execute("INSERT INTO orders (amount, note, extra) VALUES (1, 'after the hand-over', 7)")

    def arrived() -> bool:
        for db in m.databases:
            with psycopg.connect(m.source.dsn(db)) as s:
                try:
                    if s.execute("SELECT count(*) FROM orders WHERE extra = 7").fetchone() != (1,):
                        return False
                except psycopg.errors.UndefinedColumn:
                    return False
        return True

    _wait_until("the DDL and the row on the source", arrived)
    for db in m.databases:  # clients other than pgbaton's user stay read-only there
        with psycopg.connect(client_dsn(m.source, db)) as s, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            s.execute("INSERT INTO orders (amount) VALUES (1)")
    finish(m.config, m.name)
    assert _leftovers(m) == []


def test_a_switch_freezes_the_old_side_for_pgbatons_user_too(migration: Migration, tmp_path: Path) -> None:
    """A switchback killed after it recorded its state, before it tidied, leaves the configured
    user's read-write setting in the source.  The next switchover must not freeze the source with
    it: until its stream back exists, the source is read-only for every session."""
    m = migration
    start_synced(m, SCHEMA)
    assert switchover(m.config, m.name).switched
    wait_synced(m.config, m.name, timeout=60)
    assert switchback(m.config, m.name).switched
    with psycopg.connect(m.source.dsn(), autocommit=True) as c:  # what the killed switchback left
        for db in m.databases:
            c.execute(f'ALTER ROLE postgres IN DATABASE "{db}" SET default_transaction_read_only = off')
    cfg_file = tmp_path / "pgbaton.yaml"
    cfg_file.write_text(yaml.safe_dump(m.config.model_dump(mode="json", exclude_none=True)))
    proc = subprocess.run([sys.executable, "-m", "pgbaton", "-c", str(cfg_file), "migrate", "switchover", m.name],
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, FAULT_ENV: "switchover:wait_applied:after"})
    assert proc.returncode == -9, proc.stdout + proc.stderr
    for db in m.databases:  # killed inside the pause: the source frozen, for pgbaton's user as well
        with psycopg.connect(m.source.dsn(db)) as s:
            assert s.execute("SHOW default_transaction_read_only").fetchone() == ("on",), db
    res = switchover(m.config, m.name)  # the rerun rolls it back
    assert not res.switched and res.rolled_back
    with psycopg.connect(m.source.dsn(m.databases[0]), autocommit=True) as s:
        s.execute("INSERT INTO orders (amount, note) VALUES (1, 'after the rollback')")  # writable again
    finish(m.config, m.name)
    assert _leftovers(m) == []
