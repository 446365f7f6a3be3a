"""The replica end to end: init, then binlog changes of every shape, compared with the source."""

from __future__ import annotations

import psycopg
import pytest

from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import errors, status, table_status
from pgbaton.replica.verify import verify
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until

SCHEMA = [
    """CREATE TABLE items (id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, name varchar(50) NOT NULL,
       qty int, price decimal(12,2), note text, data blob, updated datetime(6), UNIQUE KEY uq_name (name))""",
    "CREATE TABLE pairs (a int NOT NULL, b varchar(10) NOT NULL, v int, PRIMARY KEY (a, b))",
    "CREATE TABLE nopk (x int, y varchar(10))",
]


def _assert_equal(cfg) -> None:  # type: ignore[no-untyped-def]
    results = verify(cfg, "src")
    bad = [r for r in results if not r["equal"]]
    assert not bad, bad
    assert all(r["source_rows"] == r["target_rows"] for r in results)


@pytest.fixture
def replica(pg_db: str, my_db: str, mariadb: MariaDBServer):  # type: ignore[no-untyped-def]
    my_exec(mariadb, my_db, SCHEMA)
    my_exec(mariadb, my_db, [
        ("INSERT INTO items (name, qty, price, note, data, updated) VALUES (%s, %s, %s, %s, %s, %s)",
         (f"item{i}", i, f"{i}.25", "n\t\\x\n" if i % 3 else None, bytes([0, i % 256, 255]),
          f"2024-01-0{1 + i % 9} 10:00:00.{i:06d}"))
        for i in range(1, 201)
    ] + [("INSERT INTO pairs VALUES (%s, %s, %s)", (i % 10, f"k{i}", i)) for i in range(50)]
      + ["INSERT INTO nopk VALUES (1, 'a'), (1, 'a'), (2, 'b'), (NULL, NULL)"])
    cfg = make_config(pg_db, mariadb, my_db, batch_max_rows=500)
    add_source(cfg, "src")
    res = init_replica(cfg, "src", show_progress=False)
    assert res.rows == 200 + 50 + 4
    return cfg


def test_init_copies_snapshot(replica, pg_db: str) -> None:  # type: ignore[no-untyped-def]
    _assert_equal(replica)
    with psycopg.connect(pg_db) as conn:
        # identity continues after the copied AUTO_INCREMENT values
        conn.execute("INSERT INTO app.items (name) VALUES ('fresh')")
        row = conn.execute("SELECT id FROM app.items WHERE name = 'fresh'").fetchone()
        assert row is not None and row[0] > 200
        st = status(replica, "src")[0]
        assert st["state"] == "initialized" and st["tables_replicated"] == 3


def test_cdc_all_change_shapes(replica, mariadb: MariaDBServer, my_db: str,  # type: ignore[no-untyped-def]
                               pg_db: str) -> None:
    cfg = replica
    with ReplicaThread(cfg) as rt:
        my_exec(mariadb, my_db, ["INSERT INTO items (name, qty) VALUES ('new1', 1), ('new2', 2)"])
        my_exec(mariadb, my_db, ["UPDATE items SET qty = qty + 1000, note = 'upd' WHERE id <= 20"])
        my_exec(mariadb, my_db, ["DELETE FROM items WHERE id BETWEEN 30 AND 39"])
        # primary key changes, including a swap through a free key and a chain of moves
        my_exec(mariadb, my_db, ["UPDATE items SET id = id + 10000 WHERE id BETWEEN 40 AND 44",
                                 "UPDATE items SET id = 30 WHERE id = 10040",
                                 "UPDATE pairs SET b = concat(b, 'x') WHERE a = 3"])
        # many changes to one row in one transaction, and a unique value handed between rows
        my_exec(mariadb, my_db, ["UPDATE items SET qty = 1 WHERE id = 50", "UPDATE items SET qty = 2 WHERE id = 50",
                                 "DELETE FROM items WHERE id = 50",
                                 "INSERT INTO items (id, name, qty) VALUES (50, 'again', 3)",
                                 "UPDATE items SET qty = 4 WHERE id = 50",
                                 "UPDATE items SET name = 'tmp' WHERE name = 'item60'",
                                 "UPDATE items SET name = 'item60' WHERE name = 'item61'",
                                 "UPDATE items SET name = 'item61' WHERE name = 'tmp'"])
        # multi-table transaction and a rollback that must not arrive
        my_exec(mariadb, my_db, ["INSERT INTO pairs VALUES (99, 'z', 1)", "DELETE FROM nopk WHERE x = 2",
                                 "INSERT INTO nopk VALUES (1, 'a'), (3, 'c')",
                                 "UPDATE nopk SET y = 'aa' WHERE x = 1 LIMIT 1"])
        my_exec(mariadb, my_db, ["DELETE FROM nopk WHERE x IS NULL"])
        # a large transaction, bigger than a batch (spilled in chunks)
        my_exec(mariadb, my_db, [("INSERT INTO pairs VALUES (%s, %s, %s)", (1000 + i, "big", i)) for i in range(3000)]
                + ["UPDATE pairs SET v = -v WHERE b = 'big'"])
        wait_until(lambda: caught_up(cfg), 60, "replica to catch up")
        assert rt.error is None
    _assert_equal(cfg)
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT name, qty FROM app.items WHERE id = 50").fetchone() == ("again", 4)
        assert conn.execute("SELECT count(*) FROM app.pairs WHERE b = 'big' AND v <= 0").fetchone() == (3000,)
        assert conn.execute("SELECT count(*) FROM app.nopk WHERE x = 1").fetchone() == (3,)
    st = status(cfg, "src")[0]
    assert st["rows_replayed"] > 6000 and st["errors"] == 0 and st["state"] == "stopped"
    per_table = {t["source_table"].split(".")[1]: t["rows_replayed"] for t in table_status(cfg, "src")}
    assert sum(per_table.values()) == st["rows_replayed"] and per_table["pairs"] >= 6000, per_table
    assert errors(cfg, "src") == []


