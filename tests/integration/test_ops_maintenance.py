"""Cleanup under steady load keeps the log table small; `maintenance` cleans and vacuums on demand."""

from __future__ import annotations

import threading
import time

import psycopg
import pymysql

from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.maintenance import maintenance
from pgbaton.replica.verify import verify
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until

SOAK_SECONDS = 16      # stands for an hour at steady load: cleanup runs every 5 s, VACUUM every 1 s here


def _load(mariadb: MariaDBServer, db: str, stop: threading.Event, counter: list[int]) -> None:
    conn = pymysql.connect(**mariadb.connect_args(db), autocommit=True)  # type: ignore[arg-type]
    try:
        with conn.cursor() as cur:
            i = 0
            while not stop.is_set():
                i += 1
                cur.execute("INSERT INTO t (id, v) VALUES (%s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)",
                            (i % 500, f"{i}" + "x" * 200))
                counter[0] += 1
                time.sleep(0.002)
    finally:
        conn.close()


def test_log_table_stays_bounded_under_steady_load(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    my_exec(mariadb, my_db, ["CREATE TABLE t (id int PRIMARY KEY, v varchar(300))"])
    cfg = make_config(pg_db, mariadb, my_db, log_retention_seconds=1, log_vacuum_seconds=1, batch_max_ms=20)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    stop, counter = threading.Event(), [0]
    load = threading.Thread(target=_load, args=(mariadb, my_db, stop, counter), daemon=True)
    sizes: list[int] = []
    with ReplicaThread(cfg) as rt, psycopg.connect(pg_db, autocommit=True) as pg:
        load.start()
        try:
            started = time.monotonic()
            while time.monotonic() - started < SOAK_SECONDS:
                time.sleep(1)
                row = pg.execute("SELECT pg_total_relation_size('pgbaton.log_src')").fetchone()
                assert row is not None
                sizes.append(int(row[0]))
        finally:
            stop.set()
            load.join(10)
        wait_until(lambda: caught_up(cfg), 30, "catch up")
        assert rt.error is None
        rows = pg.execute("SELECT count(*) FROM pgbaton.log_src").fetchone()
    assert counter[0] > 500      # (the load really ran; about 2,000 on a quiet machine)
    half = len(sizes) // 2
    # steady state: the second half of the soak never needs more room than the first half did
    assert max(sizes[half:]) <= max(sizes[:half]) * 1.25 + 256 * 1024, sizes
    assert rows is not None and rows[0] < counter[0] / 2, (rows, counter)
    res = maintenance(cfg, "src", retention_seconds=0)
    assert res[0]["source"] == "src" and res[0]["batches_removed"] >= 1
    assert res[0]["log_bytes_after"] <= res[0]["log_bytes_before"]
    with psycopg.connect(pg_db) as pg:
        assert pg.execute("SELECT count(*) FROM pgbaton.log_src").fetchone() == (0,)
    assert maintenance(cfg, "src", retention_seconds=0)[0]["batches_removed"] == 0    # rerun
    assert all(r["equal"] for r in verify(cfg, "src"))
