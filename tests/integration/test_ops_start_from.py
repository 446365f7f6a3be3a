"""`replica start --from`: follow a source from a given position into tables loaded some other way."""

from __future__ import annotations

import psycopg
import pytest

from pgbaton.errors import PgbatonError
from pgbaton.mysql.snapshot import binlog_head
from pgbaton.replica.init import add_source
from pgbaton.replica.position import start_from
from pgbaton.replica.verify import verify
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until


def _load_by_hand(pg_db: str, mariadb: MariaDBServer, my_db: str) -> None:
    """The source and a copy made without pgbaton, at the same point."""
    my_exec(mariadb, my_db, ["CREATE TABLE t (id int PRIMARY KEY, v varchar(10))",
                             "INSERT INTO t VALUES (1, 'a'), (2, 'b')"])
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE TABLE app.t (id integer PRIMARY KEY, v varchar(10))")
        conn.execute("INSERT INTO app.t VALUES (1, 'a'), (2, 'b')")


@pytest.mark.parametrize("use_gtid", [False, True])
def test_start_from_position(pg_db: str, my_db: str, mariadb: MariaDBServer, use_gtid: bool) -> None:
    _load_by_hand(pg_db, mariadb, my_db)
    conn = mariadb.connect()
    try:
        head = binlog_head(conn)
    finally:
        conn.close()
    my_exec(mariadb, my_db, ["INSERT INTO t VALUES (3, 'c')", "UPDATE t SET v = 'A' WHERE id = 1"])
    cfg = make_config(pg_db, mariadb, my_db, use_gtid=use_gtid)
    add_source(cfg, "src")
    with pytest.raises(PgbatonError, match="expected FILE:POS"):
        start_from(cfg, "src", "nonsense")
    where = head.gtid if use_gtid else f"{head.file}:{head.pos}"
    assert where
    pos = start_from(cfg, "src", where)
    start_from(cfg, "src", where)                  # rerun: same result
    assert (pos.gtid == head.gtid) if use_gtid else (pos.file, pos.pos) == (head.file, head.pos)
    with ReplicaThread(cfg) as rt:
        my_exec(mariadb, my_db, ["DELETE FROM t WHERE id = 2"])
        wait_until(lambda: caught_up(cfg), 30, "catch up")
        assert rt.error is None
    assert all(r["equal"] for r in verify(cfg, "src"))
    with psycopg.connect(pg_db) as pg:
        assert pg.execute("SELECT id, v FROM app.t ORDER BY id").fetchall() == [(1, "A"), (3, "c")]
