"""Faster row decoding for mysql-replication's row events.

mysql-replication decodes every value of every row generically: a chain of type
tests, a method call per byte group, a charset lookup per string.  That is the
bulk of the CDC reader's CPU time.  This module decodes rows with a per-table
*plan* instead: once per table definition (and per columns-present bitmap) it
generates a small Python function with straight-line code for that table's
columns, working on the packet's bytes with an offset, and caches it on the
library's ``Table`` object.

The values (and ``none_sources``) are exactly those mysql-replication 1.0.17
gives, quirks included (``time2`` fractions, zero dates -> ``None`` with a
none source, ``latin1`` decoded as cp1252, bytes for binary strings, ...).
A table with a column this module does not handle (geometry, MySQL's binary
JSON, pre-5.6 temporal types, unknown types, missing column names) is decoded
by the library, and so is any event whose decoding fails here: the packet is
only advanced once the fast path has decoded the whole event.

``install()`` puts the fast path into the library's ``RowsEvent._fetch_rows``
(process-wide, like ``tablemap.install()``): the event classes stay the library's,
so every reader's ``only_events`` and every ``isinstance`` check keep working.
"""

from __future__ import annotations

import datetime
import decimal
import logging
import struct
from collections.abc import Callable
from importlib import metadata
from typing import Any

from pymysqlreplication.constants import BINLOG, FIELD_TYPE, NONE_SOURCE
from pymysqlreplication.row_event import DeleteRowsEvent, RowsEvent, UpdateRowsEvent, WriteRowsEvent

log = logging.getLogger(__name__)

# generated function: (data, position, end, event none sources) -> (rows, position)
RowsFn = Callable[[bytes, int, int, dict[str, str]], tuple[list[dict[str, Any]], int]]

_WRITE, _UPDATE, _DELETE = "write", "update", "delete"
_CODES: dict[int, str] = {
    BINLOG.WRITE_ROWS_EVENT_V1: _WRITE, BINLOG.WRITE_ROWS_EVENT_V2: _WRITE,
    BINLOG.UPDATE_ROWS_EVENT_V1: _UPDATE, BINLOG.UPDATE_ROWS_EVENT_V2: _UPDATE,
    BINLOG.DELETE_ROWS_EVENT_V1: _DELETE, BINLOG.DELETE_ROWS_EVENT_V2: _DELETE,
}
_PLAN_ATTR = "_pgbaton_fastrows"  # on the library's Table; Table.data skips names starting with "_"
_DATA_BUFFER = "_BinLogPacketWrapper__data_buffer"
_ROWS_ATTR = "_RowsEvent__rows"

stats: dict[str, int] = {"fast": 0, "fallback": 0, "error": 0}
"""Events decoded here, by the library (unsupported table or layout), and after a failure here."""


class Unsupported(Exception):
    """A column (or layout) the fast path does not handle: the library decodes the table."""


# ---- plan compilation ------------------------------------------------------------------

_COMPRESSED = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)  # bytes for 0..8 leftover decimal digits


def _decimal_reader(precision: int, decimals: int) -> Callable[[bytes, int], tuple[decimal.Decimal, int]]:
    """MySQL's packed DECIMAL, turned into the same text mysql-replication builds."""
    if not (0 < precision <= 65 and 0 <= decimals <= precision):
        raise Unsupported(f"decimal({precision},{decimals})")
    ui, ci = divmod(precision - decimals, 9)
    uf, cf = divmod(decimals, 9)
    groups: list[tuple[int, int, str]] = []  # (offset, size, format) in reading order; "." between halves
    off = 0
    if _COMPRESSED[ci]:
        groups.append((off, _COMPRESSED[ci], ""))
        off += _COMPRESSED[ci]
    for _ in range(ui):
        groups.append((off, 4, "09d"))
        off += 4
    point = len(groups)
    for _ in range(uf):
        groups.append((off, 4, "09d"))
        off += 4
    if _COMPRESSED[cf]:
        groups.append((off, _COMPRESSED[cf], f"0{cf}d"))
        off += _COMPRESSED[cf]
    total = off
    layout = [(o, o + s, f) for o, s, f in groups]
    from_bytes = int.from_bytes
    dec = decimal.Decimal

    def read(b: bytes, p: int) -> tuple[decimal.Decimal, int]:
        raw = bytearray(b[p:p + total])
        if len(raw) != total:
            raise ValueError("truncated decimal")
        if raw[0] & 0x80:
            parts = [""]
            mask = 0
        else:
            parts = ["-"]
            mask = -1
        raw[0] ^= 0x80
        for k, (start, stop, fmt) in enumerate(layout):
            if k == point:
                parts.append(".")
            value = from_bytes(raw[start:stop], "big", signed=True) ^ mask
            parts.append(format(value, fmt) if fmt else str(value))
        if point == len(layout):
            parts.append(".")
        return dec("".join(parts)), p + total

    return read


