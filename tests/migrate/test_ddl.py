"""In-band DDL replication, PostgreSQL 15 -> 18 and back after the switchover, on real servers.

DDL runs on the source while a writer keeps inserting; the target must end with the same
tables, columns and rows.  After the switchover the same happens the other way, with no
echo; after the switchback forward again; ``finish`` removes the capture everywhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from pgbaton.migrate import tend
from pgbaton.migrate.finish import finish
from pgbaton.migrate.switch_exec import switchback, switchover
from tests.migrate.conftest import Migration, start_synced
from tests.migrate.test_finish import _leftovers

SCHEMA = """
CREATE SCHEMA app;
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, amount int, note text);
CREATE TABLE old_stuff (id int PRIMARY KEY);
INSERT INTO old_stuff SELECT generate_series(1, 10);
"""


def _shape(dsn: str) -> dict[str, list[tuple[str, str]]]:
    """Every user table with its columns and types."""
    with psycopg.connect(dsn) as c:
        rows = c.execute(
            "SELECT table_schema || '.' || table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema IN ('public', 'app') ORDER BY 1, ordinal_position").fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, col, typ in rows:
        out.setdefault(table, []).append((col, typ))
    return out


def _rows(dsn: str) -> dict[str, tuple[int, str]]:
    out = {}
    with psycopg.connect(dsn) as c:
        for table in _shape(dsn):
            row = c.execute(f"SELECT count(*), coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') "
                            f"FROM {table} x").fetchone()
            assert row is not None
            out[table] = (int(row[0]), str(row[1]))
    return out


def _converge(src: str, dst: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _shape(src) == _shape(dst) and _rows(src) == _rows(dst):
            return
        time.sleep(0.3)
    assert _shape(dst) == _shape(src)
    assert _rows(dst) == _rows(src)


@contextmanager
def _tending(m: Migration) -> Iterator[None]:
    """`migrate run` in a thread: adds tables created by replicated DDL to the subscription."""
    stop = threading.Event()
    worker = threading.Thread(target=tend.run, args=(m.config, m.name, stop), kwargs={"interval": 0.3})
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()


@contextmanager
def _writing(dsn: str) -> Iterator[list[str]]:
    """Inserts into orders all along; yields the list of errors."""
    stop, errors = threading.Event(), []

    def loop() -> None:
        with psycopg.connect(dsn, autocommit=True) as c:
            while not stop.is_set():
                try:
                    c.execute("INSERT INTO orders (amount) VALUES (1)")
                except psycopg.Error as exc:
                    errors.append(str(exc))
                time.sleep(0.003)

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        yield errors
    finally:
        stop.set()
        worker.join()


def _queue(dsn: str) -> list[tuple[str, str | None]]:
    """DDL captured on this cluster (not the entries that came in by replication)."""
    with psycopg.connect(dsn) as c:
        return [(r[0], r[1]) for r in c.execute(
            "SELECT tag, statement FROM pgbaton_ddl.queue "
            "WHERE node = (SELECT system_identifier::text FROM pg_control_system()) ORDER BY at, id")]


def test_ddl_follows_both_ways_without_echo(migration: Migration) -> None:
    m = migration
    start_synced(m, SCHEMA)
    db, other = m.databases[0], m.databases[1]
    src, dst = m.source.dsn(db), m.target.dsn(db)

    with _tending(m):
        with _writing(src) as errors, psycopg.connect(src, autocommit=True) as s:
            # one query string with DDL and DML: only the DDL is queued; the rows arrive as rows
            s.execute("CREATE TABLE items (id int PRIMARY KEY, name text); "
                      "INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 100) g; "
                      "ALTER TABLE items ADD COLUMN price numeric(8,2) DEFAULT 1.50; "
                      "UPDATE items SET price = id / 4.0 WHERE id <= 10")
            s.execute("INSERT INTO items (id, name) VALUES (101, 'after')")
            s.execute("ALTER TABLE orders ADD COLUMN channel text DEFAULT 'web'")   # under the writer's inserts
            s.execute("INSERT INTO orders (amount, channel) VALUES (5, 'shop')")
            s.execute("ALTER TABLE items RENAME TO goods")
            s.execute("INSERT INTO goods (id, name) VALUES (102, 'renamed')")
            s.execute("DROP TABLE old_stuff")
            with s.transaction():  # rolled back: must never reach the target
                s.execute("CREATE TABLE ghost (x int)")
                s.execute("ALTER TABLE orders ADD COLUMN ghost_col int")
                raise psycopg.Rollback()
            s.execute("SET search_path = app, public")
            s.execute("CREATE TABLE in_app (id int PRIMARY KEY, v text)")  # lands in app, as on the source
            s.execute("INSERT INTO in_app VALUES (1, 'a'), (2, 'b')")
            s.execute("RESET search_path")
            s.execute("CREATE TEMP TABLE scratch (x int)")  # session-local: not replicated
            s.execute("CREATE INDEX CONCURRENTLY goods_name ON goods (name)")
            with pytest.raises(psycopg.errors.RaiseException, match="cannot be replicated"):
                s.execute("DO $$ BEGIN EXECUTE 'CREATE TABLE hidden (x int)'; END $$")
        _converge(src, dst)
        assert errors == []
    shape = _shape(dst)
    assert "public.old_stuff" not in shape and "public.items" not in shape and "public.ghost" not in shape
    assert "public.hidden" not in _shape(src) and "public.hidden" not in shape
    assert ("channel", "text") in shape["public.orders"] and ("ghost_col", "integer") not in shape["public.orders"]
    assert "app.in_app" in shape and _rows(dst)["public.goods"][0] == 102
    with psycopg.connect(dst) as t:
        assert t.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'goods_name'").fetchone() == (1,)
        assert t.execute("SELECT count(*) FROM goods WHERE price = 2.50").fetchone() == (1,)  # the UPDATE, once
    tags = [t for t, _ in _queue(src)]
    assert "CREATE TABLE" in tags and "DROP TABLE" in tags and all(st is not None for _, st in _queue(src))
    assert not any("INSERT" in (st or "").upper() for _, st in _queue(src))
    assert _shape(m.target.dsn(other)) == _shape(m.source.dsn(other))  # nothing went to another database
    assert "public.goods" not in _shape(m.target.dsn(other))

    # -- after the switchover: DDL on the target goes back to the source -------------------------
    assert switchover(m.config, m.name).switched
    source_queue = len(_queue(src))
    with _tending(m):
        with _writing(dst) as errors, psycopg.connect(dst, autocommit=True) as t:
            t.execute("CREATE TABLE after_switch (id int PRIMARY KEY, at timestamptz DEFAULT now())")
            t.execute("INSERT INTO after_switch (id) SELECT generate_series(1, 50)")
            t.execute("ALTER TABLE goods ADD COLUMN stock int NOT NULL DEFAULT 0")
            t.execute("UPDATE goods SET stock = id")
            t.execute("ALTER TABLE app.in_app RENAME COLUMN v TO value")
            t.execute("DROP TABLE app.in_app")
        _converge(dst, src)
        assert errors == []
    assert len(_queue(src)) == source_queue  # no echo: what the source applied was not captured again
    assert "public.after_switch" in _shape(src) and "app.in_app" not in _shape(src)

    # -- switch back: forward again ------------------------------------------------------------
    assert switchback(m.config, m.name).switched
    with _tending(m), psycopg.connect(src, autocommit=True) as s:
        s.execute("ALTER TABLE after_switch ADD COLUMN back boolean DEFAULT true")
        s.execute("INSERT INTO after_switch (id) VALUES (51)")
        _converge(src, dst)

    finish(m.config, m.name)
    assert _leftovers(m) == []