def test_restart_resumes_without_loss_or_duplicates(replica, mariadb: MariaDBServer, my_db: str) -> None:  # type: ignore[no-untyped-def]
    cfg = replica
    with ReplicaThread(cfg):
        my_exec(mariadb, my_db, ["INSERT INTO nopk VALUES (7, 'seven')"])
        wait_until(lambda: caught_up(cfg), 30, "first catch up")
    # written while the replica is down
    my_exec(mariadb, my_db, ["INSERT INTO nopk VALUES (8, 'eight')", "UPDATE items SET qty = -1 WHERE id = 1"])
    with ReplicaThread(cfg):
        wait_until(lambda: caught_up(cfg), 30, "second catch up")
    _assert_equal(cfg)


def test_replay_error_disables_table_and_is_listed(replica, mariadb: MariaDBServer, my_db: str,  # type: ignore[no-untyped-def]
                                                   pg_db: str) -> None:
    cfg = replica
    with psycopg.connect(pg_db) as conn:
        # a constraint the source does not have makes replay of this table fail
        conn.execute("ALTER TABLE app.pairs ADD CONSTRAINT v_small CHECK (v < 1000000)")
    with ReplicaThread(cfg) as rt:
        my_exec(mariadb, my_db, ["INSERT INTO pairs VALUES (5, 'huge', 5000000)",
                                 "INSERT INTO items (name, qty) VALUES ('still-replicated', 1)"])
        wait_until(lambda: caught_up(cfg), 30, "catch up")
        assert rt.error is None
    errs = errors(cfg, "src")
    assert len(errs) == 1 and errs[0]["table"].endswith(".pairs") and "v_small" in errs[0]["message"]
    assert str(errs[0]["change"]["new"]["v"]) == "5000000"
    st = status(cfg, "src")[0]
    assert st["tables_disabled"] == 1 and st["tables_replicated"] == 2
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT qty FROM app.items WHERE name = 'still-replicated'").fetchone() == (1,)


def test_replay_error_stops_when_configured(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    my_exec(mariadb, my_db, SCHEMA[1:2])
    cfg = make_config(pg_db, mariadb, my_db, on_replay_error="stop")
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    with psycopg.connect(pg_db) as conn:
        conn.execute("ALTER TABLE app.pairs ADD CONSTRAINT v_small CHECK (v < 10)")
    rt = ReplicaThread(cfg)
    with rt:
        my_exec(mariadb, my_db, ["INSERT INTO pairs VALUES (1, 'x', 50)"])
        wait_until(lambda: not rt.thread.is_alive(), 30, "replica to stop on the error")
    assert rt.error is not None and "v_small" in str(rt.error) and "on_replay_error: stop" in str(rt.error)
    with psycopg.connect(pg_db) as conn:
        pending = conn.execute("SELECT count(*) FROM pgbaton.batches WHERE status = 'closed'").fetchone()
        assert pending is not None and pending[0] >= 1   # kept for after the fix, not dropped


def test_replayed_changes_are_cleaned_up(replica, mariadb: MariaDBServer, my_db: str, pg_db: str) -> None:  # type: ignore[no-untyped-def]
    from pgbaton.cdc.replay import Replayer
    from pgbaton.config import OnError
    from pgbaton.replica.catalog import catalog_connection

    cfg = replica
    with ReplicaThread(cfg):
        for i in range(5):
            my_exec(mariadb, my_db, [f"INSERT INTO nopk VALUES ({100 + i}, 'x')"])
        wait_until(lambda: caught_up(cfg), 30, "catch up")
    with psycopg.connect(pg_db) as conn:
        before = conn.execute("SELECT count(*) FROM pgbaton.log_src").fetchone()
    assert before is not None and before[0] >= 5
    conn2 = catalog_connection(cfg)
    try:
        replayer = Replayer(conn2, "pgbaton", "src", OnError.stop, lambda c, b: None)
        assert replayer.cleanup(3600) == 0          # retention not reached: nothing goes
        assert replayer.cleanup(0, step_batches=2) >= 2   # in steps of two batches
    finally:
        conn2.close()
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(*) FROM pgbaton.log_src").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pgbaton.batches WHERE status = 'replayed'").fetchone() == (0,)
    _assert_equal(cfg)