def _encoding(column: Any, errors: str) -> str | None:
    """The codec the library decodes this string column with; None: it returns the bytes."""
    name = getattr(column, "character_set_name", None)
    if name is None:
        return "utf-8"
    enc = RowsEvent.charset_to_encoding(name)
    if not isinstance(enc, str):
        raise Unsupported(f"charset {name!r}")
    try:
        b"a".decode(enc, errors)  # (an empty string is never looked up)
    except LookupError:
        return None
    except ValueError:  # a codec that exists, and wants other bytes
        pass
    return enc


def _length_prefixed(var: str, size: int, enc: str | None, errors: str) -> list[str]:
    if size == 1:
        lines = ["q = p + 1 + b[p]"]
    elif size == 2:
        lines = ["q = p + 2 + (b[p] | b[p + 1] << 8)"]
    elif size == 3:
        lines = ["q = p + 3 + (b[p] | b[p + 1] << 8 | b[p + 2] << 16)"]
    elif size == 4:
        lines = ["q = p + 4 + _U32(b, p)[0]"]
    else:
        raise Unsupported(f"length size {size}")
    body = f"b[p + {size}:q]"
    if enc is not None:
        body += f".decode({enc!r}, {errors!r})"
    else:  # the library "decodes" with an unknown codec, which Python only looks up for a non-empty string
        body += " or ''"
    return [*lines, f"{var} = {body}", "p = q"]


def _fsp(fsp: Any) -> list[str]:
    """Lines setting ``u`` to the fractional seconds the library reads (signed, as it does)."""
    if not isinstance(fsp, int) or not 0 <= fsp <= 6:
        raise Unsupported(f"fsp {fsp!r}")
    if fsp == 0:
        return ["u = 0"]
    size = (fsp + 1) // 2
    if size == 1:
        lines = ["u = (b[p] ^ 128) - 128"]
    else:
        lines = [f"u = _FB(b[p:p + {size}], 'big', signed=True)"]
    lines.append(f"p += {size}")
    if fsp % 2:
        lines.append("u = int(u / 10)")
    if fsp < 6:
        lines.append(f"u *= {10 ** (6 - fsp)}")
    return lines


_INTS = {  # type -> (size, signed reader, unsigned reader)
    FIELD_TYPE.TINY: (1, "(b[p] ^ 128) - 128", "b[p]"),
    FIELD_TYPE.SHORT: (2, "_I16(b, p)[0]", "_U16(b, p)[0]"),
    FIELD_TYPE.INT24: (3, "_FB(b[p:p + 3], 'little', signed=True)", "_FB(b[p:p + 3], 'little')"),
    FIELD_TYPE.LONG: (4, "_I32(b, p)[0]", "_U32(b, p)[0]"),
    FIELD_TYPE.LONGLONG: (8, "_I64(b, p)[0]", "_U64(b, p)[0]"),
}


