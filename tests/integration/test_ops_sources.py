"""Many sources in one target: each has its own log table, batches, state and replica, and one
source's failure or restart never stalls another."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest
from psycopg.conninfo import conninfo_to_dict

from pgbaton.config import Config, parse_config
from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import errors, status
from pgbaton.replica.verify import verify
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, my_exec, wait_until

TABLE = "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)"


@pytest.fixture(scope="module")
def mariadb2(sandbox_root: Path) -> Iterator[MariaDBServer]:
    server = MariaDBServer(sandbox_root / "mariadb2", server_id=2)
    server.start()
    yield server
    server.stop()


def _create_db(server: MariaDBServer, name: str) -> None:
    conn = pymysql.connect(**server.connect_args(), autocommit=True)  # type: ignore[arg-type]
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}`")
    conn.close()


def _config(pg_dsn: str, m1: MariaDBServer, dbs1: dict[str, str], m2: MariaDBServer, dbs2: dict[str, str]) -> Config:
    pg = conninfo_to_dict(pg_dsn)
    return parse_config({
        "target": {"host": "127.0.0.1", "port": int(str(pg["port"])), "dbname": pg["dbname"], "user": "postgres"},
        "sources": {
            "one": {"type": "mariadb", "port": m1.port, "user": "root", "databases": dbs1, "server_id": 7101},
            "two": {"type": "mariadb", "port": m2.port, "user": "root", "databases": dbs2, "server_id": 7102,
                    "on_replay_error": "stop"},
        },
    })


def test_two_sources_run_independently(pg_db: str, my_db: str, mariadb: MariaDBServer,
                                       mariadb2: MariaDBServer) -> None:
    other_db = my_db + "_b"
    _create_db(mariadb, other_db)
    _create_db(mariadb2, my_db)
    try:
        for server, db in ((mariadb, my_db), (mariadb, other_db), (mariadb2, my_db)):
            my_exec(server, db, [TABLE, "INSERT INTO t VALUES (1, 1), (2, 2)"])
        cfg = _config(pg_db, mariadb, {my_db: "one_a", other_db: "one_b"}, mariadb2, {my_db: "two_a"})
        for name in ("one", "two"):
            add_source(cfg, name)
            add_source(cfg, name)                      # rerun is harmless
            init_replica(cfg, name, show_progress=False)
        with psycopg.connect(pg_db) as conn:
            logs = {r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'pgbaton' AND tablename LIKE 'log_%'")}
            assert logs == {"log_one", "log_two"}
            # a constraint source two does not have: its replica stops on the next change
            conn.execute("ALTER TABLE two_a.t ADD CONSTRAINT small CHECK (v < 100)")
        one, two = ReplicaThread(cfg, "one"), ReplicaThread(cfg, "two")
        with one, two:
            my_exec(mariadb2, my_db, ["INSERT INTO t VALUES (3, 1000)"])
            wait_until(lambda: not two.thread.is_alive(), 30, "source two to stop on its replay error")
            assert two.error is not None and "small" in str(two.error)
            # source one goes on while two is down, in both of its databases
            for i in range(10, 40):
                my_exec(mariadb, my_db, [f"INSERT INTO t VALUES ({i}, {i})"])
                my_exec(mariadb, other_db, [f"UPDATE t SET v = v + 1 WHERE id = {1 + i % 2}"])
            wait_until(lambda: caught_up(cfg, "one"), 30, "source one to catch up while two is stopped")
            assert one.thread.is_alive() and one.error is None
            st = {r["source"]: r for r in status(cfg)}
            assert st["one"]["state"] == "running" and st["one"]["running"]
            assert st["two"]["state"] == "stopped" and not st["two"]["running"]
            assert st["two"]["pending_batches"] >= 1          # kept for after the fix
            # fix the cause and restart source two alone; one keeps running
            with psycopg.connect(pg_db) as conn:
                conn.execute("ALTER TABLE two_a.t DROP CONSTRAINT small")
            two2 = ReplicaThread(cfg, "two")
            with two2:
                my_exec(mariadb2, my_db, ["UPDATE t SET v = 5 WHERE id = 1"])
                my_exec(mariadb, my_db, ["DELETE FROM t WHERE id = 10"])
                wait_until(lambda: caught_up(cfg, "two") and caught_up(cfg, "one"), 30, "both to catch up")
                assert two2.error is None
            assert one.thread.is_alive()
        for name in ("one", "two"):
            bad = [r for r in verify(cfg, name) if not r["equal"]]
            assert not bad, (name, bad)
        assert errors(cfg, "one") == []
        with psycopg.connect(pg_db) as conn:
            assert conn.execute("SELECT count(*) FROM one_a.t").fetchone() == (31,)
            assert conn.execute("SELECT v FROM two_a.t WHERE id = 3").fetchone() == (1000,)
            per_source = conn.execute("SELECT source, count(*) > 0 FROM pgbaton.batches GROUP BY 1 ORDER BY 1")
            assert per_source.fetchall() == [("one", True), ("two", True)]
    finally:
        conn2 = pymysql.connect(**mariadb.connect_args(), autocommit=True)  # type: ignore[arg-type]
        with conn2.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{other_db}`")
        conn2.close()
