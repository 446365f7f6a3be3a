"""sync_tables: re-copy some tables from a fresh snapshot while the replica and writes go on."""

from __future__ import annotations

import random
import threading

import psycopg
import pymysql
import pytest

from pgbaton.config import Config
from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import status, table_status
from pgbaton.replica.sync import sync_tables
from pgbaton.replica.verify import verify
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until

SCHEMA = [
    "CREATE TABLE items (id int PRIMARY KEY, name varchar(40) NOT NULL, qty int, UNIQUE KEY (name))",
    "CREATE TABLE nopk (x int, y varchar(10))",
    "CREATE TABLE other (id int AUTO_INCREMENT PRIMARY KEY, v int)",
    "CREATE TABLE late (id int PRIMARY KEY, v int)",
]


def _load(mariadb: MariaDBServer, db: str) -> None:
    my_exec(mariadb, db, SCHEMA)
    my_exec(mariadb, db, [("INSERT INTO items VALUES (%s, %s, %s)", (i, f"n{i}", i)) for i in range(1, 301)]
            + [("INSERT INTO nopk VALUES (%s, %s)", (i % 7, f"y{i % 5}")) for i in range(100)]
            + [("INSERT INTO other (v) VALUES (%s)", (i,)) for i in range(100)]
            + [("INSERT INTO late VALUES (%s, %s)", (i, i)) for i in range(50)])


class Writer(threading.Thread):
    """Transactions on every table, in a loop, until stopped."""

    def __init__(self, mariadb: MariaDBServer, db: str) -> None:
        super().__init__(daemon=True)
        self.conn = pymysql.connect(**mariadb.connect_args(db), autocommit=False)  # type: ignore[arg-type]
        self.stop = threading.Event()
        self.done = 0
        self.rnd = random.Random(5)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.conn.cursor() as cur:
                nxt = 1000
                while not self.stop.is_set():
                    r = self.rnd
                    nxt += 1
                    cur.execute("INSERT INTO items VALUES (%s, %s, %s)", (nxt, f"n{nxt}", nxt))
                    cur.execute("UPDATE items SET qty = qty + 1 WHERE id = %s", (r.randint(1, nxt),))
                    cur.execute("DELETE FROM items WHERE id = %s", (r.randint(1, nxt),))
                    cur.execute("INSERT INTO nopk VALUES (%s, %s)", (r.randint(0, 6), "w"))
                    cur.execute("DELETE FROM nopk WHERE x = %s LIMIT 1", (r.randint(0, 6),))
                    if r.random() < 0.5:
                        cur.execute("UPDATE other SET v = v + 1 WHERE id = %s", (r.randint(1, 100),))
                    cur.execute("UPDATE late SET v = v + 1 WHERE id = %s", (r.randint(0, 49),))
                    self.conn.commit()
                    if r.random() < 0.3:   # a transaction on the other table only
                        cur.execute("INSERT INTO other (v) VALUES (%s)", (nxt,))
                        self.conn.commit()
                    self.done += 1
        except BaseException as exc:
            self.error = exc
        finally:
            self.conn.close()


def _assert_equal(cfg: Config) -> None:
    bad = [r for r in verify(cfg, "src") if not r["equal"]]
    assert not bad, bad


@pytest.fixture
def cfg(pg_db: str, my_db: str, mariadb: MariaDBServer) -> Config:
    _load(mariadb, my_db)
    c = make_config(pg_db, mariadb, my_db, tables={"exclude": ["*.late"]}, batch_max_rows=200,
                    log_retention_seconds=0)
    add_source(c, "src")
    init_replica(c, "src", show_progress=False)
    return c