def _column_reader(i: int, column: Any, var: str, none: str, errors: str,
                   env: dict[str, Any]) -> tuple[list[str], bool]:
    """Lines reading column ``i`` into ``var`` (and its none source into ``none``, e.g. ``r['c']``), and
    whether the value may be None with a none source the library takes from earlier rows."""
    t = column.type
    n = repr(column.name)
    if t in _INTS:
        size, signed, unsigned = _INTS[t]
        return [f"{var} = {unsigned if column.unsigned else signed}", f"p += {size}"], False
    if t == FIELD_TYPE.FLOAT:
        return [f"{var} = _F32(b, p)[0]", "p += 4"], False
    if t == FIELD_TYPE.DOUBLE:
        return [f"{var} = _F64(b, p)[0]", "p += 8"], False
    if t == FIELD_TYPE.YEAR:
        return [f"{var} = b[p] + 1900", "p += 1"], False
    if t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING):
        size = 2 if column.max_length > 255 else 1
        return _length_prefixed(var, size, _encoding(column, errors), errors), False
    if t == FIELD_TYPE.BLOB:
        return _length_prefixed(var, column.length_size, _encoding(column, errors), errors), False
    if t == FIELD_TYPE.NEWDECIMAL:
        env[f"_dec{i}"] = _decimal_reader(column.precision, column.decimals)
        return [f"{var}, p = _dec{i}(b, p)"], False
    if t == FIELD_TYPE.DATE:
        return [
            "x = b[p] | b[p + 1] << 8 | b[p + 2] << 16",
            "p += 3",
            "if x == 0 or not x & 31 or not x >> 5 & 15 or not x >> 9:",
            f"    {var} = None",
            f"    {none} = {NONE_SOURCE.OUT_OF_DATE_RANGE!r}",
            "else:",
            f"    {var} = _DATE(x >> 9, x >> 5 & 15, x & 31)",
        ], False
    if t == FIELD_TYPE.DATETIME2:
        return [
            "x = _FB(b[p:p + 5], 'big')",
            "p += 5",
            *_fsp(column.fsp),
            "y = x >> 22 & 131071",
            "try:",
            f"    {var} = _DT(y // 13, y % 13, x >> 17 & 31, x >> 12 & 31, x >> 6 & 63, x & 63,"
            " u if 0 < u < 1000000 else 0)",
            "except ValueError:",
            f"    {var} = None",
            f"    {none} = {NONE_SOURCE.OUT_OF_DATETIME2_RANGE!r}",
            "else:",
            "    if u >= 1000000:",
            f"        {var} = {var}.replace(microsecond=u)",
        ], False
    if t == FIELD_TYPE.TIMESTAMP2:
        return [
            "x = _I32BE(b, p)[0]",
            "p += 4",
            *_fsp(column.fsp),
            f"{var} = _EPOCH + _TD(0, x, u if 0 < u < 1000000 else 0)",
            "if u >= 1000000:",
            f"    {var} = {var}.replace(microsecond=u)",
        ], False
    if t == FIELD_TYPE.TIME2:
        return [
            "x = _FB(b[p:p + 3], 'big', signed=True)",
            "p += 3",
            *_fsp(column.fsp),
            "if x >> 23 & 1:",
            f"    {var} = _TD(0, (x >> 12 & 1023) * 3600 + (x >> 6 & 63) * 60 + (x & 63), u)",
            "else:",
            "    x = -x",
            f"    {var} = -_TD(0, (x >> 12 & 1023) * 3600 + (x >> 6 & 63) * 60 + (x & 63), u)",
        ], False
    if t == FIELD_TYPE.ENUM:
        size = column.size
        if size not in (1, 2):
            raise Unsupported(f"enum size {size}")
        index = "b[p]" if size == 1 else "_U16(b, p)[0]"
        if column.enum_values:
            env[f"_ev{i}"] = list(column.enum_values)
            return [f"{var} = _ev{i}[{index}]", f"p += {size}"], False
        # the library returns None without setting a none source: the row shows the last one set
        return [f"p += {size}", f"{var} = None", f"{none} = ns.get({n}, {NONE_SOURCE.NULL!r})"], True
    if t == FIELD_TYPE.SET:
        size = column.size
        if not isinstance(size, int) or not 1 <= size <= 8:
            raise Unsupported(f"set size {size!r}")
        empty = [f"{var} = None", f"{none} = {NONE_SOURCE.EMPTY_SET!r}"]
        if not column.set_values:
            return [f"p += {size}", *empty], False
        env[f"_sv{i}"] = [(1 << k, v) for k, v in enumerate(column.set_values)]
        return [
            f"x = _FB(b[p:p + {size}], 'little')",
            f"p += {size}",
            f"{var} = {{v for m, v in _sv{i} if x & m}}",
            f"if not {var}:",
            *("    " + line for line in empty),
        ], False
    if t == FIELD_TYPE.BIT:
        bits, nbytes = column.bits, column.bytes
        if not isinstance(bits, int) or bits < 1 or nbytes != (bits + 7) // 8:
            raise Unsupported(f"bit({bits!r})")
        return [f"{var} = format(_FB(b[p:p + {nbytes}], 'big') & {(1 << bits) - 1}, {f'0{bits}b'!r})",
                f"p += {nbytes}"], False
    raise Unsupported(f"column type {t}")


