"""`migrate check` against real PostgreSQL 15 -> 18."""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg
from typer.testing import Result

from tests.migrate.conftest import Migration


def test_check_gives_a_verdict_per_item(migration: Migration, run_cli: Callable[..., Result]) -> None:
    m = migration
    a, b, c = m.databases
    with psycopg.connect(m.source.dsn(a), autocommit=True) as conn:
        conn.execute("CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE loose (v int);"
                     "CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY)")
    with psycopg.connect(m.source.dsn(b), autocommit=True) as conn:
        conn.execute("SELECT lo_create(0)")
    with psycopg.connect(m.target.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{c}"')
    with psycopg.connect(m.target.dsn(c), autocommit=True) as conn:
        conn.execute("CREATE TABLE already_here (id int)")

    res = run_cli("check", m.name, "--json")
    assert res.exit_code == 1, res.output
    data = json.loads(res.output)
    assert data["ok"] is False
    got = {(v["database"], v["item"]): v for v in data["verdicts"]}
    assert got[(None, "major_version")]["status"] == "ok" and "source 15, target 18" in got[(None, "major_version")][
        "detail"]
    assert got[(None, "source.wal_level")]["status"] == "ok"
    for side in ("source", "target"):
        for item in ("max_replication_slots", "max_wal_senders", "max_worker_processes", "privileges"):
            assert got[(None, f"{side}.{item}")]["status"] in ("ok", "warn")
    assert got[(a, "tables_without_key")]["status"] == "warn" and "public.loose" in got[(a, "tables_without_key")][
        "detail"]
    assert got[(a, "unlogged_tables")]["status"] == "warn"
    assert got[(a, "target_database")]["status"] == "ok"
    assert got[(b, "large_objects")]["status"] == "fail"
    assert got[(c, "target_database")]["status"] == "fail"
    assert got[(a, "extensions")]["status"] == "ok"

    text = run_cli("check", m.name)
    assert text.exit_code == 1 and "NOT ready" in text.output and f"FAIL  {b}: large_objects" in text.output
