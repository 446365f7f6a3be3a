"""After a switchover: `status` shows the reverse stream; `finish` removes everything on both sides."""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg
import pytest
from typer.testing import Result

from pgbaton.migrate.catalog import Catalog
from pgbaton.migrate.lifecycle import State
from pgbaton.migrate.switch_exec import switchover
from tests.migrate.conftest import Migration, start_synced
from tests.migrate.test_switchover import (
    SCHEMA,
    _wait_reverse_applied,
)


def _leftovers(m: Migration) -> list[str]:
    """Anything pgbaton could have left for this migration, on both clusters."""
    found = []
    for server in (m.source, m.target):
        with psycopg.connect(server.dsn()) as c:
            found += [f"{server.port}:slot:{r[0]}" for r in c.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s "
                "OR database = ANY(%s)", (f"pgbaton\\_{m.name}\\_%", m.databases)).fetchall()]
            found += [f"{server.port}:role setting:{r[0]}" for r in c.execute(
                "SELECT d.datname FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                "WHERE s.setrole <> 0 AND d.datname = ANY(%s)", (m.databases,)).fetchall()]
            found += [f"{server.port}:role:{r[0]}" for r in c.execute(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE 'pgbaton%'").fetchall()]
            # an origin whose subscription is gone (DROP SUBSCRIPTION drops its own)
            found += [f"{server.port}:origin:{r[0]}" for r in c.execute(
                "SELECT roname FROM pg_replication_origin o WHERE NOT EXISTS "
                "(SELECT 1 FROM pg_subscription s WHERE o.roname = 'pg_' || s.oid)").fetchall()]
            found += [f"{server.port}:catalog schema:{r[0]}" for r in c.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pgbaton%'").fetchall()]
        with psycopg.connect(server.dsn()) as c:
            present = [r[0] for r in c.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)",
                                               (m.databases,)).fetchall()]  # abort drops the target's
        for db in present:
            with psycopg.connect(server.dsn(db)) as c:
                for what, query in (("pub", "SELECT pubname FROM pg_publication"),
                                    ("sub", "SELECT subname FROM pg_subscription s JOIN pg_database d ON "
                                            "d.oid = s.subdbid AND d.datname = current_database()"),
                                    ("evt", "SELECT evtname FROM pg_event_trigger"),
                                    ("ns", "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pgbaton%'"),
                                    ("rel", "SELECT relname FROM pg_class WHERE relname LIKE 'pgbaton%'"),
                                    ("fn", "SELECT proname FROM pg_proc WHERE proname LIKE 'pgbaton%'")):
                    found += [f"{server.port}:{db}:{what}:{r[0]}" for r in c.execute(query).fetchall()]
    with psycopg.connect(m.target.dsn(), autocommit=True) as t:
        if Catalog(t, "pgbaton_migrate", m.name).state() is not State.not_started:
            found.append("catalog row")
    return found


def _privileges(m: Migration) -> list[str]:
    """pgbaton's role and role settings on both clusters (none while nothing is switched)."""
    found = []
    for server in (m.source, m.target):
        with psycopg.connect(server.dsn()) as c:
            found += [f"{server.port}:role:{r[0]}:login={r[1]}" for r in c.execute(
                "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'pgbaton%'").fetchall()]
            found += [f"{server.port}:role setting:{r[0]}" for r in c.execute(
                "SELECT d.datname FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                "WHERE s.setrole <> 0 AND d.datname = ANY(%s)", (m.databases,)).fetchall()]
    return found


def _replident(dsn: str) -> str:
    with psycopg.connect(dsn) as c:
        row = c.execute("SELECT relreplident::text FROM pg_class WHERE oid = 'events'::regclass").fetchone()
    assert row is not None
    return str(row[0])


def test_status_shows_reverse_stream_then_finish(
        migration: Migration, run_cli: Callable[..., Result]) -> None:
    m = migration
    start_synced(m, SCHEMA, timeout=40)
    assert switchover(m.config, m.name).switched  # method none: only the replication moves
    for db in m.databases:
        with psycopg.connect(m.target.dsn(db), autocommit=True) as t:
            t.execute("INSERT INTO orders (amount, note) VALUES (2, 'on target')")
    with psycopg.connect(m.target.dsn(), autocommit=True) as t:
        written = t.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    assert written is not None
    _wait_reverse_applied(m)

    res = run_cli("status", m.name, "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["databases"]
    assert [r["database"] for r in rows] == m.databases
    with psycopg.connect(m.target.dsn()) as t:
        for r in rows:
            assert r["direction"] == "reverse" and r["state"] == "streaming", r
            assert r["tables_synced"] == r["tables_total"] == 3 and r["errors"] == []
            # measured on the target (the reverse stream's publisher) against what the source applied
            check = t.execute("SELECT %s::pg_lsn >= %s::pg_lsn, %s::pg_lsn >= %s::pg_lsn, "
                              "pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint",
                              (r["source_lsn"], written[0], r["confirmed_flush_lsn"], written[0],
                               r["source_lsn"], r["confirmed_flush_lsn"])).fetchone()
            assert check is not None and check[0] and check[1] and check[2] == r["lag_bytes"] >= 0
            assert r["lag_seconds"] is None or r["lag_seconds"] >= 0
    text = run_cli("status", m.name)
    assert text.exit_code == 0 and "(reverse): streaming, tables 3/3" in text.output

    assert _replident(m.source.dsn(m.databases[0])) == "f"
    res = run_cli("finish", m.name, "--yes", "--json")
    assert res.exit_code == 0, res.output
    removed = json.loads(res.output)["removed"]
    assert any(":" in x and "slot pgbaton_" in x for x in removed) and removed[-1].startswith("catalog")
    assert _leftovers(m) == []
    for db in m.databases:
        assert _replident(m.source.dsn(db)) == "d" and _replident(m.target.dsn(db)) == "d"
        with psycopg.connect(m.target.dsn(db), autocommit=True) as t:
            t.execute("INSERT INTO orders (amount, note) VALUES (3, 'after finish')")  # the primary writes
        with psycopg.connect(m.source.dsn(db)) as s, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            s.execute("INSERT INTO orders (amount) VALUES (1)")  # the old cluster stays read-only
    again = run_cli("finish", m.name, "--yes", "--json")
    assert again.exit_code == 0 and json.loads(again.output)["removed"] == []
