"""Every MySQL type through both paths, snapshot (COPY text) and binlog (jsonb),
against a real MariaDB and real PostgreSQL 15 / 18: both must give the expected
values and exactly the same rows."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pymysql
import pytest
from psycopg import sql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import UpdateRowsEvent, WriteRowsEvent

from pgbaton.mysql.introspect import introspect, warnings_for
from pgbaton.mysql.model import MyTable
from pgbaton.mysql.pgddl import create_table_sql, post_load_sql
from pgbaton.mysql.typemap import SNAPSHOT_SESSION_SQL, TypeOptions, row_converter, snapshot_select
from pgbaton.sandbox.servers import MariaDBServer, PostgresServer

SCHEMA = "rep"

DDL = """CREATE TABLE `{name}` (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ti tinyint, tiu tinyint unsigned, t1 tinyint(1), si smallint, siu smallint unsigned,
  mi mediumint, miu mediumint unsigned, i int, iu int unsigned, bi bigint, biu bigint unsigned,
  dc decimal(30,10), dc0 decimal(5,0) DEFAULT -5, f float, d double,
  b1 bit(1), b10 bit(10) DEFAULT b'101', b64 bit(64), y year,
  dt date, dtn date NOT NULL DEFAULT '2000-01-01', dtm datetime, dtm6 datetime(6) DEFAULT current_timestamp(6),
  dtm3 datetime(3), ts timestamp(6) NULL DEFAULT NULL, ts0 timestamp NULL DEFAULT '0000-00-00 00:00:00',
  tm time, tm6 time(6), tm2 time(2),
  ch char(5) DEFAULT 'it''s', vc varchar(50), tx text, l1 varchar(20) CHARACTER SET latin1,
  cy varchar(20) CHARACTER SET cp1251, u3 varchar(20) CHARACTER SET utf8mb3, sj varchar(20) CHARACTER SET sjis,
  gb varchar(20) CHARACTER SET gbk, uc varchar(20) CHARACTER SET ucs2,
  en enum('', 'a', 'b c', 'it''s') NOT NULL DEFAULT 'a', st set('a', 'b', 'c d', 'x"y'),
  js json, bn binary(4), vb varbinary(10), bl blob, lb longblob, geo geometry, pt point,
  gv int AS (i * 2) VIRTUAL, gs varchar(60) AS (CONCAT(vc, '!')) PERSISTENT,
  UNIQUE KEY uq_vc (vc), KEY k_prefix (tx(10)), KEY k_multi (i, bi), FULLTEXT KEY ft (tx)
) AUTO_INCREMENT = 1000"""

COLS = ("id, ti, tiu, t1, si, siu, mi, miu, i, iu, bi, biu, dc, dc0, f, d, b1, b10, b64, y, dt, dtn, dtm, dtm6,"
        " dtm3, ts, ts0, tm, tm6, tm2, ch, vc, tx, l1, cy, u3, sj, gb, uc, en, st, js, bn, vb, bl, lb, geo, pt")

ROWS = [
    # 1: NULL everywhere it can be
    "(1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL, NULL, NULL, '1999-12-31', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL, NULL, NULL, NULL, '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    # 2: minimum values, specials, every charset
    "(2, -128, 0, 5, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,"
    " '-99999999999999999999.9999999999', -99999, -3.40282e38, -1.7976931348623157e308, b'0', b'0000000000',"
    " b'0', 1901, '1000-01-01', '1000-01-01', '1000-01-01 00:00:00', '2020-01-02 03:04:05.123456',"
    " '2020-01-02 03:04:05.5', '1970-01-01 00:00:01.000001', '1970-01-01 00:00:01', '-838:59:59',"
    " '-12:34:56.789012', '-00:00:00.01', 'ab  ', 'tab\\there\\nnl\\\\bs ''q'' \"dq\" \\r end',"
    " '😀 é ß 中文 \\0x', 'café ÿ', 'Привет', 'ünïcödé', 'ｱ日本語', '中文简体', 'ü€ñ', '', '',"
    " '{\"a\": 1.50, \"b\": [1e2, 12345678901234567890123], \"s\": \"x\\\\ty\\\\u00e9\"}',"
    " 0x0041, 0x000000, 0x00FF0A095C0D, '', ST_GeomFromText('LINESTRING(0 0,1 1)'),"
    " ST_GeomFromText('POINT(1.5 -2.5)', 4326))",
    # 3: maximum values, zero and partial zero dates
    "(3, 127, 255, 1, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807,"
    " 18446744073709551615, '99999999999999999999.9999999999', 99999, 3.14, 0.1e0 + 0.2e0, b'1',"
    " b'1000000001', b'1111111111111111111111111111111111111111111111111111111111111111', 2155,"
    " '0000-00-00', '0000-00-00', '2020-00-00 10:00:00', '0000-00-00 00:00:00', '0000-01-01 00:00:00',"
    " '0000-00-00 00:00:00', '2038-01-19 03:14:07', '838:59:59', '100:00:00.5', '-838:59:59',"
    " 'x', 'v3', 'plain', 'x', 'x', 'x', 'x', 'x', 'x', 'it''s', 'a,c d,x\"y', '[]',"
    " 0x01020304, '', 0x00, 0x00, NULL, NULL)",
    # 4: more partial zero dates, year 0, small fractions, empty strings
    "(4, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, b'1', b'0000000001', b'0', 0,"
    " '2020-01-00', '2020-00-05', '2020-01-02 03:04:05', '2020-01-02 03:04:05.000001', '2020-01-02 03:04:05.999',"
    " '2020-06-01 12:00:00.5', NULL, '00:00:00', '-00:00:00.000001', '23:59:59.99', '', '', '', '', '', '',"
    " '', '', '', 'b c', 'b', 'null', 0x00000000, 0x00, '', 0x00, NULL, NULL)",
]

UPDATES = [
    "UPDATE `b` SET vc = 'upd', i = 7 WHERE id = 2",
    "UPDATE `b` SET tm6 = '-00:00:01.5', st = '' WHERE id = 3",
]


def _my(mariadb: MariaDBServer, db: str) -> pymysql.connections.Connection:
    return pymysql.connect(**mariadb.connect_args(db), autocommit=True, charset="utf8mb4")  # type: ignore[arg-type]


def _make_source(mariadb: MariaDBServer, db: str) -> tuple[str, int]:
    """Tables a (for the snapshot) and b (for the binlog) with the same rows; returns
    the binlog position before b's rows."""
    conn = _my(mariadb, db)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        for name in ("a", "b"):
            cur.execute(DDL.format(name=name))
        cur.execute(f"INSERT INTO `a` ({COLS}) VALUES {', '.join(ROWS)}")
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
        assert row is not None
        cur.execute(f"INSERT INTO `b` ({COLS}) VALUES {', '.join(ROWS)}")
        for stmt in UPDATES:
            cur.execute(stmt)
    conn.close()
    return str(row[0]), int(row[1])


