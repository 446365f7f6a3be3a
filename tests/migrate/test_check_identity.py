"""`check` counts workers as PostgreSQL does, and a table with a unique NOT NULL index (no primary
key) gets REPLICA IDENTITY USING INDEX rather than FULL; real PostgreSQL 15 -> 18."""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg
from typer.testing import Result

from pgbaton.migrate import execute
from pgbaton.migrate.status import wait_synced
from tests.migrate.conftest import Migration


def _ident(dsn: str, table: str) -> tuple[str, str | None]:
    with psycopg.connect(dsn) as c:
        row = c.execute("SELECT c.relreplident::text, (SELECT i.indexrelid::regclass::text FROM pg_index i "
                        "WHERE i.indrelid = c.oid AND i.indisreplident) FROM pg_class c WHERE c.oid = %s::regclass",
                        (table,)).fetchone()
    assert row is not None
    return row[0], row[1]


def test_worker_limits_and_unique_index_identity(migration: Migration, run_cli: Callable[..., Result]) -> None:
    m = migration
    a = m.databases[0]
    with psycopg.connect(m.source.dsn(a), autocommit=True) as c:
        c.execute("CREATE TABLE coded (code text NOT NULL, v int); CREATE UNIQUE INDEX coded_code ON coded (code);"
                  "CREATE TABLE loose (v int); CREATE UNIQUE INDEX loose_v ON loose (v);"  # v may be NULL
                  "INSERT INTO coded SELECT 'c' || g, g FROM generate_series(1, 50) g")
    res = run_cli("check", m.name, "--json")
    assert res.exit_code == 0, res.output
    got = {(v["database"], v["item"]): v for v in json.loads(res.output)["verdicts"]}
    # sandbox: 16 logical replication workers, 4 sync workers per subscription, 3 databases
    workers = got[(None, "target.max_logical_replication_workers")]
    # a stream each and one database's 4 table copies at least (start queues the copies that do not fit)
    assert workers["status"] == "ok" and workers["detail"].startswith("16 >= 7 "), workers
    assert "3 of 3 database(s) copy at once" in workers["detail"], workers
    procs = got[(None, "target.max_worker_processes")]
    assert procs["detail"].startswith("32 >= 8 "), procs  # 7 workers and the launcher
    # PostgreSQL 18 holds an origin per apply worker and table copy (default 10); 15 has no such setting
    origins = got[(None, "target.max_active_replication_origins")]
    assert origins["status"] == "ok" and origins["detail"].startswith("10 >= 7 "), origins
    assert "1 of 3 database(s) copy at once; the others are queued" in origins["detail"], origins
    assert (None, "source.max_active_replication_origins") not in got
    keyless = got[(a, "tables_without_key")]
    assert "public.loose" in keyless["detail"] and "coded" not in keyless["detail"], keyless
    unique = got[(a, "tables_with_unique_index")]
    assert unique["status"] == "ok" and "public.coded (coded_code)" in unique["detail"], unique

    execute.start(m.config, m.name)
    wait_synced(m.config, m.name, timeout=60)
    assert _ident(m.source.dsn(a), "coded") == ("i", "coded_code")
    assert _ident(m.source.dsn(a), "loose") == ("f", None)
    assert _ident(m.target.dsn(a), "coded") == ("i", "coded_code")  # carried by the schema copy
    with psycopg.connect(m.source.dsn(a), autocommit=True) as c:
        c.execute("UPDATE coded SET v = -v WHERE v <= 10")
        c.execute("DELETE FROM coded WHERE v > 40")
    wait_synced(m.config, m.name, timeout=30)
    with psycopg.connect(m.target.dsn(a)) as t:
        assert t.execute("SELECT count(*), sum(v) FROM coded").fetchone() == (40, sum(range(11, 41)) - 55)
    execute.abort(m.config, m.name)
    assert _ident(m.source.dsn(a), "coded") == ("d", None)
    assert _ident(m.source.dsn(a), "loose") == ("d", None)
