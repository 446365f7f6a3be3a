"""Catalog upgrade with live data: a version-2 catalog holding a stopped replica (with stored,
not yet replayed changes) is upgraded to the newest version and replication resumes with
nothing lost."""

from __future__ import annotations

import psycopg

from pgbaton.catalog import migrate
from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.verify import verify
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until

# what versions 3 and up added, taken away again: the catalog as version 2 left it
BACK_TO_V2 = """
ALTER TABLE pgbaton.sources DROP COLUMN restarts;
DROP TABLE pgbaton.foreign_keys;
DROP INDEX pgbaton.batches_prepared_xid;
ALTER TABLE pgbaton.batches DROP COLUMN xa_xid, DROP CONSTRAINT batches_status_check;
ALTER TABLE pgbaton.batches ADD CONSTRAINT batches_status_check CHECK (status IN ('open', 'closed', 'replayed'));
ALTER TABLE pgbaton.tables DROP COLUMN sync_file, DROP COLUMN sync_pos, DROP COLUMN sync_gtid,
                           DROP COLUMN synced_at;
ALTER TABLE pgbaton.sources DROP COLUMN tables_version, DROP COLUMN writer_tables_version;
DELETE FROM pgbaton.catalog_version WHERE version > 2;
"""


def test_upgrade_v2_to_newest_with_a_stopped_replica(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    my_exec(mariadb, my_db, ["CREATE TABLE t (id int PRIMARY KEY, v int)", "CREATE TABLE k (x int, y int)",
                             "INSERT INTO t VALUES (1, 1), (2, 2)", "INSERT INTO k VALUES (1, 1)"])
    cfg = make_config(pg_db, mariadb, my_db, on_replay_error="stop")
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    with psycopg.connect(pg_db) as conn:
        conn.execute("ALTER TABLE app.t ADD CONSTRAINT small CHECK (v < 100)")
    rt = ReplicaThread(cfg)
    with rt:
        my_exec(mariadb, my_db, ["INSERT INTO k VALUES (2, 2)"])
        wait_until(lambda: caught_up(cfg), 30, "catch up")
        # stored but not replayable yet: the replica stops and keeps the batch
        my_exec(mariadb, my_db, ["UPDATE t SET v = 500 WHERE id = 1", "INSERT INTO k VALUES (3, 3)"])
        wait_until(lambda: not rt.thread.is_alive(), 30, "replica to stop")
    with psycopg.connect(pg_db) as conn:
        conn.execute(BACK_TO_V2)
        conn.execute("ALTER TABLE app.t DROP CONSTRAINT small")
        conn.commit()
        assert migrate.current_version(conn, "pgbaton") == 2
        pending = conn.execute("SELECT count(*) FROM pgbaton.batches WHERE status = 'closed'").fetchone()
        assert pending is not None and pending[0] >= 1
    # written while the replica is stopped
    my_exec(mariadb, my_db, ["INSERT INTO t VALUES (3, 3)", "DELETE FROM k WHERE x = 1"])
    with psycopg.connect(pg_db) as conn:
        assert migrate.upgrade(conn, "pgbaton") == list(range(3, migrate.latest_version() + 1))
        row = conn.execute("SELECT state, tables_version FROM pgbaton.sources").fetchone()
        assert row == ("stopped", 0)
        assert conn.execute("SELECT count(*) FROM pgbaton.tables WHERE sync_file IS NULL").fetchone() == (2,)
    with ReplicaThread(cfg) as rt2:
        my_exec(mariadb, my_db, ["UPDATE t SET v = 4 WHERE id = 2"])
        wait_until(lambda: caught_up(cfg), 30, "catch up after the upgrade")
        assert rt2.error is None
    assert all(r["equal"] for r in verify(cfg, "src"))
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT v FROM app.t WHERE id = 1").fetchone() == (500,)