def _tables(mariadb: MariaDBServer, db: str) -> dict[str, MyTable]:
    conn = _my(mariadb, db)
    try:
        return {t.name: t for t in introspect(conn, [db], lambda d, t: True)}
    finally:
        conn.close()


def _snapshot(mariadb: MariaDBServer, db: str, table: MyTable, pg: psycopg.Connection, opts: TypeOptions,
              name: str) -> None:
    for stmt in create_table_sql(table, SCHEMA, opts, name=name):
        pg.execute(stmt)
    conn = _my(mariadb, db)
    with conn.cursor() as cur:
        for setting in SNAPSHOT_SESSION_SQL:
            cur.execute(setting)
        cur.execute(snapshot_select(table.columns, db, table.name, opts))
        lines = [r[0] for r in cur.fetchall()]
    conn.close()
    assert all(isinstance(line, str) for line in lines), "the COPY line must be text, not a binary string"
    with pg.cursor() as pcur, pcur.copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(SCHEMA, name))) as cp:
        for line in lines:
            cp.write(line.encode("utf-8") + b"\n")
    for stmt in post_load_sql(table, SCHEMA, opts, name=name):
        pg.execute(stmt)
    pg.commit()


def _insert_json(pg: psycopg.Connection, name: str, row: dict[str, Any]) -> None:
    pg.execute(sql.SQL("INSERT INTO {t} SELECT * FROM jsonb_populate_record(NULL::{t}, %s::jsonb)").format(
        t=sql.Identifier(SCHEMA, name)), (orjson.dumps(row).decode(),))