def _image(columns: list[Any], present: bytes, errors: str, prefix: str, env: dict[str, Any]) -> list[str]:
    """Lines reading one row image into ``{prefix}v`` (values) and ``{prefix}r`` (none sources)."""
    n_cols = len(columns)
    if len(present) * 8 < n_cols:
        raise Unsupported("short columns-present bitmap")
    bits = [bool(present[i >> 3] >> (i & 7) & 1) for i in range(n_cols)]
    count = sum(bits)
    null_bytes = (count + 7) // 8
    rv = f"{prefix}r"
    lines = [f"{rv} = {{}}"]
    if null_bytes == 1:
        lines += ["nb = b[p]", "p += 1"]
    elif null_bytes > 1:
        lines += [f"nb = _FB(b[p:p + {null_bytes}], 'little')", f"p += {null_bytes}"]
    names = []
    j = 0
    for i, column in enumerate(columns):
        name = column.name
        names.append(name)
        var = f"{prefix}{i}"
        n = repr(name)
        body, stale = _column_reader(i, column, var, f"{rv}[{n}]", errors, env)
        if not bits[i]:
            lines += [f"{var} = None", f"{rv}[{n}] = {NONE_SOURCE.COLS_BITMAP!r}"]
            if stale:
                lines.append(f"ns[{n}] = {NONE_SOURCE.COLS_BITMAP!r}")
            continue
        lines += [f"if nb & {1 << j}:", f"    {var} = None", f"    {rv}[{n}] = {NONE_SOURCE.NULL!r}"]
        if stale:
            lines.append(f"    ns[{n}] = {NONE_SOURCE.NULL!r}")
        lines.append("else:")
        lines += ["    " + line for line in body]
        j += 1
    values = ", ".join(f"{name!r}: {prefix}{i}" for i, name in enumerate(names))
    lines.append(f"{prefix}v = {{{values}}}")
    return lines


_ENV: dict[str, Any] = {
    "_FB": int.from_bytes,
    "_I16": struct.Struct("<h").unpack_from, "_U16": struct.Struct("<H").unpack_from,
    "_I32": struct.Struct("<i").unpack_from, "_U32": struct.Struct("<I").unpack_from,
    "_I64": struct.Struct("<q").unpack_from, "_U64": struct.Struct("<Q").unpack_from,
    "_F32": struct.Struct("<f").unpack_from, "_F64": struct.Struct("<d").unpack_from,
    "_I32BE": struct.Struct(">i").unpack_from,
    "_DATE": datetime.date, "_DT": datetime.datetime, "_TD": datetime.timedelta,
    "_EPOCH": datetime.datetime(1970, 1, 1),
}


def compile_plan(columns: list[Any], kind: str, present: bytes, present2: bytes | None,
                 ignore_decode_errors: bool = False) -> tuple[RowsFn, str]:
    """The decoding function for one table layout and row event kind, and its source.

    Raises Unsupported when a column is not handled here."""
    names = [getattr(c, "name", None) for c in columns]
    if not columns or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise Unsupported("missing or duplicate column names")
    errors = "ignore" if ignore_decode_errors else "strict"
    env = dict(_ENV)
    body = _image(columns, present, errors, "a", env)
    if kind == _UPDATE:
        if present2 is None:
            raise Unsupported("update without a second bitmap")
        body += _image(columns, present2, errors, "c", env)
        body.append("append({'before_values': av, 'before_none_sources': ar,"
                    " 'after_values': cv, 'after_none_sources': cr})")
    else:
        body.append("append({'values': av, 'none_sources': ar})")
    src = "\n".join([
        "def _rows(b, p, end, ns):",
        "    out = []",
        "    append = out.append",
        "    while p < end:",
        *("        " + line for line in body),
        "    return out, p",
    ]) + "\n"
    exec(compile(src, "<pgbaton.fastrows>", "exec"), env)  # noqa: S102 - our own generated code
    fn: RowsFn = env["_rows"]
    return fn, src


# ---- plan cache --------------------------------------------------------------------------

_global_plans: dict[tuple[Any, ...], RowsFn | None] = {}
_MAX_GLOBAL = 4096


def _signature(columns: list[Any]) -> tuple[Any, ...]:
    sig = []
    for c in columns:
        enum_values = getattr(c, "enum_values", None)
        set_values = getattr(c, "set_values", None)
        sig.append((
            c.type, c.name, c.unsigned, getattr(c, "character_set_name", None), getattr(c, "max_length", None),
            getattr(c, "length_size", None), getattr(c, "fsp", None), getattr(c, "precision", None),
            getattr(c, "decimals", None), getattr(c, "bits", None), getattr(c, "bytes", None),
            getattr(c, "size", None), tuple(enum_values) if enum_values is not None else None,
            tuple(set_values) if set_values is not None else None,
        ))
    return tuple(sig)


