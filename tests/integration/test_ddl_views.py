"""Issue 11: views are carried (sqlglot, MySQL to PostgreSQL) at init and follow CREATE /
ALTER / DROP VIEW; table changes under a view keep it; triggers, routines and events are
named as not carried."""

from __future__ import annotations

from typing import Any

import psycopg

from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import errors, table_status
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until
from .test_ddl_replica import _assert_data, _run


def _my_rows(mariadb: MariaDBServer, db: str, query: str) -> list[tuple[Any, ...]]:
    conn = mariadb.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def _pg_rows(pg_db: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_db) as conn:
        return [tuple(r) for r in conn.execute(query).fetchall()]


def test_views_carried_and_followed(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    my_exec(mariadb, my_db, [
        "CREATE TABLE t1 (id int PRIMARY KEY, a int, s varchar(10))",
        "CREATE TABLE t2 (id int PRIMARY KEY, t1_id int, n varchar(10))",
        "INSERT INTO t1 VALUES (1, 10, 'x'), (2, 20, NULL), (3, 30, 'z')",
        "INSERT INTO t2 VALUES (1, 1, 'one'), (2, 3, 'three')",
        "CREATE VIEW v1 AS SELECT id, a * 2 AS a2, s FROM t1 WHERE a >= 10",
        "CREATE VIEW v2 AS SELECT v1.id, concat(v1.s, '-', t2.n) AS label FROM v1 JOIN t2 ON t2.t1_id = v1.id",
        "CREATE VIEW v3 AS SELECT * FROM information_schema.ENGINES",
        "CREATE TRIGGER trg BEFORE INSERT ON t1 FOR EACH ROW SET NEW.s = upper(NEW.s)",
        "CREATE PROCEDURE proc1() SELECT 1",
        "CREATE EVENT ev1 ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1",
    ])
    cfg = make_config(pg_db, mariadb, my_db, batch_max_ms=20)
    add_source(cfg, "src")
    result = init_replica(cfg, "src", show_progress=False)
    text = "\n".join(result.warnings)
    assert f"triggers not carried to PostgreSQL (MySQL code; write them again there if needed): {my_db}.trg" in text
    assert f"{my_db}.proc1" in text and f"{my_db}.ev1" in text
    assert f"view {my_db}.v3 not carried" in text and "not replicated" in text
    for v, order in (("v1", "id"), ("v2", "id")):
        assert _pg_rows(pg_db, f"SELECT * FROM app.{v} ORDER BY {order}") == \
            _my_rows(mariadb, my_db, f"SELECT * FROM {v} ORDER BY {order}")
    with ReplicaThread(cfg) as rt:
        _run(mariadb, my_db, [
            "ALTER TABLE t1 MODIFY a bigint",                 # a column views read: they are kept
            "INSERT INTO t1 VALUES (4, 5000000000, 'w')",
            "CREATE VIEW v4 AS SELECT s, count(*) AS n, sum(a) AS total FROM t1 GROUP BY s",
            "ALTER VIEW v1 AS SELECT id, a + 1 AS a2, s FROM t1",
            "CREATE OR REPLACE VIEW v5 AS SELECT id FROM t2 WHERE n LIKE 't%'",
            "DROP VIEW v5",
            "ALTER TABLE t2 ADD COLUMN extra int",
            "INSERT INTO t2 VALUES (3, 4, 'four', 1)",
        ])
        wait_until(lambda: caught_up(cfg) and all(t["state"] == "replicating" for t in table_status(cfg, "src")),
                   60, "replica to catch up")
        assert rt.error is None, rt.error
        assert errors(cfg, "src") == []
    for v in ("v1", "v2", "v4"):          # NULLs sort differently: compare sorted on the client
        assert sorted(_pg_rows(pg_db, f"SELECT * FROM app.{v}"), key=repr) == \
            sorted(_my_rows(mariadb, my_db, f"SELECT * FROM {v}"), key=repr), v
    assert _pg_rows(pg_db, "SELECT to_regclass('app.v5') IS NULL") == [(True,)]
    _assert_data(cfg)
