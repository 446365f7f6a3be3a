"""Issue 3: DDL follows the replica.  One replica runs through the whole corpus
(tests/integration/ddl_corpus.py) on a live MariaDB; afterwards every table must
have the shape ``replica init`` would give it from the source as it is now, and
the data must equal the source's."""

from __future__ import annotations

from typing import Any

import psycopg
import pymysql

from pgbaton.config import Config
from pgbaton.mysql import introspect, pgddl, typemap
from pgbaton.replica.catalog import has_postgis
from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import errors, status, table_status
from pgbaton.replica.verify import verify
from pgbaton.sandbox.servers import MariaDBServer

from .ddl_corpus import SCENARIOS, ddl_count
from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until

_SHAPE = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity <> '',
       pg_get_expr(d.adbin, d.adrelid)
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = format('%%I.%%I', %s::text, %s::text)::regclass AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attname"""
_INDEXES = """
SELECT indexname, replace(indexdef, ' ON ' || quote_ident(schemaname) || '.', ' ON ')
  FROM pg_indexes WHERE schemaname = %s AND tablename = %s ORDER BY indexname"""


def _start(pg_db: str, my_db: str, mariadb: MariaDBServer, **opts: Any) -> Config:
    my_exec(mariadb, my_db, ["CREATE TABLE seed (id int PRIMARY KEY, v varchar(10))",
                             "INSERT INTO seed VALUES (1, 'a'), (2, 'b')"])
    cfg = make_config(pg_db, mariadb, my_db, **opts)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    return cfg


def _run(mariadb: MariaDBServer, my_db: str, steps: list[str]) -> None:
    """Each step in its own session; "NOSTRICT:" runs it with sql_mode = '' (MariaDB then
    clips values that do not fit instead of refusing the statement)."""
    for step in steps:
        text = step.replace("{db}", my_db).replace("{{", "{").replace("}}", "}")
        session = []
        if text.startswith("NOSTRICT:"):
            text, session = text[len("NOSTRICT:"):], ["SET SESSION sql_mode = ''"]
        try:
            my_exec(mariadb, my_db, [*session, text])
        except pymysql.MySQLError as exc:
            raise AssertionError(f"corpus step failed on the source: {step}: {exc}") from None


def _expected(cfg: Config, pg_db: str, mariadb: MariaDBServer, my_db: str) -> list[str]:
    """Build, in schema 'expect', the tables `replica init` would create from the source now."""
    my = pymysql.connect(**mariadb.connect_args(my_db))  # type: ignore[call-overload]
    try:
        tables = introspect.introspect(my, [my_db], lambda d, t: True)
    finally:
        my.close()
    src = cfg.source("src")
    with psycopg.connect(pg_db) as conn:
        conn.execute("DROP SCHEMA IF EXISTS expect CASCADE")
        conn.execute("CREATE SCHEMA expect")
        postgis = has_postgis(conn)
        for t in tables:
            opts = typemap.type_options(src, t.db, t.name, postgis)
            for stmt in pgddl.create_table_sql(t, "expect", opts) + pgddl.post_load_sql(t, "expect", opts):
                conn.execute(stmt)
    return sorted(t.name for t in tables)


def _shape(conn: psycopg.Connection, schema: str, table: str) -> tuple[list[Any], list[Any]]:
    cols = conn.execute(_SHAPE, (schema, table)).fetchall()
    idx = conn.execute(_INDEXES, (schema, table)).fetchall()
    return cols, idx


def _assert_shapes(cfg: Config, pg_db: str, mariadb: MariaDBServer, my_db: str) -> int:
    names = _expected(cfg, pg_db, mariadb, my_db)
    with psycopg.connect(pg_db) as conn:
        replicated = sorted(r[0] for r in conn.execute(
            "SELECT src_table FROM pgbaton.tables WHERE source = 'src' AND state = 'replicating'").fetchall())
        assert replicated == names
        bad = {}
        for name in names:
            got, want = _shape(conn, "app", name), _shape(conn, "expect", name)
            if got != want:
                bad[name] = {"got": sorted(set(got[0]) - set(want[0])) + sorted(set(got[1]) - set(want[1])),
                             "want": sorted(set(want[0]) - set(got[0])) + sorted(set(want[1]) - set(got[1]))}
        assert not bad, bad
    return len(names)


def _assert_data(cfg: Config) -> None:
    results = verify(cfg, "src")
    bad = [{"table": r["table"], **r.get("examples", {})} for r in results if not r["equal"]]
    assert not bad, bad


def test_corpus_follows_the_source(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    cfg = _start(pg_db, my_db, mariadb, batch_max_ms=20)
    with ReplicaThread(cfg) as rt:
        for steps in SCENARIOS.values():
            _run(mariadb, my_db, steps)
        wait_until(lambda: caught_up(cfg) and all(t["state"] == "replicating" for t in table_status(cfg, "src")),
                   180, "replica to catch up and re-copy what it must")
        assert rt.error is None, rt.error
        # the only history: tables re-copied because a statement changed rows without row events
        assert [e for e in errors(cfg, "src") if "re-copied" not in e["message"]] == []
        st = status(cfg, "src")[0]
        assert st["tables_disabled"] == 0 and st["tables_copying"] == 0
    assert rt.error is None
    n = _assert_shapes(cfg, pg_db, mariadb, my_db)
    assert n > 20
    _assert_data(cfg)
    assert ddl_count() >= 400


def test_rows_changed_without_events_are_recorded_and_recopied(pg_db: str, my_db: str,
                                                              mariadb: MariaDBServer) -> None:
    cfg = _start(pg_db, my_db, mariadb)
    with ReplicaThread(cfg) as rt:
        _run(mariadb, my_db, [
            "CREATE TABLE pt (id int NOT NULL, PRIMARY KEY (id)) PARTITION BY RANGE (id) "
            "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (100))",
            "INSERT INTO pt VALUES (1), (50)",
            "ALTER TABLE pt TRUNCATE PARTITION p0",       # changes rows without row events
            "INSERT INTO pt VALUES (2)",
            "ALTER TABLE seed ADD COLUMN w int",
            "INSERT INTO seed VALUES (3, 'c', 3)",
        ])
        wait_until(lambda: caught_up(cfg) and all(t["state"] == "replicating" for t in table_status(cfg, "src")),
                   60, "replica to catch up and re-copy pt")
        assert rt.error is None
        errs = errors(cfg, "src")
        assert len(errs) == 1, errs
        e = errs[0]
        assert e["kind"] == "ddl" and e["table"].endswith(".pt") and "PARTITION" in e["message"]
        assert "re-copied" in e["message"]
        assert "TRUNCATE PARTITION" in e["change"]["statement"] and e["change"]["position"]
        states = {t["source_table"].split(".")[1]: t for t in table_status(cfg, "src")}
        assert states["pt"]["state"] == "replicating" and "PARTITION" in states["pt"]["last_error"]
        assert status(cfg, "src")[0]["tables_disabled"] == 0
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT w FROM app.seed WHERE id = 3").fetchone() == (3,)
        assert conn.execute("SELECT array_agg(id ORDER BY id) FROM app.pt").fetchone() == ([2, 50],)
    _assert_data(cfg)


def test_on_unknown_ddl_stop_is_fatal(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    cfg = _start(pg_db, my_db, mariadb, on_unknown_ddl="stop")
    rt = ReplicaThread(cfg)
    rt.thread.start()
    try:
        _run(mariadb, my_db, ["ALTER TABLE seed ADD COLUMN ok int",
                              f"CREATE DATABASE `{my_db}_x`",
                              f"CREATE TABLE `{my_db}_x`.outside (id int PRIMARY KEY)",
                              # its definition is not tracked: not followed, fatal here
                              f"RENAME TABLE `{my_db}_x`.outside TO inside"])
        wait_until(lambda: not rt.thread.is_alive(), 30, "replica to stop on the DDL")
    finally:
        rt.stop()
        my_exec(mariadb, my_db, [f"DROP DATABASE IF EXISTS `{my_db}_x`"])
    assert rt.error is not None and "RENAME TABLE" in str(rt.error)
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'app' "
                            "AND table_name = 'seed' AND column_name = 'ok'").fetchone() == (1,)
