"""pgbaton.mysql.fastrows against mysql-replication on a real MariaDB binlog.

The rows of test_types_roundtrip (every type, NULLs, minimum/maximum values, zero
and partial zero dates, every charset) are written, updated (full and minimal row
images) and deleted; the same binlog range is then read twice, with the library's
row event classes and with the fast ones, and every decoded row must be identical:
values, their types, key order and none sources.  Table ``b`` has geometry columns,
which the fast path leaves to the library; table ``c`` is ``b`` without them and is
decoded by the fast path.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, RowsEvent, UpdateRowsEvent, WriteRowsEvent

from pgbaton.mysql import fastrows, tablemap
from pgbaton.sandbox.servers import MariaDBServer

from ..unit.test_fastrows import canon
from .test_types_roundtrip import COLS, DDL, ROWS, UPDATES

FAST_COLS = ", ".join(c.strip() for c in COLS.split(",") if c.strip() not in ("geo", "pt"))


def _write_source(mariadb: MariaDBServer, db: str) -> tuple[str, int]:
    """Tables b (with geometry) and c (without), their rows, updates and deletes; returns the start position."""
    conn = pymysql.connect(**mariadb.connect_args(db), autocommit=True, charset="utf8mb4")  # type: ignore[arg-type]
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(DDL.format(name="b"))
        cur.execute("CREATE TABLE c LIKE b")
        cur.execute("ALTER TABLE c DROP COLUMN geo, DROP COLUMN pt")
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
        assert row is not None
        cur.execute(f"INSERT INTO b ({COLS}) VALUES {', '.join(ROWS)}")
        cur.execute(f"INSERT INTO c ({FAST_COLS}) SELECT {FAST_COLS} FROM b ORDER BY id")
        for stmt in UPDATES:
            cur.execute(stmt)
            cur.execute(stmt.replace("`b`", "`c`"))
        # every row's full before and after image, with every edge value in it
        cur.execute("UPDATE c SET id = id + 100 ORDER BY id DESC")
        cur.execute("UPDATE c SET ti = -ti, mi = -mi, dc = -dc, tm6 = '-01:02:03.000004', dtm3 = '2021-02-03'"
                    " WHERE id IN (102, 104)")
        # minimal row images: columns missing from the images ("cols bitmap")
        cur.execute("SET SESSION binlog_row_image = 'MINIMAL'")
        cur.execute("UPDATE c SET vc = CONCAT('minimal', id), y = 1999, st = 'b', en = 'b c' WHERE id IN (101, 103)")
        cur.execute("DELETE FROM c WHERE id = 101")
        cur.execute("SET SESSION binlog_row_image = 'NOBLOB'")
        cur.execute("UPDATE c SET iu = 42 WHERE id = 102")
        cur.execute("SET SESSION binlog_row_image = 'FULL'")
        cur.execute("DELETE FROM c")
        cur.execute("DELETE FROM b WHERE id = 2")
    conn.close()
    return str(row[0]), int(row[1])


def _read(mariadb: MariaDBServer, db: str, log_file: str, log_pos: int, fast: bool,
          server_id: int) -> list[tuple[str, str, list[dict[str, Any]]]]:
    tablemap.install()  # as pgbaton reads: the table map cache hands the same Table objects to both reads
    if fast:
        assert fastrows.install()
    else:
        fastrows.uninstall()
    stream = BinLogStreamReader(
        connection_settings=mariadb.connect_args(), server_id=server_id, log_file=log_file, log_pos=log_pos,
        resume_stream=True, blocking=False, only_schemas=[db], enable_logging=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
    )
    out = []
    try:
        for ev in stream:
            assert isinstance(ev, RowsEvent) and fastrows.installed() == fast
            out.append((type(ev).__name__, ev.table, ev.rows))
    finally:
        stream.close()
    return out


def test_fast_rows_equal_library_rows(mariadb: MariaDBServer, my_db: str) -> None:
    log_file, log_pos = _write_source(mariadb, my_db)
    was_installed = fastrows.installed()
    try:
        library = _read(mariadb, my_db, log_file, log_pos, False, 9931)
        before = dict(fastrows.stats)
        fast = _read(mariadb, my_db, log_file, log_pos, True, 9932)
        after = dict(fastrows.stats)
    finally:
        if was_installed:
            fastrows.install()
        else:
            fastrows.uninstall()

    kinds = {(kind, table) for kind, table, _ in library}
    assert kinds == {("WriteRowsEvent", "b"), ("WriteRowsEvent", "c"), ("UpdateRowsEvent", "b"),
                     ("UpdateRowsEvent", "c"), ("DeleteRowsEvent", "c"), ("DeleteRowsEvent", "b")}
    assert len(fast) == len(library)
    for k, (lib_ev, fast_ev) in enumerate(zip(library, fast, strict=True)):
        assert lib_ev[:2] == fast_ev[:2]
        assert len(lib_ev[2]) == len(fast_ev[2])
        for n, (lib_row, fast_row) in enumerate(zip(lib_ev[2], fast_ev[2], strict=True)):
            assert canon(fast_row) == canon(lib_row), f"event {k} ({lib_ev[0]} {lib_ev[1]}) row {n}"

    # c went through the fast path, b (geometry) through the library, and nothing failed on the way
    c_events = sum(1 for _, table, _ in fast if table == "c")
    b_events = sum(1 for _, table, _ in fast if table == "b")
    assert after["fast"] - before["fast"] == c_events
    assert after["fallback"] - before["fallback"] == b_events
    assert after["error"] == before["error"]

    # minimal images were really there (and decoded the same, above)
    minimal = [row for kind, table, rows in fast if table == "c" and kind == "UpdateRowsEvent" for row in rows
               if "cols bitmap" in row["before_none_sources"].values()]
    assert minimal

    # literal values from the fast path: a wrong sign, width or fraction shows here
    inserted = {r["values"]["id"]: r for kind, table, rows in fast if (kind, table) == ("WriteRowsEvent", "c")
                for r in rows}
    r1, r2, r3, r4 = (inserted[i]["values"] for i in (1, 2, 3, 4))
    assert (r2["ti"], r2["tiu"], r2["si"], r2["mi"], r2["i"], r2["bi"]) == (
        -128, 0, -32768, -8388608, -2147483648, -9223372036854775808)
    assert (r3["tiu"], r3["siu"], r3["miu"], r3["iu"], r3["biu"]) == (255, 65535, 16777215, 4294967295, 2 ** 64 - 1)
    assert r2["dc"].as_tuple() == decimal.Decimal("-99999999999999999999.9999999999").as_tuple()
    assert r4["dc"].as_tuple() == decimal.Decimal("0E-10").as_tuple()
    assert r2["dc0"] == -99999 and r1["dc0"] is None
    assert r2["d"] == -1.7976931348623157e308 and r3["d"] == 0.30000000000000004
    assert (r3["b1"], r3["b10"], r3["b64"], r2["b10"]) == ("1", "1000000001", "1" * 64, "0" * 10)
    assert (r2["y"], r3["y"], r4["y"]) == (1901, 2155, 1900)
    assert r2["dtm6"] == datetime.datetime(2020, 1, 2, 3, 4, 5, 123456)
    assert r2["dtm3"] == datetime.datetime(2020, 1, 2, 3, 4, 5, 500000)
    assert r4["dtm6"] == datetime.datetime(2020, 1, 2, 3, 4, 5, 1)
    assert r2["ts"] == datetime.datetime(1970, 1, 1, 0, 0, 1, 1)
    assert r4["ts"] == datetime.datetime(2020, 6, 1, 12, 0, 0, 500000)
    assert r2["tm"] == -datetime.timedelta(hours=838, minutes=59, seconds=59)
    assert r3["tm6"] == datetime.timedelta(hours=100, microseconds=500000)
    assert r3["dt"] is None and inserted[3]["none_sources"]["dt"] == "out of date range"
    assert r3["dtm"] is None and inserted[3]["none_sources"]["dtm"] == "out of datetime2 range"
    assert r1["ti"] is None and inserted[1]["none_sources"]["ti"] == "null"
    assert r2["st"] is None and inserted[2]["none_sources"]["st"] == "empty set"
    assert r3["st"] == {"a", "c d", 'x"y'} and r3["en"] == "it's" and r4["en"] == "b c"
    assert (r2["l1"], r2["cy"], r2["u3"], r2["sj"], r2["gb"]) == ("café ÿ", "Привет", "ünïcödé", "ｱ日本語", "中文简体")
    assert r2["tx"] == "😀 é ß 中文 \0x"
    assert r2["uc"] == "ü€ñ".encode("utf-16-be")  # ucs2: no Python codec, the library gives the bytes
    # binary(4) comes without its trailing zero bytes in the binlog
    assert (r2["bn"], r2["vb"], r2["bl"], r3["bn"]) == (b"\x00\x41", b"\x00\x00\x00",
                                                        b"\x00\xff\x0a\x09\x5c\x0d", b"\x01\x02\x03\x04")
    assert r2["lb"] == ""  # an empty binary string comes out as "" from the library: kept
    assert r3["js"] == "[]"