def _row_text(pg: psycopg.Connection, name: str, row: dict[str, Any]) -> str:
    r = pg.execute(sql.SQL("SELECT jsonb_populate_record(NULL::{t}, %s::jsonb)::text").format(
        t=sql.Identifier(SCHEMA, name)), (orjson.dumps(row).decode(),)).fetchone()
    assert r is not None
    return str(r[0])


def _rows(pg: psycopg.Connection, name: str) -> list[str]:
    return [r[0] for r in pg.execute(
        sql.SQL("SELECT t::text FROM {} AS t ORDER BY id").format(sql.Identifier(SCHEMA, name))).fetchall()]


def _binlog(mariadb: MariaDBServer, db: str, table: MyTable, pg: psycopg.Connection, opts: TypeOptions,
            log_file: str, log_pos: int, snap_a: list[str]) -> int:
    """Replay b's binlog events into PostgreSQL table bin_b; check update before-images."""
    for stmt in create_table_sql(table, SCHEMA, opts, name="bin_b"):
        pg.execute(stmt)
    conv = row_converter(table.columns, opts)
    stream = BinLogStreamReader(
        connection_settings=mariadb.connect_args(), server_id=9917, log_file=log_file, log_pos=log_pos,
        resume_stream=True, blocking=False, only_events=[WriteRowsEvent, UpdateRowsEvent], only_schemas=[db],
    )
    updates = 0
    try:
        for event in stream:
            if event.table != "b":
                continue
            for row in event.rows:
                if isinstance(event, WriteRowsEvent):
                    _insert_json(pg, "bin_b", conv(row["values"], row["none_sources"]))
                    continue
                before = conv(row["before_values"], row["before_none_sources"])
                # the before image converts to exactly the row the snapshot of a copied
                assert _row_text(pg, "bin_b", before) == snap_a[int(before["id"]) - 1]
                pg.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(SCHEMA, "bin_b")),
                           (before["id"],))
                _insert_json(pg, "bin_b", conv(row["after_values"], row["after_none_sources"]))
                updates += 1
    finally:
        stream.close()
    pg.commit()
    return updates


def _assert_same_rows(pg: psycopg.Connection, left: str, right: str) -> None:
    """Column by column, in PostgreSQL's text form, for a readable failure."""
    names = [r[0] for r in pg.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
        " ORDER BY ordinal_position", (SCHEMA, left))]

    def load(name: str) -> dict[int, dict[str, Any]]:
        q = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(n)) for n in names),
            sql.Identifier(SCHEMA, name))
        return {int(r[0]): dict(zip(names, r, strict=True)) for r in pg.execute(q)}
    a, b = load(left), load(right)
    assert sorted(a) == sorted(b)
    for row_id, row in a.items():
        for col, value in row.items():
            assert value == b[row_id][col], f"row {row_id} column {col}: {left} {value!r} != {right} {b[row_id][col]!r}"


def _value(pg: psycopg.Connection, table: str, col: str, row_id: int) -> Any:
    r = pg.execute(sql.SQL("SELECT {}::text FROM {} WHERE id = %s").format(
        sql.Identifier(col), sql.Identifier(SCHEMA, table)), (row_id,)).fetchone()
    assert r is not None
    return r[0]


