"""pgbaton.mysql.fastrows against mysql-replication itself, without a server.

Row event bodies are built here byte by byte (random values, edge values, random
NULL and columns-present bitmaps) and decoded twice: by the library's event
classes and by the fast ones, on identical packets.  Values, none sources, key
order, value types and the packet position afterwards must be identical.
"""

from __future__ import annotations

import datetime
import decimal
import random
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pymysql.protocol import MysqlPacket
from pymysqlreplication.column import Column
from pymysqlreplication.constants import BINLOG, FIELD_TYPE
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import DeleteRowsEvent, RowsEvent, UpdateRowsEvent, WriteRowsEvent
from pymysqlreplication.table import Table

from pgbaton.mysql import fastrows

T = FIELD_TYPE


def col(type_: int, name: str, **kw: Any) -> Column:
    attrs: dict[str, Any] = dict(type=type_, name=name, unsigned=False, is_primary=False, charset_id=None,
                                 character_set_name=None, collation_name=None, enum_values=None, set_values=None,
                                 visibility=False)
    attrs.update(kw)
    return Column(**attrs)


# ---- random column values, as the server lays them out --------------------------------------

Gen = Callable[[random.Random], bytes]


def fixed(n: int, edges: tuple[bytes, ...] = ()) -> Gen:
    def gen(r: random.Random) -> bytes:
        if edges and r.random() < 0.3:
            return r.choice(edges)
        return r.randbytes(n)
    return gen


def int_edges(n: int) -> tuple[bytes, ...]:
    return (b"\x00" * n, b"\xff" * n, b"\x7f" + b"\xff" * (n - 1), b"\x80" + b"\x00" * (n - 1),
            b"\xff" * (n - 1) + b"\x7f", b"\x00" * (n - 1) + b"\x80", b"\x01" + b"\x00" * (n - 1))


def pascal(size: int, content: Callable[[random.Random], bytes]) -> Gen:
    def gen(r: random.Random) -> bytes:
        data = content(r)[:(1 << 8 * size) - 1]
        return len(data).to_bytes(size, "little") + data
    return gen


def text(r: random.Random) -> bytes:
    alphabet = "abc xyz'\"\\\t\n\0éßÿ€Привет中文😀"
    return "".join(r.choice(alphabet) for _ in range(r.randrange(0, 40))).encode()


def latin(r: random.Random) -> bytes:
    undefined = {0x81, 0x8D, 0x8F, 0x90, 0x9D}  # cp1252 has no character there: the decode raises
    return bytes(b for b in r.randbytes(r.randrange(0, 30)) if b not in undefined)


def raw(r: random.Random) -> bytes:
    return r.randbytes(r.choice((0, 1, 4, 17, 300)))


def fsp_bytes(fsp: int, r: random.Random) -> bytes:
    size = (fsp + 1) // 2
    if size == 0:
        return b""
    if r.random() < 0.97:  # a real fraction: value * 10^(2*size - fsp) in size bytes, big-endian
        frac = r.randrange(10 ** fsp) * 10 ** (2 * size - fsp)
        return frac.to_bytes(size, "big")
    return r.randbytes(size)


def datetime2(fsp: int) -> Gen:
    def gen(r: random.Random) -> bytes:
        if r.random() < 0.1:
            packed = 0 if r.random() < 0.7 else r.getrandbits(39)  # zero date / garbage
        else:
            y, mo, d = r.randrange(0, 10000), r.randrange(0, 13), r.randrange(0, 32)
            h, mi, s = r.randrange(24), r.randrange(60), r.randrange(60)
            packed = ((y * 13 + mo) << 22) | (d << 17) | (h << 12) | (mi << 6) | s
        return (packed | 1 << 39).to_bytes(5, "big") + fsp_bytes(fsp, r)
    return gen


def time2(fsp: int) -> Gen:
    """MySQL's TIME2: the signed fixed-point value (int part, fraction) plus an offset, big-endian."""
    size = (fsp + 1) // 2

    def gen(r: random.Random) -> bytes:
        h, mi, s = r.randrange(839), r.randrange(60), r.randrange(60)
        frac = r.randrange(10 ** fsp) * 10 ** (2 * size - fsp) if fsp else 0
        value = ((h << 12) | (mi << 6) | s) << 8 * size | frac
        if r.random() < 0.5:
            value = -value  # a negative time with a fraction borrows from the int part
        return ((0x800000 << 8 * size) + value).to_bytes(3 + size, "big")
    return gen