def _plan(table: Any, columns: list[Any], key: tuple[Any, ...]) -> RowsFn | None:
    plans = table.__dict__.get(_PLAN_ATTR)
    if plans is None:
        plans = {}
        setattr(table, _PLAN_ATTR, plans)
    try:
        return plans[key]  # type: ignore[no-any-return]
    except KeyError:
        pass
    try:
        gkey = (_signature(columns), *key)
        hit = gkey in _global_plans
    except Exception:  # odd column objects: let the library decode this table
        plans[key] = None
        return None
    if hit:
        fn = _global_plans[gkey]
    else:
        try:
            fn = compile_plan(columns, key[0], key[1], key[2], key[3])[0]
        except Exception as exc:  # Unsupported, or column objects not as expected
            log.debug("rows of %s.%s are decoded by mysql-replication: %s",
                      getattr(table, "schema", "?"), getattr(table, "table", "?"), exc)
            fn = None
        if len(_global_plans) >= _MAX_GLOBAL:
            _global_plans.clear()
        _global_plans[gkey] = fn
    plans[key] = fn
    return fn


# ---- the events ----------------------------------------------------------------------------

_KINDS: dict[type, str] = {WriteRowsEvent: _WRITE, UpdateRowsEvent: _UPDATE, DeleteRowsEvent: _DELETE}


def _fast_rows(ev: Any) -> list[dict[str, Any]] | None:
    """Decode all rows of ``ev`` and advance its packet; None (packet untouched) to let the library do it."""
    try:
        kind = _KINDS.get(type(ev))  # exactly the library's classes: subclasses may read differently
        if kind is None or _CODES.get(ev.event_type) != kind or not ev.complete:
            return None
        wrapper = ev.packet
        inner: Any = wrapper.packet
        data = inner._data
        pos = inner._position
        read_bytes = wrapper.__dict__.get("read_bytes")
        if (type(data) is not bytes or type(pos) is not int or type(read_bytes) is not int
                or wrapper.__dict__.get(_DATA_BUFFER) != b""):
            return None
        table = ev.table_map[ev.table_id]
        columns = ev.columns
        if columns is not table.columns or len(columns) != ev.number_of_columns:
            return None
        present2 = ev.columns_present_bitmap2 if kind == _UPDATE else None
        fn = _plan(table, columns, (kind, ev.columns_present_bitmap, present2, bool(ev._ignore_decode_errors)))
        end = pos + ev.event_size - read_bytes
        if fn is None or end > len(data):
            return None
    except Exception:  # not the layout this module knows: the library decodes
        log.debug("row event layout not recognised; mysql-replication decodes it", exc_info=True)
        return None
    try:
        rows, stop = fn(data, pos, end, {})
        if stop != end:
            raise ValueError(f"rows end at {stop}, the event at {end}")
    except Exception:
        log.debug("fast row decoding failed for %s.%s; mysql-replication decodes this event",
                  getattr(ev, "schema", "?"), getattr(ev, "table", "?"), exc_info=True)
        stats["error"] += 1
        return None
    inner._position = stop
    wrapper.read_bytes = read_bytes + (stop - pos)
    ev.is_partial_json_update = False  # as the library's reading leaves it
    return rows


_library_fetch_rows = RowsEvent.__dict__.get("_fetch_rows")


def _fetch_rows(self: Any) -> None:
    """Replacement for RowsEvent._fetch_rows: the fast path, else the library's own."""
    rows = _fast_rows(self)
    if rows is None:
        stats["fallback"] += 1
        _library_fetch_rows(self)  # type: ignore[misc]
    else:
        stats["fast"] += 1
        setattr(self, _ROWS_ATTR, rows)


# ---- registration --------------------------------------------------------------------------

def _layout_ok() -> bool:
    try:
        version = metadata.version("mysql-replication")
    except metadata.PackageNotFoundError:
        return False
    rows = RowsEvent.__dict__.get("rows")
    return (version.startswith("1.0.") and callable(_library_fetch_rows) and isinstance(rows, property)
            and callable(getattr(RowsEvent, "charset_to_encoding", None))
            and all("_fetch_rows" not in cls.__dict__ and "rows" not in cls.__dict__ for cls in _KINDS))


def install() -> bool:
    """Decode rows with the fast path, process-wide and transparent to every reader (the
    event classes stay the library's, so ``only_events`` and ``isinstance`` are unchanged).

    Returns False, leaving the library untouched, if its layout is not the expected one."""
    current = RowsEvent.__dict__.get("_fetch_rows")
    if current is _fetch_rows:
        return True
    if current is not _library_fetch_rows or not _layout_ok():
        log.info("mysql-replication layout not recognised; rows are decoded by the library")
        return False
    RowsEvent._fetch_rows = _fetch_rows
    return True


def uninstall() -> None:
    """Give row decoding back to the library (for tests and comparisons)."""
    if RowsEvent.__dict__.get("_fetch_rows") is _fetch_rows:
        RowsEvent._fetch_rows = _library_fetch_rows


def installed() -> bool:
    return RowsEvent.__dict__.get("_fetch_rows") is _fetch_rows