EXPECTED_TEXT: dict[tuple[int, str], str | None] = {
    (1, "ti"): None, (1, "en"): "", (1, "st"): None, (1, "dc0"): None, (1, "ts0"): None,
    (2, "ti"): "-128", (2, "tiu"): "0", (2, "si"): "-32768", (2, "mi"): "-8388608", (2, "i"): "-2147483648",
    (2, "bi"): "-9223372036854775808", (2, "dc"): "-99999999999999999999.9999999999", (2, "dc0"): "-99999",
    (2, "f"): "-3.40282e+38", (2, "d"): "-1.7976931348623157e+308", (2, "b1"): "0", (2, "b10"): "0000000000",
    (2, "b64"): "0" * 64, (2, "y"): "1901", (2, "dt"): "1000-01-01", (2, "dtm"): "1000-01-01 00:00:00",
    (2, "dtm6"): "2020-01-02 03:04:05.123456", (2, "dtm3"): "2020-01-02 03:04:05.5",
    (2, "ts"): "1970-01-01 00:00:01.000001+00", (2, "ts0"): "1970-01-01 00:00:01+00",
    (2, "tm"): "-838:59:59", (2, "tm6"): "-12:34:56.789012", (2, "tm2"): "-00:00:00.01",
    (2, "ch"): "ab", (2, "vc"): "tab\there\nnl\\bs 'q' \"dq\" \r end", (2, "tx"): "😀 é ß 中文 x",
    (2, "l1"): "café ÿ", (2, "cy"): "Привет", (2, "u3"): "ünïcödé", (2, "sj"): "ｱ日本語", (2, "gb"): "中文简体",
    (2, "uc"): "ü€ñ", (2, "en"): "", (2, "st"): "{}", (2, "bn"): "\\x00410000", (2, "vb"): "\\x000000",
    (2, "bl"): "\\x00ff0a095c0d", (2, "lb"): "\\x", (2, "gv"): "-2147483648",
    (2, "gs"): "tab\there\nnl\\bs 'q' \"dq\" \r end!",
    (3, "tiu"): "255", (3, "siu"): "65535", (3, "miu"): "16777215", (3, "iu"): "4294967295",
    (3, "bi"): "9223372036854775807", (3, "biu"): "18446744073709551615", (3, "f"): "3.14",
    (3, "d"): "0.30000000000000004", (3, "b1"): "1", (3, "b10"): "1000000001", (3, "b64"): "1" * 64,
    (3, "y"): "2155", (3, "tm"): "838:59:59", (3, "tm6"): "100:00:00.5", (3, "tm2"): "-838:59:59",
    (3, "en"): "it's", (3, "st"): '{a,"c d","x\\"y"}', (3, "js"): "[]", (3, "bn"): "\\x01020304",
    (3, "vb"): "\\x", (3, "ts0"): "2038-01-19 03:14:07+00",
    (4, "y"): "0", (4, "b10"): "0000000001", (4, "tm6"): "-00:00:00.000001", (4, "tm2"): "23:59:59.99",
    (4, "dtm6"): "2020-01-02 03:04:05.000001", (4, "dtm3"): "2020-01-02 03:04:05.999",
    (4, "ts"): "2020-06-01 12:00:00.5+00", (4, "st"): "{b}", (4, "js"): None, (4, "bn"): "\\x00000000",
    (4, "vc"): "", (4, "dc"): "0.0000000000", (4, "f"): "0",
}


def _zero_expectations(opts: TypeOptions) -> dict[tuple[int, str], str | None]:
    s = opts.zero_dates == "sentinel"
    d, t, tz = "0001-01-01", "0001-01-01 00:00:00", "0001-01-01 00:00:00+00"
    return {
        (3, "dt"): d if s else None, (3, "dtn"): d, (3, "dtm"): t if s else None, (3, "dtm6"): t if s else None,
        (3, "dtm3"): t if s else None, (3, "ts"): tz if s else None, (4, "dt"): d if s else None,
        (4, "dtn"): d, (1, "dtn"): "1999-12-31",
        (2, "t1"): "true" if opts.tinyint1_as_boolean else "5", (4, "t1"): "false" if opts.tinyint1_as_boolean else "0",
    }


@pytest.fixture
def pg(pg_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_db) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        conn.commit()
        yield conn


OPTION_SETS = [
    TypeOptions(),
    TypeOptions(tinyint1_as_boolean=True, zero_dates="sentinel"),
]


