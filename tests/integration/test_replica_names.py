"""Any legal MySQL name replicates: init, CDC, DDL, sync-tables, verify and detach.

A kept corpus of hostile names (64-character names, two names equal in their first
63 bytes, PostgreSQL system column names, Unicode, quotes, backticks, dots, spaces,
reserved words, names equal to the aliases and catalog tables pgbaton uses), and a
seeded generator of random identifiers and values.  Every table is compared row by
row with the source through the mapping `status --json` reports, and that mapping
is checked against the documented rules (mysql/names.py).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import psycopg
import pymysql
import pytest
from psycopg import sql

from pgbaton.config import Config
from pgbaton.errors import PgbatonError
from pgbaton.mysql import names
from pgbaton.replica.detach import detach
from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import status, table_status
from pgbaton.replica.sync import sync_tables
from pgbaton.replica.verify import verify
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until

L63 = "n" * 63
HOSTILE_COLUMNS = [
    "ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "xmin_",          # system names, and the suffix taken
    "c" * 64, "c" * 63 + "d",                                             # equal in their first 63 bytes
    "é" * 40,                                                             # 80 bytes
    "t", "r", "l", "x", "d", "n", "new", "old", "seq",                   # aliases of pgbaton's SQL
    'q"uote', "back`tick", "dot.ted", "sp ace", "select", "user", "Größe", "表",
]
HOSTILE_TABLES = [
    L63 + "a", L63 + "b",                   # 64 characters, equal in the first 63 bytes
    "batches", "errors", "tables", "sources",   # pgbaton's catalog tables, in the user's schema
    "select", "dot.ted", 'q"t', "back`t", "sp ace", "表 テーブル", "t",
]


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _create(table: str, columns: list[str], key: str | None) -> str:
    cols = [f"{q(c)} {'int NOT NULL' if c == key else 'varchar(40)'}" for c in columns]
    pk = f", PRIMARY KEY ({q(key)})" if key else ""
    return f"CREATE TABLE {q(table)} ({', '.join(cols)}{pk}) ENGINE=InnoDB CHARSET=utf8mb4"


def _value(rnd: random.Random) -> str | None:
    if rnd.random() < 0.15:
        return None
    alphabet = "ab 'x\"\\,\t\n(){}é中"
    return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))


def source_rows(mariadb: MariaDBServer, db: str, table: str, columns: list[str]) -> Counter[tuple[Any, ...]]:
    conn = mariadb.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT {', '.join(q(c) for c in columns)} FROM {q(table)}")
            return Counter(tuple(None if v is None else str(v) for v in r) for r in cur.fetchall())
    finally:
        conn.close()


def target_rows(pg_dsn: str, target: tuple[str, str], columns: list[str]) -> Counter[tuple[Any, ...]]:
    with psycopg.connect(pg_dsn) as conn:
        query = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns),
            sql.Identifier(*target))
        return Counter(tuple(r) for r in conn.execute(query).fetchall())


def _columns(mariadb: MariaDBServer, db: str, table: str) -> list[str]:
    conn = mariadb.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                        "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (db, table))
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def assert_same(cfg: Config, mariadb: MariaDBServer, db: str, pg_dsn: str, tables: list[str]) -> None:
    by_source = {t["source_table"]: t for t in table_status(cfg, "src")}
    for table in tables:
        entry = by_source[f"{db}.{table}"]
        assert entry["state"] == "replicating", entry
        schema, _, dst = entry["target_table"].partition(".")
        cols = _columns(mariadb, db, table)
        mapped = [entry["renamed_columns"].get(c, c) for c in cols]
        src, got = source_rows(mariadb, db, table, cols), target_rows(pg_dsn, (schema, dst), mapped)
        assert src == got, f"{table}: missing {dict(src - got)} extra {dict(got - src)}"


def _catch_up(cfg: Config, rt: ReplicaThread) -> None:
    try:
        wait_until(lambda: caught_up(cfg), 90, "catch up")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {status(cfg, 'src')[0]} replica error {rt.error!r}") from None
    assert rt.error is None


def _writes(rnd: random.Random, table: str, columns: list[str], key: str | None, ids: list[int],
            n: int) -> list[str | tuple[str, Any]]:
    out: list[str | tuple[str, Any]] = []
    others = [c for c in columns if c != key]
    for _ in range(n):
        op = rnd.random()
        if op < 0.55 or not ids:
            new_id = (max(ids) + 1) if ids else 1
            ids.append(new_id)
            vals = [new_id if c == key else _value(rnd) for c in columns]
            out.append((f"INSERT INTO {q(table)} ({', '.join(q(c) for c in columns)}) VALUES "
                        f"({', '.join(['%s'] * len(columns))})", vals))
        elif op < 0.8 and others:
            col = rnd.choice(others)
            if key:
                out.append((f"UPDATE {q(table)} SET {q(col)} = %s WHERE {q(key)} = %s",
                            [_value(rnd), rnd.choice(ids)]))
            else:
                out.append((f"UPDATE {q(table)} SET {q(col)} = %s LIMIT 1", [_value(rnd)]))
        else:
            if key:
                victim = rnd.choice(ids)
                ids.remove(victim)
                out.append((f"DELETE FROM {q(table)} WHERE {q(key)} = %s", [victim]))
            else:
                out.append(f"DELETE FROM {q(table)} LIMIT 1")
    return out


def _key_ident(mariadb: MariaDBServer, db: str) -> pymysql.connections.Connection:
    return pymysql.connect(**mariadb.connect_args(db), autocommit=True)  # type: ignore[arg-type]


def test_hostile_names_through_every_command(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    rnd = random.Random(15)
    plan: dict[str, tuple[list[str], str | None]] = {}
    for i, table in enumerate(HOSTILE_TABLES):
        cols = HOSTILE_COLUMNS if i % 3 == 0 else rnd.sample(HOSTILE_COLUMNS, 8)
        key = None if i % 4 == 3 else cols[i % len(cols)]
        plan[table] = (list(cols), key)
    my_exec(mariadb, my_db, [_create(t, c, k) for t, (c, k) in plan.items()])
    # a cascading foreign key between hostile names: replay reproduces the cascade
    my_exec(mariadb, my_db, [
        f"CREATE TABLE {q('p' * 64)} ({q('ctid')} int PRIMARY KEY)",
        f"CREATE TABLE {q('ch' * 32)} ({q('xmin')} int PRIMARY KEY, {q('c' * 64)} int, "
        f"CONSTRAINT {q('f' * 64)} FOREIGN KEY ({q('c' * 64)}) REFERENCES {q('p' * 64)} ({q('ctid')}) "
        "ON DELETE CASCADE)",
        f"INSERT INTO {q('p' * 64)} VALUES (1), (2)",
        f"INSERT INTO {q('ch' * 32)} VALUES (1, 1), (2, 2), (3, 1)",
        # ENUM members of 128 bytes and more are length-encoded in the table map as well
        f"CREATE TABLE en ({q('é' * 64)} int PRIMARY KEY, e enum('a', '{'ü' * 70}'))",
        f"INSERT INTO en VALUES (1, 'a'), (2, '{'ü' * 70}')"])
    ids: dict[str, list[int]] = {t: [] for t in plan}
    my_exec(mariadb, my_db, [w for t, (c, k) in plan.items() for w in _writes(rnd, t, c, k, ids[t], 6)])
    # a view reading hostile names: it reads them under their PostgreSQL names
    view_cols = ["xmin", "ctid", "c" * 64, "t"]
    my_exec(mariadb, my_db, [f"CREATE VIEW {q('v' * 64)} AS SELECT {', '.join(q(c) for c in view_cols)} "
                             f"FROM {q(HOSTILE_TABLES[0])} WHERE {q('xmin')} IS NOT NULL"])

    cfg = make_config(pg_db, mariadb, my_db)
    add_source(cfg, "src")
    res = init_replica(cfg, "src", show_progress=False)
    assert not [w for w in res.warnings if "not carried" in w], res.warnings
    entries = {t["source_table"]: t for t in table_status(cfg, "src")}
    # the documented mapping, recorded and shown
    assert entries[f"{my_db}.{L63}a"]["target_table"] == f"app.{names.fit(L63 + 'a')}"
    assert entries[f"{my_db}.{L63}a"]["target_table"] != entries[f"{my_db}.{L63}b"]["target_table"]
    first = entries[f"{my_db}.{HOSTILE_TABLES[0]}"]["renamed_columns"]
    assert first == {k: v for k, v in names.column_names(HOSTILE_COLUMNS).items() if k != v}
    assert first["xmin"] == "xmin__2" and first["ctid"] == "ctid_" and "xmin_" not in first
    all_tables = [*plan, "p" * 64, "ch" * 32, "en"]
    assert_same(cfg, mariadb, my_db, pg_db, all_tables)
    view = source_rows(mariadb, my_db, "v" * 64, view_cols)
    assert sum(view.values()) > 0
    got_view = target_rows(pg_db, ("app", names.fit("v" * 64)), [names.natural_column(c) for c in view_cols])
    with psycopg.connect(pg_db) as conn:
        viewdef = conn.execute("SELECT pg_get_viewdef(%s::regclass)",
                               (sql.Identifier("app", names.fit("v" * 64)).as_string(conn),)).fetchone()
    assert got_view == view, viewdef

    with ReplicaThread(cfg) as rt:
        my_exec(mariadb, my_db, [w for t, (c, k) in plan.items() for w in _writes(rnd, t, c, k, ids[t], 8)])
        my_exec(mariadb, my_db, [f"DELETE FROM {q('p' * 64)} WHERE {q('ctid')} = 1",
                                 f"INSERT INTO en VALUES (3, '{'ü' * 70}')",
                                 "UPDATE en SET e = 'a' WHERE e <> 'a' LIMIT 1"])
        # DDL with hostile names: add, rename, drop columns; create and rename tables
        t0 = HOSTILE_TABLES[0]
        c = _key_ident(mariadb, my_db)
        with c.cursor() as cur:
            cur.execute(f"ALTER TABLE {q(t0)} ADD COLUMN {q('z' * 64)} varchar(10) DEFAULT 'zz'")
            cur.execute(f"ALTER TABLE {q(t0)} RENAME COLUMN {q('sp ace')} TO {q('cmax_')}")
            cur.execute(f"ALTER TABLE {q(t0)} DROP COLUMN {q('back`tick')}")
            cur.execute(f"ALTER TABLE {q(t0)} CHANGE COLUMN {q('select')} {q('oid')} varchar(40)")
            cur.execute(_create("new " + "w" * 60, ["xmax", "k" * 64], "k" * 64))
            cur.execute(f"INSERT INTO {q('new ' + 'w' * 60)} VALUES ('a', 1), (NULL, 2)")
            cur.execute(f"RENAME TABLE {q('sp ace')} TO {q('ren' + 'a' * 61)}")
            cur.execute(f"UPDATE {q(t0)} SET {q('z' * 64)} = 'set', {q('cmax_')} = 'renamed' LIMIT 3")
        c.close()
        _catch_up(cfg, rt)
    after = [t for t in all_tables if t != "sp ace"] + ["new " + "w" * 60, "ren" + "a" * 61]
    assert_same(cfg, mariadb, my_db, pg_db, after)
    entry = {t["source_table"]: t for t in table_status(cfg, "src")}[f"{my_db}.{t0}"]
    assert entry["renamed_columns"][("z" * 64)] == names.fit("z" * 64)
    assert entry["renamed_columns"].get("oid") is None          # not a system column since PostgreSQL 12
    st = status(cfg, "src")[0]
    assert st["errors"] == 0 and st["tables_disabled"] == 0, st

    # sync-tables re-copies under the same names; verify compares through the mapping
    sync_tables(cfg, "src", [t0, L63 + "b"])
    assert_same(cfg, mariadb, my_db, pg_db, after)
    results = verify(cfg, "src")
    assert results and all(r["equal"] for r in results), [r for r in results if not r["equal"]]

    # detach creates the hostile foreign key with PostgreSQL's names
    res = detach(cfg, "src")
    assert f"{my_db}.{'ch' * 32}.{'f' * 64}" in res.foreign_keys, res
    with psycopg.connect(pg_db) as conn:
        row = conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' "
                           "AND connamespace = 'app'::regnamespace").fetchone()
    assert row is not None and names.fit("c" * 64) in row[0] and "ctid_" in row[0]


@pytest.mark.parametrize("seed", [1, 2])
def test_random_identifiers_and_values(seed: int, pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    rnd = random.Random(seed)
    # the BMP without NUL; MySQL names do not end with a space
    pool = "abcXYZ019_ $.\"'`\\-+é中ß" + "".join(chr(rnd.randint(0x80, 0xD7FF)) for _ in range(30))

    def ident(max_len: int = 64) -> str:
        n = rnd.choice((1, 3, 8, 31, 32, 63, 64))
        n = min(n, max_len)
        word = "".join(rnd.choice(pool) for _ in range(n)).rstrip(" ") or "x"
        return rnd.choice([word, word, *sorted(names.SYSTEM_COLUMNS)])

    plan: dict[str, tuple[list[str], str | None]] = {}
    while len(plan) < 6:
        t = ident()
        if t.lower() in {p.lower() for p in plan}:
            continue
        cols: list[str] = []
        while len(cols) < rnd.randint(2, 7):
            c = ident()
            if c.lower() not in {x.lower() for x in cols}:
                cols.append(c)
        cols_key = (cols, rnd.choice([None, cols[0]]))
        try:
            my_exec(mariadb, my_db, [_create(t, *cols_key)])
        except pymysql.err.MySQLError as exc:
            # the server has the last word on what is legal: names whose file name would
            # be too long (1005, errno 36), or that it refuses outright
            assert exc.args[0] in (1005, 1059, 1103, 1166), exc
            continue
        plan[t] = cols_key
    ids: dict[str, list[int]] = {t: [] for t in plan}
    my_exec(mariadb, my_db, [w for t, (c, k) in plan.items() for w in _writes(rnd, t, c, k, ids[t], 10)])
    cfg = make_config(pg_db, mariadb, my_db)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    with ReplicaThread(cfg) as rt:
        for _ in range(3):
            my_exec(mariadb, my_db, [w for t, (c, k) in plan.items() for w in _writes(rnd, t, c, k, ids[t], 10)])
        _catch_up(cfg, rt)
    assert_same(cfg, mariadb, my_db, pg_db, list(plan))
    st = status(cfg, "src")[0]
    assert st["errors"] == 0 and st["tables_disabled"] == 0, st


def test_init_never_drops_what_it_did_not_create(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    my_exec(mariadb, my_db, ["CREATE TABLE orders (id int PRIMARY KEY)", "INSERT INTO orders VALUES (1)"])
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE TABLE app.orders (mine text)")
        conn.execute("INSERT INTO app.orders VALUES ('keep me')")
    cfg = make_config(pg_db, mariadb, my_db)
    add_source(cfg, "src")
    with pytest.raises(PgbatonError) as err:
        init_replica(cfg, "src", show_progress=False)
    assert "app.orders that pgbaton did not create" in str(err.value)
    assert f"sources.src.databases.{my_db}" in str(err.value)
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT mine FROM app.orders").fetchall() == [("keep me",)]
        conn.execute("DROP TABLE app.orders")
        conn.commit()
    # once it is out of the way, init works, and a re-init replaces only its own table
    init_replica(cfg, "src", show_progress=False)
    init_replica(cfg, "src", force=True, show_progress=False)
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT id FROM app.orders").fetchall() == [(1,)]
