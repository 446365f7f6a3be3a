"""Columns named like the aliases replay's SQL uses cannot change what it means."""

from __future__ import annotations

from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import status
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until
from .test_replica_txn import assert_same, run, session

SCHEMA = [
    # keyless: rows matched as whole rows
    "CREATE TABLE kl (t int, r varchar(10), l int, net int, d int, m int, ev int, victims int)",
    "CREATE TABLE p (c int PRIMARY KEY, k int, m int, n int)",
    """CREATE TABLE ch (o int PRIMARY KEY, rid int, c int, k int, n int,
       CONSTRAINT ch_p FOREIGN KEY (c) REFERENCES p (c) ON DELETE CASCADE ON UPDATE CASCADE)""",
    """CREATE TABLE ch2 (m int, c int,
       CONSTRAINT ch2_p FOREIGN KEY (c) REFERENCES p (c) ON DELETE SET NULL ON UPDATE SET NULL)""",
]


def test_alias_like_column_names(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    my_exec(mariadb, my_db, SCHEMA)
    my_exec(mariadb, my_db, ["INSERT INTO kl VALUES (1, 'a', 1, 1, 1, 1, 1, 1), (1, 'a', 1, 1, 1, 1, 1, 1)",
                             "INSERT INTO p VALUES (1, 1, 1, 1), (2, 2, 2, 2)",
                             "INSERT INTO ch VALUES (10, 1, 1, 1, 1), (20, 2, 2, 2, 2)",
                             "INSERT INTO ch2 VALUES (1, 1), (2, 2)"])
    cfg = make_config(pg_db, mariadb, my_db)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    c = session(mariadb, my_db)
    with ReplicaThread(cfg) as rt:
        run(c, "DELETE FROM kl LIMIT 1", "UPDATE kl SET r = 'b' LIMIT 1",
            "INSERT INTO kl VALUES (2, NULL, 2, 2, 2, 2, 2, 2)")
        run(c, "DELETE FROM p WHERE c = 1", "UPDATE p SET c = 3 WHERE c = 2")
        wait_until(lambda: caught_up(cfg), 60, "catch up")
        assert rt.error is None
    c.close()
    assert_same(mariadb, my_db, pg_db, ["kl", "p", "ch", "ch2"])
    assert status(cfg, "src")[0]["errors"] == 0