def timestamp2(fsp: int) -> Gen:
    def gen(r: random.Random) -> bytes:
        secs = r.choice((0, 1, 2 ** 31 - 1, r.randrange(2 ** 31), r.randrange(-2 ** 31, 0)))
        return struct.pack(">i", secs) + fsp_bytes(fsp, r)
    return gen


def date(r: random.Random) -> bytes:
    if r.random() < 0.2:
        return b"\x00\x00\x00"
    y, m, d = r.randrange(0, 10000), r.randrange(0, 13), r.randrange(0, 32)
    if r.random() < 0.95:  # mostly real dates; the rest may be partial zero or invalid (both must raise)
        d = min(d, 28)
    return ((y << 9) | (m << 5) | d).to_bytes(3, "little")


def new_decimal(precision: int, decimals: int) -> Gen:
    def gen(r: random.Random) -> bytes:
        if r.random() < 0.02:  # garbage: both sides must agree (or both fail)
            return r.randbytes(_decimal_size(precision, decimals))
        ip = r.randrange(10 ** (precision - decimals)) if precision > decimals else 0
        fp = r.randrange(10 ** decimals) if decimals else 0
        return _pack_decimal(r.random() < 0.4, ip, fp, precision, decimals)
    return gen


_DIG = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


def _decimal_size(precision: int, decimals: int) -> int:
    ui, ci = divmod(precision - decimals, 9)
    uf, cf = divmod(decimals, 9)
    return _DIG[ci] + 4 * ui + 4 * uf + _DIG[cf]