@pytest.mark.parametrize("opts", OPTION_SETS, ids=["defaults", "bool-sentinel"])
def test_snapshot_and_binlog_agree(mariadb: MariaDBServer, my_db: str, pg: psycopg.Connection,
                                   opts: TypeOptions) -> None:
    log_file, log_pos = _make_source(mariadb, my_db)
    tables = _tables(mariadb, my_db)
    _snapshot(mariadb, my_db, tables["a"], pg, opts, "snap_a")
    _snapshot(mariadb, my_db, tables["b"], pg, opts, "snap_b")
    snap_a = _rows(pg, "snap_a")
    assert len(snap_a) == len(ROWS)

    expected = {**EXPECTED_TEXT, **_zero_expectations(opts)}
    for (row_id, col), want in expected.items():
        assert _value(pg, "snap_a", col, row_id) == want, f"snapshot row {row_id} column {col}"

    updates = _binlog(mariadb, my_db, tables["b"], pg, opts, log_file, log_pos, snap_a)
    assert updates == len(UPDATES)
    _assert_same_rows(pg, "bin_b", "snap_b")
    assert _rows(pg, "bin_b") == _rows(pg, "snap_b")
    # the write events (before the updates) gave the snapshot's rows as well
    assert _value(pg, "bin_b", "tm6", 3) == "-00:00:01.5"
    assert _value(pg, "bin_b", "st", 3) == "{}"
    assert _value(pg, "bin_b", "gs", 2) == "upd!"


def test_spatial_and_generated_values(mariadb: MariaDBServer, my_db: str, pg: psycopg.Connection) -> None:
    _make_source(mariadb, my_db)
    _snapshot(mariadb, my_db, _tables(mariadb, my_db)["a"], pg, TypeOptions(), "snap_a")
    r = pg.execute("SELECT pt, geo, gv, gs FROM rep.snap_a WHERE id = 2").fetchone()
    assert r is not None
    assert bytes(r[0]) == struct.pack("<BIdd", 1, 1, 1.5, -2.5)          # WKB of POINT(1.5 -2.5)
    assert bytes(r[1]) == struct.pack("<BII4d", 1, 2, 2, 0, 0, 1, 1)     # LINESTRING(0 0,1 1)
    assert r[2] == -2147483648 and r[3].endswith(' end!')


def test_keys_indexes_identity(mariadb: MariaDBServer, my_db: str, pg: psycopg.Connection) -> None:
    _make_source(mariadb, my_db)
    table = _tables(mariadb, my_db)["a"]
    assert table.auto_increment == 1000
    assert {i.name: i.kind for i in table.indexes} == {
        "PRIMARY": "BTREE", "uq_vc": "BTREE", "k_prefix": "BTREE", "k_multi": "BTREE", "ft": "FULLTEXT"}
    assert table.column("js").data_type == "json"
    assert table.column("ch").default == "'it''s'"
    assert any("generated" in w for w in warnings_for(table))
    _snapshot(mariadb, my_db, table, pg, TypeOptions(), "snap_a")
    idx = {r[0]: r[1] for r in pg.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'rep' AND tablename = 'snap_a'")}
    assert set(idx) == {"snap_a_pkey", "snap_a_uq_vc", "snap_a_k_prefix", "snap_a_k_multi", "snap_a_ft"}
    assert "UNIQUE" in idx["snap_a_uq_vc"] and '"left"(tx, 10)' in idx["snap_a_k_prefix"]
    assert "gin" in idx["snap_a_ft"]
    row = pg.execute("INSERT INTO rep.snap_a (vc) VALUES ('new') RETURNING id, ch, dc0, b10, dtn, en, ts0").fetchone()
    assert row is not None
    assert row[0] == 1000                                  # the source's next AUTO_INCREMENT
    assert row[1:5] == ("it's", -5, "0000000101", __import__("datetime").date(2000, 1, 1))
    assert row[5] == "a" and row[6] is None                # zero-date default -> NULL under zero_dates=null


def test_snapshot_into_pg18(mariadb: MariaDBServer, my_db: str, pg18: PostgresServer) -> None:
    _make_source(mariadb, my_db)
    table = _tables(mariadb, my_db)["a"]
    with psycopg.connect(pg18.dsn(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(my_db)))
    try:
        with psycopg.connect(pg18.dsn(my_db)) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
            _snapshot(mariadb, my_db, table, conn, TypeOptions(), "snap_a")
            expected = {**EXPECTED_TEXT, **_zero_expectations(TypeOptions())}
            for (row_id, col), want in expected.items():
                assert _value(conn, "snap_a", col, row_id) == want, f"row {row_id} column {col}"
    finally:
        with psycopg.connect(pg18.dsn(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(my_db)))
