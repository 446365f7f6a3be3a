"""Transaction boundaries in the binlog: only committed transactions arrive, each whole and once.

Savepoints and ROLLBACK TO, ROLLBACK of a transaction, XA (two-phase, one phase,
interleaved, rolled back), CREATE TABLE ... SELECT, non-transactional tables inside
transactions, and transactions larger than a batch, each read first after a
restart (the case that lost rows before) and compared row by row with the source.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import psycopg
import pymysql
import pytest

from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import errors, status
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until

TABLES = {
    "k": "CREATE TABLE k (id int PRIMARY KEY, v int) ENGINE=InnoDB",
    "nk": "CREATE TABLE nk (a int, b varchar(20)) ENGINE=InnoDB",
    "m": "CREATE TABLE m (id int PRIMARY KEY, v int) ENGINE=MyISAM",
}


def source_rows(mariadb: MariaDBServer, db: str, table: str) -> Counter[tuple[Any, ...]]:
    conn = mariadb.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM `{table}`")
            return Counter(tuple(r) for r in cur.fetchall())
    finally:
        conn.close()


def target_rows(pg_dsn: str, schema: str, table: str) -> Counter[tuple[Any, ...]]:
    with psycopg.connect(pg_dsn) as conn:
        return Counter(tuple(r) for r in conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall())


def assert_same(mariadb: MariaDBServer, db: str, pg_dsn: str, tables: list[str], schema: str = "app") -> None:
    for t in tables:
        src, dst = source_rows(mariadb, db, t), target_rows(pg_dsn, schema, t)
        assert src == dst, f"{t}: missing {dict(src - dst)} extra {dict(dst - src)}"


def session(mariadb: MariaDBServer, db: str) -> pymysql.connections.Connection:
    return pymysql.connect(**mariadb.connect_args(db), autocommit=True)  # type: ignore[arg-type]


def run(conn: pymysql.connections.Connection, *statements: str) -> None:
    with conn.cursor() as cur:
        for st in statements:
            cur.execute(st)


@pytest.fixture(params=[False, True], ids=["filepos", "gtid"])
def replica(request: pytest.FixtureRequest, pg_db: str, my_db: str, mariadb: MariaDBServer):  # type: ignore[no-untyped-def]
    my_exec(mariadb, my_db, list(TABLES.values()))
    my_exec(mariadb, my_db, ["INSERT INTO k VALUES (1, 1), (2, 2)", "INSERT INTO nk VALUES (1, 'a'), (1, 'a')"])
    cfg = make_config(pg_db, mariadb, my_db, batch_max_rows=100, use_gtid=request.param)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    # a first run, so that what follows is the first thing read after a restart
    with ReplicaThread(cfg):
        wait_until(lambda: caught_up(cfg), 30, "first catch up")
    return cfg


def _catch_up(cfg, rt: ReplicaThread) -> None:  # type: ignore[no-untyped-def]
    wait_until(lambda: caught_up(cfg), 60, "replica to catch up")
    assert rt.error is None


def test_savepoint_first_after_restart(replica, mariadb: MariaDBServer, my_db: str, pg_db: str) -> None:  # type: ignore[no-untyped-def]
    c = session(mariadb, my_db)
    run(c, "BEGIN", "INSERT INTO k VALUES (10, 1)", "SAVEPOINT a", "INSERT INTO k VALUES (11, 1)",
        "INSERT INTO nk VALUES (2, 'gone')", "ROLLBACK TO SAVEPOINT a", "INSERT INTO k VALUES (12, 1)",
        "SAVEPOINT b", "UPDATE k SET v = 99 WHERE id = 1", "RELEASE SAVEPOINT b", "COMMIT")
    # a MyISAM write inside a transaction, rolled back to a savepoint: the MyISAM row stays
    run(c, "BEGIN", "INSERT INTO k VALUES (20, 1)", "SAVEPOINT s", "INSERT INTO k VALUES (21, 1)",
        "INSERT INTO m VALUES (1, 1)", "ROLLBACK TO s", "INSERT INTO k VALUES (22, 1)", "COMMIT")
    run(c, "BEGIN", "INSERT INTO k VALUES (30, 1)", "INSERT INTO m VALUES (2, 2)", "ROLLBACK")
    c.close()
    with ReplicaThread(replica) as rt:
        _catch_up(replica, rt)
    assert_same(mariadb, my_db, pg_db, ["k", "nk", "m"])
    assert status(replica, "src")[0]["errors"] == 0


def test_rollback_to_savepoint_in_a_transaction_larger_than_a_batch(replica, mariadb: MariaDBServer, my_db: str,  # type: ignore[no-untyped-def]
                                                                    pg_db: str) -> None:
    c = session(mariadb, my_db)
    values = ", ".join(f"({i}, {i})" for i in range(1000, 1400))
    more = ", ".join(f"({i}, 'x')" for i in range(500))
    with ReplicaThread(replica) as rt:
        run(c, "BEGIN", "INSERT INTO k VALUES (100, 1)", "SAVEPOINT a", f"INSERT INTO k VALUES {values}",
            f"INSERT INTO nk VALUES {more}", "UPDATE k SET v = -v WHERE id >= 1000", "ROLLBACK TO a",
            "INSERT INTO k VALUES (101, 1)", "COMMIT")
        _catch_up(replica, rt)
    c.close()
    assert_same(mariadb, my_db, pg_db, ["k", "nk"])


def test_xa_interleaved_committed_rolled_back_and_one_phase(replica, mariadb: MariaDBServer, my_db: str,  # type: ignore[no-untyped-def]
                                                            pg_db: str) -> None:
    x1, x2, x3, other = (session(mariadb, my_db) for _ in range(4))
    run(x1, "XA START 'x1'", "INSERT INTO k VALUES (200, 1)", "INSERT INTO nk VALUES (200, 'x1')",
        "XA END 'x1'", "XA PREPARE 'x1'")
    run(x2, "XA START 'x2'", "INSERT INTO k VALUES (201, 1)", "UPDATE k SET v = 7 WHERE id = 2",
        "XA END 'x2'", "XA PREPARE 'x2'")
    run(other, "INSERT INTO k VALUES (202, 1)")
    with ReplicaThread(replica) as rt:
        _catch_up(replica, rt)
        # prepared, not committed: not on the target, but kept
        assert target_rows(pg_db, "app", "k")[(200, 1)] == 0
        assert status(replica, "src")[0]["xa_prepared"] == 2
    # a restart between PREPARE and COMMIT keeps the prepared rows
    run(x3, "XA START 'x3'", "INSERT INTO k VALUES (203, 1)", "XA END 'x3'", "XA COMMIT 'x3' ONE PHASE")
    run(x2, "XA ROLLBACK 'x2'")
    run(other, "INSERT INTO k VALUES (204, 1)")
    run(x1, "XA COMMIT 'x1'")
    with ReplicaThread(replica) as rt:
        _catch_up(replica, rt)
    for c in (x1, x2, x3, other):
        c.close()
    assert_same(mariadb, my_db, pg_db, ["k", "nk"])
    assert errors(replica, "src") == []


def test_create_table_select_read_after_restart(replica, mariadb: MariaDBServer, my_db: str,  # type: ignore[no-untyped-def]
                                                pg_db: str) -> None:
    c = session(mariadb, my_db)
    run(c, "INSERT INTO k VALUES (300, 3)", "CREATE TABLE k2 (id int PRIMARY KEY, v int) SELECT id, v FROM k",
        "INSERT INTO k2 VALUES (301, 1)")
    c.close()
    with ReplicaThread(replica) as rt:
        _catch_up(replica, rt)
    assert_same(mariadb, my_db, pg_db, ["k", "k2"])


def test_prepare_read_twice_is_stored_once(replica, mariadb: MariaDBServer, my_db: str,  # type: ignore[no-untyped-def]
                                           pg_db: str) -> None:
    with psycopg.connect(pg_db) as conn:
        before = conn.execute("SELECT read_file, read_pos, read_gtid FROM pgbaton.sources").fetchone()
    x = session(mariadb, my_db)
    run(x, "XA START 'twice'", "INSERT INTO k VALUES (400, 1)", "XA END 'twice'", "XA PREPARE 'twice'")
    with ReplicaThread(replica) as rt:
        _catch_up(replica, rt)
    # read the PREPARE again, as `replica start --from` an earlier position would
    with psycopg.connect(pg_db) as conn:
        conn.execute("UPDATE pgbaton.sources SET read_file = %s, read_pos = %s, read_gtid = %s", before)
    with ReplicaThread(replica) as rt:
        _catch_up(replica, rt)
        assert status(replica, "src")[0]["xa_prepared"] == 1
    run(x, "XA COMMIT 'twice'")
    x.close()
    with ReplicaThread(replica) as rt:
        _catch_up(replica, rt)
    assert_same(mariadb, my_db, pg_db, ["k"])
