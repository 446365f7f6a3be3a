"""The replica survives a restart of its source: it resumes from its stored position."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pgbaton.replica.daemon import Supervisor
from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.verify import verify
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import caught_up, make_config, my_exec, wait_until


@pytest.fixture
def own_mariadb(sandbox_root: Path):  # type: ignore[no-untyped-def]
    server = MariaDBServer(sandbox_root / "mariadb-restart", server_id=7)
    server.start()
    yield server
    server.stop()


def test_source_restart_while_replicating(pg_db: str, own_mariadb: MariaDBServer) -> None:
    my = own_mariadb
    conn = my.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE app")
    conn.close()
    my_exec(my, "app", ["CREATE TABLE t (id int PRIMARY KEY, v varchar(20))",
                        "INSERT INTO t SELECT seq, 'init' FROM seq_1_to_100"])
    cfg = make_config(pg_db, my, "app", heartbeat_seconds=0.5)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    sup = Supervisor(cfg, "src", max_backoff=2.0)
    runner = threading.Thread(target=sup.run, daemon=True)
    runner.start()
    try:
        my_exec(my, "app", ["UPDATE t SET v = 'before' WHERE id <= 50", "INSERT INTO t VALUES (1000, 'x')"])
        wait_until(lambda: caught_up(cfg), 30, "catch up before the restart")
        my.stop()                       # the source goes away under the running replica
        time.sleep(2.5)
        my.start()
        my_exec(my, "app", ["UPDATE t SET v = 'after' WHERE id > 50", "DELETE FROM t WHERE id = 7",
                            "INSERT INTO t VALUES (1001, 'y')"])
        wait_until(lambda: caught_up(cfg), 60, "catch up after the restart")
        assert sup.restarts >= 1
        assert runner.is_alive()
    finally:
        sup.request_stop()
        runner.join(timeout=60)
    results = verify(cfg, "src")
    assert results[0]["equal"] and results[0]["target_rows"] == 101, results
