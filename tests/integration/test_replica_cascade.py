"""Foreign key actions InnoDB applies without logging them are reproduced by replay."""

from __future__ import annotations

import pymysql

from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import status
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until
from .test_replica_txn import assert_same, run, session

SCHEMA = [
    "CREATE TABLE par (id int PRIMARY KEY, v int)",
    """CREATE TABLE chi (id int PRIMARY KEY, pid int, v int,
       CONSTRAINT chi_par FOREIGN KEY (pid) REFERENCES par (id) ON DELETE CASCADE ON UPDATE CASCADE)""",
    """CREATE TABLE gch (id int PRIMARY KEY, cid int,
       CONSTRAINT gch_chi FOREIGN KEY (cid) REFERENCES chi (id) ON DELETE SET NULL ON UPDATE CASCADE)""",
    """CREATE TABLE tree (id int PRIMARY KEY, up int,
       CONSTRAINT tree_up FOREIGN KEY (up) REFERENCES tree (id) ON DELETE CASCADE ON UPDATE CASCADE)""",
    "CREATE TABLE plain (id int PRIMARY KEY, v int)",
]
TABLES = ["par", "chi", "gch", "tree", "plain"]


def test_cascades_several_levels_self_reference_and_fk_checks_off(pg_db: str, my_db: str,
                                                                   mariadb: MariaDBServer) -> None:
    my_exec(mariadb, my_db, SCHEMA)
    my_exec(mariadb, my_db, [
        "INSERT INTO par VALUES (1, 0), (2, 0), (3, 0), (4, 0)",
        "INSERT INTO chi VALUES (10, 1, 0), (11, 1, 0), (20, 2, 0), (30, 3, 0), (40, 4, 0)",
        "INSERT INTO gch VALUES (100, 10), (101, 11), (200, 20), (300, 30)",
        "INSERT INTO tree VALUES (1, NULL), (2, 1), (3, 2), (4, 3), (5, 1), (6, NULL), (7, 6)",
    ])
    cfg = make_config(pg_db, mariadb, my_db, batch_max_rows=50)
    add_source(cfg, "src")
    res = init_replica(cfg, "src", show_progress=False)
    # init names the cascading foreign keys it found
    assert sorted(fk.split(" -> ")[0] for fk in res.cascading_foreign_keys) == [
        f"{my_db}.chi.chi_par", f"{my_db}.gch.gch_chi", f"{my_db}.tree.tree_up"]
    c: pymysql.connections.Connection = session(mariadb, my_db)
    with ReplicaThread(cfg) as rt:
        run(c, "DELETE FROM par WHERE id = 1")                      # chi 10, 11 go; gch 100, 101 set NULL
        run(c, "UPDATE par SET id = 22 WHERE id = 2")               # chi 20 follows to 22
        run(c, "UPDATE chi SET id = 21 WHERE id = 20")              # gch 200 follows to 21
        run(c, "BEGIN", "DELETE FROM par WHERE id = 3", "INSERT INTO par VALUES (3, 1)",
            "INSERT INTO chi VALUES (31, 3, 1)", "COMMIT")           # explicit child after the cascade
        run(c, "SET foreign_key_checks = 0", "DELETE FROM par WHERE id = 4", "SET foreign_key_checks = 1")
        run(c, "DELETE FROM tree WHERE id = 2")                     # 3, 4 go with it
        run(c, "DELETE FROM tree WHERE id = 6")                     # 7 goes too
        run(c, "BEGIN", "UPDATE par SET id = 23 WHERE id = 22", "UPDATE par SET id = 24 WHERE id = 23",
            "INSERT INTO plain VALUES (1, 1)", "COMMIT")             # a chain of key moves
        wait_until(lambda: caught_up(cfg), 60, "replica to catch up")
        assert rt.error is None
    c.close()
    assert_same(mariadb, my_db, pg_db, TABLES)
    st = status(cfg, "src")[0]
    assert any(".chi.chi_par -> " in fk and "ON DELETE CASCADE" in fk for fk in st["cascading_foreign_keys"])
    assert len(st["cascading_foreign_keys"]) == 3 and st["errors"] == 0