def _pack_decimal(negative: bool, ip: int, fp: int, precision: int, decimals: int) -> bytes:
    """MySQL's decimal2bin, written from the format description."""
    ui, ci = divmod(precision - decimals, 9)
    uf, cf = divmod(decimals, 9)
    out = b""
    if ci:
        out += (ip // 10 ** (9 * ui)).to_bytes(_DIG[ci], "big")
    for k in range(ui - 1, -1, -1):
        out += (ip // 10 ** (9 * k) % 10 ** 9).to_bytes(4, "big")
    for k in range(uf):
        out += (fp // 10 ** (decimals - 9 * (k + 1)) % 10 ** 9).to_bytes(4, "big")
    if cf:
        out += (fp % 10 ** cf).to_bytes(_DIG[cf], "big")
    data = bytearray(out)
    if negative:
        data = bytearray(b ^ 0xFF for b in data)
    data[0] ^= 0x80
    return bytes(data)


# column, generator
SCHEMA: list[tuple[Column, Gen]] = [
    (col(T.TINY, "ti"), fixed(1, int_edges(1))),
    (col(T.TINY, "tiu", unsigned=True), fixed(1, int_edges(1))),
    (col(T.SHORT, "si"), fixed(2, int_edges(2))),
    (col(T.SHORT, "siu", unsigned=True), fixed(2, int_edges(2))),
    (col(T.INT24, "mi"), fixed(3, int_edges(3))),
    (col(T.INT24, "miu", unsigned=True), fixed(3, int_edges(3))),
    (col(T.LONG, "i"), fixed(4, int_edges(4))),
    (col(T.LONG, "iu", unsigned=True), fixed(4, int_edges(4))),
    (col(T.LONGLONG, "bi"), fixed(8, int_edges(8))),
    (col(T.LONGLONG, "biu", unsigned=True), fixed(8, int_edges(8))),
    (col(T.YEAR, "y"), fixed(1)),
    (col(T.FLOAT, "f", size=4), fixed(4, (struct.pack("<f", float("nan")), struct.pack("<f", -0.0)))),
    (col(T.DOUBLE, "d", size=8), fixed(8, (struct.pack("<d", float("inf")), struct.pack("<d", 0.1)))),
    (col(T.NEWDECIMAL, "dc", precision=30, decimals=10), new_decimal(30, 10)),
    (col(T.NEWDECIMAL, "dc0", precision=5, decimals=0), new_decimal(5, 0)),
    (col(T.NEWDECIMAL, "dcf", precision=4, decimals=4), new_decimal(4, 4)),
    (col(T.NEWDECIMAL, "dc18", precision=18, decimals=9), new_decimal(18, 9)),
    (col(T.NEWDECIMAL, "dc65", precision=65, decimals=30), new_decimal(65, 30)),
    (col(T.BIT, "b1", bits=1, bytes=1), fixed(1)),
    (col(T.BIT, "b10", bits=10, bytes=2), fixed(2)),
    (col(T.BIT, "b64", bits=64, bytes=8), fixed(8)),
    (col(T.DATE, "dt"), date),
    (col(T.DATETIME2, "dtm", fsp=0), datetime2(0)),
    (col(T.DATETIME2, "dtm1", fsp=1), datetime2(1)),
    (col(T.DATETIME2, "dtm3", fsp=3), datetime2(3)),
    (col(T.DATETIME2, "dtm6", fsp=6), datetime2(6)),
    (col(T.TIMESTAMP2, "ts", fsp=0), timestamp2(0)),
    (col(T.TIMESTAMP2, "ts2", fsp=2), timestamp2(2)),
    (col(T.TIMESTAMP2, "ts5", fsp=5), timestamp2(5)),
    (col(T.TIME2, "tm", fsp=0), time2(0)),
    (col(T.TIME2, "tm1", fsp=1), time2(1)),
    (col(T.TIME2, "tm2", fsp=2), time2(2)),
    (col(T.TIME2, "tm3", fsp=3), time2(3)),
    (col(T.TIME2, "tm5", fsp=5), time2(5)),
    (col(T.TIME2, "tm4", fsp=4), time2(4)),
    (col(T.TIME2, "tm6", fsp=6), time2(6)),
    (col(T.STRING, "ch", max_length=20, character_set_name="utf8"), pascal(1, text)),
    (col(T.STRING, "chl", max_length=1020, character_set_name="utf8"), pascal(2, text)),
    (col(T.VARCHAR, "vc", max_length=200, character_set_name="utf8"), pascal(1, text)),
    (col(T.VARCHAR, "vcl", max_length=4000, character_set_name="utf8"), pascal(2, text)),
    (col(T.VARCHAR, "l1", max_length=20, character_set_name="cp1252"), pascal(1, latin)),
    (col(T.VARCHAR, "nocs", max_length=20), pascal(1, text)),
    (col(T.STRING, "bn", max_length=4, character_set_name="binary"), pascal(1, raw)),
    (col(T.VARCHAR, "vb", max_length=300, character_set_name="binary"), pascal(2, raw)),
    (col(T.BLOB, "tb", length_size=1, character_set_name="utf8"), pascal(1, text)),
    (col(T.BLOB, "tx", length_size=2, character_set_name="utf8"), pascal(2, text)),
    (col(T.BLOB, "mt", length_size=3, character_set_name="utf8"), pascal(3, text)),
    (col(T.BLOB, "js", length_size=4, character_set_name="utf8"), pascal(4, text)),
    (col(T.BLOB, "bl", length_size=2, character_set_name="binary"), pascal(2, raw)),
    (col(T.BLOB, "lb", length_size=4, character_set_name="binary"), pascal(4, raw)),
    (col(T.ENUM, "en", size=1, enum_values=["", "a", "b c", "it's"]),
     lambda r: bytes([r.randrange(4)])),
    (col(T.ENUM, "en2", size=2, enum_values=[""] + [f"v{k}" for k in range(300)]),
     lambda r: r.randrange(301).to_bytes(2, "little")),
    (col(T.SET, "st", size=1, set_values=["a", "b", "c d", 'x"y']), lambda r: bytes([r.randrange(16)])),
    (col(T.SET, "st9", size=2, set_values=[f"s{k}" for k in range(9)]), fixed(2)),
]


# ---- the harness -----------------------------------------------------------------------------

CODES = {WriteRowsEvent: BINLOG.WRITE_ROWS_EVENT_V2, UpdateRowsEvent: BINLOG.UPDATE_ROWS_EVENT_V1,
         DeleteRowsEvent: BINLOG.DELETE_ROWS_EVENT_V1}


@contextmanager
def fast_path(on: bool) -> Iterator[None]:
    """The fast path switched on or off for the block; the previous state afterwards."""
    was = fastrows.installed()
    if on:
        assert fastrows.install()
    else:
        fastrows.uninstall()
    try:
        yield
    finally:
        if was:
            fastrows.install()
        else:
            fastrows.uninstall()


def make_event(cls: type, columns: list[Column], body: bytes, present: bytes, present2: bytes | None,
               *, ignore_errors: bool = False, table: Table | None = None) -> Any:
    """A row event whose packet holds ``body`` (the rows) at an odd offset, followed by a checksum."""
    inner = MysqlPacket(b"HEADER!" + body + b"CRC!", "utf8")
    inner._position = 7
    wrapper = object.__new__(BinLogPacketWrapper)
    wrapper.__dict__.update({"packet": inner, "read_bytes": 13, "_BinLogPacketWrapper__data_buffer": b""})
    ev = object.__new__(cls)
    ev.__dict__.update({
        "packet": wrapper, "table_map": {7: table or Table(7, "s", "t", columns)}, "table_id": 7,
        "event_type": next(code for base, code in CODES.items() if issubclass(cls, base)),
        "event_size": 13 + len(body), "complete": True, "_processed": True,
        "_ignore_decode_errors": ignore_errors, "_ctl_connection": None, "schema": "s", "table": "t",
        "columns": columns, "number_of_columns": len(columns), "columns_present_bitmap": present,
        "columns_present_bitmap2": present2, "_RowsEvent__rows": None, "_RowsEvent__none_sources": {},
        "_RowsEvent__use_column_name_cache": False, "_RowsEvent__enable_logging": False,
    })
    return ev


def canon(value: Any) -> Any:
    """A comparable form that also tells types, key order, float bits and Decimal exponents apart."""
    if isinstance(value, dict):
        return ("dict", [(k, canon(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [canon(v) for v in value])
    if isinstance(value, set | frozenset):
        return ("set", sorted(repr(v) for v in value))
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, decimal.Decimal):
        return ("Decimal", value.as_tuple())
    return (type(value).__name__, repr(value))


def decode(cls: type, columns: list[Column], body: bytes, present: bytes, present2: bytes | None,
           fast: bool, **kw: Any) -> tuple[Any, int, int]:
    """(rows or the exception type, inner packet position, wrapper read_bytes) after reading the rows."""
    ev = make_event(cls, columns, body, present, present2, **kw)
    with fast_path(fast):
        try:
            out: Any = canon(ev.rows)
        except Exception as exc:
            out = ("raised", type(exc).__name__)
    return out, ev.packet.packet._position, ev.packet.read_bytes


def bitmap(r: random.Random, n: int, density: float) -> int:
    return sum(1 << k for k in range(n) if r.random() < density)


def row_image(r: random.Random, schema: list[tuple[Column, Gen]], present: int, null_density: float) -> bytes:
    count = bin(present).count("1")
    nulls = bitmap(r, count, null_density)
    out = nulls.to_bytes((count + 7) // 8, "little")
    j = 0
    for k, (_, gen) in enumerate(schema):
        if not present >> k & 1:
            continue
        if not nulls >> j & 1:
            out += gen(r)
        j += 1
    return out


def cases(seed: int, n_events: int) -> Iterator[tuple[type, list[Column], bytes, bytes, bytes | None]]:
    r = random.Random(seed)
    for _ in range(n_events):
        schema = r.sample(SCHEMA, r.randrange(1, len(SCHEMA) + 1))
        columns = [c for c, _ in schema]
        n = len(columns)
        cls = r.choice(list(CODES))
        full = (1 << n) - 1
        p1 = full if r.random() < 0.7 else bitmap(r, n, 0.7)
        p2 = full if r.random() < 0.7 else bitmap(r, n, 0.7)
        density = r.choice((0.0, 0.2, 0.9))
        body = b""
        for _ in range(r.randrange(1, 6)):
            body += row_image(r, schema, p1, density)
            if cls is UpdateRowsEvent:
                body += row_image(r, schema, p2, density)
        size = (n + 7) // 8
        yield (cls, columns, body, p1.to_bytes(size, "little"),
               p2.to_bytes(size, "little") if cls is UpdateRowsEvent else None)


# ---- tests -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
def test_random_rows_match_the_library(seed: int) -> None:
    fast_before, errors_before = fastrows.stats["fast"], fastrows.stats["error"]
    agreed_ok = 0
    for cls, columns, body, p1, p2 in cases(seed, 150):
        lib = decode(cls, columns, body, p1, p2, False)
        errors = fastrows.stats["error"]
        fast = decode(cls, columns, body, p1, p2, True)
        assert fast == lib, f"{cls.__name__} {[c.name for c in columns]} {body.hex()}"
        if lib[0][0] != "raised":
            agreed_ok += 1
            # the fast path itself decoded it: no silent fallback after an error
            assert fastrows.stats["error"] == errors
    assert agreed_ok > 100
    assert fastrows.stats["fast"] - fast_before >= agreed_ok
    assert fastrows.stats["error"] - errors_before < 150 - agreed_ok + 1


def one_row(columns: list[Column], *values: bytes, nulls: int = 0) -> bytes:
    n = len(columns)
    return nulls.to_bytes((n + 7) // 8, "little") + b"".join(values)


def fast_values(columns: list[Column], body: bytes) -> tuple[dict[str, Any], dict[str, str]]:
    ev = make_event(WriteRowsEvent, columns, body, b"\xff" * ((len(columns) + 7) // 8), None)
    stats = dict(fastrows.stats)
    with fast_path(True):
        rows = ev.rows
    assert fastrows.stats["fast"] == stats["fast"] + 1, "the fast path did not decode this event"
    assert len(rows) == 1
    return rows[0]["values"], rows[0]["none_sources"]


def test_known_values() -> None:
    """Literal expectations, so a shared mistake with the library's reading would show as well."""
    columns = [col(T.SHORT, "s"), col(T.SHORT, "su", unsigned=True), col(T.INT24, "m"),
               col(T.LONGLONG, "bu", unsigned=True), col(T.DATETIME2, "dt", fsp=6), col(T.TIME2, "tm", fsp=2),
               col(T.TIMESTAMP2, "ts", fsp=3), col(T.NEWDECIMAL, "dc", precision=5, decimals=2),
               col(T.BIT, "b", bits=10, bytes=2), col(T.DATE, "zd"), col(T.SET, "st", size=1, set_values=["a"]),
               col(T.VARCHAR, "l1", max_length=20, character_set_name="cp1252"),
               col(T.STRING, "bn", max_length=4, character_set_name="binary")]
    dt = ((2020 * 13 + 1) << 22 | 2 << 17 | 3 << 12 | 4 << 6 | 5) | 1 << 39
    tm = (((1 << 12) | (2 << 6) | 3) + 0x800000).to_bytes(3, "big")
    body = one_row(
        columns, b"\xff\xff", b"\xff\xff", b"\xff\xff\x7f", b"\xff" * 8,
        dt.to_bytes(5, "big") + (123456).to_bytes(3, "big"), tm + bytes([50]),
        struct.pack(">i", 1) + (5000).to_bytes(2, "big"), _pack_decimal(True, 123, 45, 5, 2),
        b"\x02\x01", b"\x00\x00\x00", b"\x00", b"\x02\xe9\x80", b"\x02\x00\x41",
    )
    values, none_sources = fast_values(columns, body)
    assert values == {
        "s": -1, "su": 65535, "m": 8388607, "bu": 2 ** 64 - 1,
        "dt": datetime.datetime(2020, 1, 2, 3, 4, 5, 123456),
        "tm": datetime.timedelta(hours=1, minutes=2, seconds=3, microseconds=500000),
        "ts": datetime.datetime(1970, 1, 1, 0, 0, 1, 500000), "dc": decimal.Decimal("-123.45"),
        "b": "1000000001", "zd": None, "st": None, "l1": "é€", "bn": b"\x00A",
    }
    assert str(values["dc"]) == "-123.45"
    assert none_sources == {"zd": "out of date range", "st": "empty set"}


def test_comparison_catches_a_wrong_sign() -> None:
    """The comparison is strict enough to see a wrong sign, width or fraction."""
    body = one_row([col(T.SHORT, "s")], b"\xfe\xff")
    assert decode(WriteRowsEvent, [col(T.SHORT, "s")], body, b"\x01", None, False) != \
        decode(WriteRowsEvent, [col(T.SHORT, "s", unsigned=True)], body, b"\x01", None, True)
    body = one_row([col(T.DATETIME2, "d", fsp=3)], ((2020 * 13 + 1) << 22 | 1 << 17 | 1 << 39).to_bytes(5, "big"),
                   (1235).to_bytes(2, "big"))
    assert decode(WriteRowsEvent, [col(T.DATETIME2, "d", fsp=3)], body, b"\x01", None, False)[0] != \
        decode(WriteRowsEvent, [col(T.DATETIME2, "d", fsp=4)], body, b"\x01", None, True)[0]
    # and Decimal('1.50') differs from Decimal('1.5') here, though they compare equal
    assert canon(decimal.Decimal("1.50")) != canon(decimal.Decimal("1.5"))


def test_stale_none_source_of_an_enum_without_values() -> None:
    """The library keeps none sources per event: an ENUM without its values shows the last one."""
    columns = [col(T.ENUM, "e", size=1, enum_values=None), col(T.TINY, "t")]
    body = one_row(columns, b"\x00", nulls=0b01) + one_row(columns, b"\x01", b"\x05")
    lib = decode(WriteRowsEvent, columns, body, b"\x03", None, False)
    assert lib == decode(WriteRowsEvent, columns, body, b"\x03", None, True)
    assert lib[0] == canon([{"values": {"e": None, "t": 0}, "none_sources": {"e": "null"}},
                            {"values": {"e": None, "t": 5}, "none_sources": {"e": "null"}}])


def test_unsupported_tables_fall_back() -> None:
    columns = [col(T.LONG, "id"), col(T.GEOMETRY, "g", length_size=4, character_set_name="binary")]
    body = one_row(columns, b"\x01\x00\x00\x00", b"\x02\x00\x00\x00AB")
    before = dict(fastrows.stats)
    assert decode(WriteRowsEvent, columns, body, b"\x03", None, True) == \
        decode(WriteRowsEvent, columns, body, b"\x03", None, False)
    assert fastrows.stats["fallback"] == before["fallback"] + 1
    with pytest.raises(fastrows.Unsupported):
        fastrows.compile_plan(columns, "write", b"\x03", None)
    for bad in ([col(T.LONG, None)], [col(T.LONG, "a"), col(T.LONG, "a")], [col(T.JSON, "j", length_size=4)],
                [col(T.DATETIME, "old")], [col(T.TIMESTAMP, "old")], [col(T.TIME, "old")],
                [col(T.VAR_STRING, "vs", max_length=3)]):
        with pytest.raises(fastrows.Unsupported):
            fastrows.compile_plan(bad, "write", b"\x01", None)


def test_ignore_decode_errors_and_strict() -> None:
    columns = [col(T.VARCHAR, "v", max_length=20, character_set_name="utf8")]
    body = one_row(columns, b"\x03a\xffb")
    assert decode(WriteRowsEvent, columns, body, b"\x01", None, True)[0] == ("raised", "UnicodeDecodeError")
    lib = decode(WriteRowsEvent, columns, body, b"\x01", None, False, ignore_errors=True)
    assert lib == decode(WriteRowsEvent, columns, body, b"\x01", None, True, ignore_errors=True)
    assert lib[0] == canon([{"values": {"v": "ab"}, "none_sources": {}}])


def test_plan_is_cached_on_the_table() -> None:
    columns = [col(T.LONG, "id")]
    table = Table(7, "s", "t", columns)
    for _ in range(2):
        ev = make_event(WriteRowsEvent, columns, one_row(columns, b"\x01\x00\x00\x00"), b"\x01", None, table=table)
        with fast_path(True):
            assert ev.rows == [{"values": {"id": 1}, "none_sources": {}}]
    plans = table.__dict__[fastrows._PLAN_ATTR]
    assert list(plans) == [("write", b"\x01", None, False)]
    assert table.data == Table(7, "s", "t", columns).data  # the plan is not part of the table's data


def test_install_and_uninstall() -> None:
    library = fastrows._library_fetch_rows
    with fast_path(False):
        assert RowsEvent.__dict__["_fetch_rows"] is library
        assert fastrows.install() is True
        assert fastrows.installed() and RowsEvent.__dict__["_fetch_rows"] is not library
        assert fastrows.install() is True  # idempotent
        fastrows.uninstall()
        assert not fastrows.installed() and RowsEvent.__dict__["_fetch_rows"] is library
        # the classes (and so every reader's only_events) are the library's own
        assert all("_fetch_rows" not in cls.__dict__ for cls in CODES)


def test_subclasses_are_left_to_the_library() -> None:
    """A subclass (like the library's PartialUpdateRowsEvent) may read rows differently."""
    class MyWrite(WriteRowsEvent):  # type: ignore[misc]
        pass
    columns = [col(T.LONG, "id")]
    ev = make_event(MyWrite, columns, one_row(columns, b"\x01\x00\x00\x00"), b"\x01", None)
    before = dict(fastrows.stats)
    with fast_path(True):
        assert ev.rows == [{"values": {"id": 1}, "none_sources": {}}]
    assert fastrows.stats["fallback"] == before["fallback"] + 1