def test_sync_tables_during_writes_ends_equal(cfg: Config, my_db: str, mariadb: MariaDBServer,
                                              pg_db: str) -> None:
    with ReplicaThread(cfg) as rt:
        w = Writer(mariadb, my_db)
        w.start()
        try:
            wait_until(lambda: w.done > 30, 30, "writes")
            # damage the targets of the tables to re-sync: only the re-copy can repair them
            with psycopg.connect(pg_db) as conn:
                conn.execute("DELETE FROM app.items WHERE id % 3 = 0")
                conn.execute("UPDATE app.nopk SET y = 'bad'")
            res = sync_tables(cfg, "src", ["items", "nopk"])
            assert res.online and sorted(res.tables) == [f"{my_db}.items", f"{my_db}.nopk"]
            # the excluded table is added the same way
            res2 = sync_tables(cfg, "src", [f"{my_db}.late"])
            assert res2.tables == [f"{my_db}.late"]
            n = w.done
            wait_until(lambda: w.done > n + 30, 30, "writes after the sync")
        finally:
            w.stop.set()
            w.join(10)
        assert w.error is None
        wait_until(lambda: caught_up(cfg), 60, "catch up")
        assert rt.error is None
    _assert_equal(cfg)
    tables = {t["source_table"].split(".")[1]: t for t in table_status(cfg, "src")}
    assert {n: t["state"] for n, t in tables.items()} == {n: "replicating" for n in ("items", "nopk", "other", "late")}
    assert tables["items"]["sync_position"] and tables["other"]["sync_position"] is None
    assert status(cfg, "src")[0]["errors"] == 0


def test_sync_tables_without_a_running_replica_and_rerun(cfg: Config, my_db: str, mariadb: MariaDBServer,
                                                        pg_db: str) -> None:
    my_exec(mariadb, my_db, ["UPDATE items SET qty = -1 WHERE id < 50", "INSERT INTO nopk VALUES (99, 'z')"])
    with psycopg.connect(pg_db) as conn:
        conn.execute("TRUNCATE app.items")
    # nopk has no key: replaying its insert from before the snapshot again would double the row
    res = sync_tables(cfg, "src", ["items", "nopk"])
    assert not res.online and res.rows == 300 + 101
    sync_tables(cfg, "src", ["items", "nopk"])          # rerun: same end state
    my_exec(mariadb, my_db, ["UPDATE items SET qty = -2 WHERE id < 10", "INSERT INTO nopk VALUES (98, 'q')"])
    with ReplicaThread(cfg):
        wait_until(lambda: caught_up(cfg), 30, "catch up")
    _assert_equal(cfg)


def test_table_states_disable_enable_and_resync_disabled(cfg: Config, my_db: str, mariadb: MariaDBServer,
                                                         pg_db: str) -> None:
    from pgbaton.replica.tables import disable_tables, enable_tables

    with psycopg.connect(pg_db) as conn:
        # a constraint the source does not have: replay disables the table
        conn.execute("ALTER TABLE app.items ADD CONSTRAINT q_small CHECK (qty < 100000)")
    with ReplicaThread(cfg) as rt:
        assert disable_tables(cfg, "src", ["other"]) == [f"{my_db}.other"]
        assert disable_tables(cfg, "src", [f"{my_db}.other"]) == []        # rerun: nothing more to do
        my_exec(mariadb, my_db, ["UPDATE items SET qty = 500000 WHERE id = 1", "UPDATE other SET v = -5",
                                 "INSERT INTO nopk VALUES (1, 'ok')"])
        wait_until(lambda: caught_up(cfg), 30, "catch up")
        tables = {t["source_table"].split(".")[1]: t for t in table_status(cfg, "src")}
        assert tables["items"]["state"] == "disabled" and "q_small" in tables["items"]["last_error"]
        assert tables["other"]["state"] == "disabled" and tables["other"]["last_error"] == "disabled by the user"
        assert tables["nopk"]["state"] == "replicating"
        with psycopg.connect(pg_db) as conn:
            assert conn.execute("SELECT count(*) FROM app.other WHERE v = -5").fetchone() == (0,)
            conn.execute("ALTER TABLE app.items DROP CONSTRAINT q_small")
        # every disabled table is copied again and follows the stream
        res = sync_tables(cfg, "src", ["disabled"])
        assert sorted(res.tables) == [f"{my_db}.items", f"{my_db}.other"]
        assert sync_tables(cfg, "src", ["disabled"]).tables == []
        my_exec(mariadb, my_db, ["UPDATE other SET v = 7 WHERE id < 10", "UPDATE items SET qty = 3 WHERE id = 2"])
        disable_tables(cfg, "src", ["nopk"])
        enable_tables(cfg, "src", ["nopk"])
        wait_until(lambda: caught_up(cfg), 30, "catch up after the re-sync")
        assert rt.error is None
    _assert_equal(cfg)
    assert {t["state"] for t in table_status(cfg, "src")} == {"replicating"}
