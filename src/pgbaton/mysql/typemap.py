"""MySQL/MariaDB -> PostgreSQL type mapping.

One decision per source column, used by three paths that must agree exactly:

* ``map_column``: the PostgreSQL column (type, nullability, default, identity);
* ``snapshot_expr``: a MySQL expression that yields the value already in
  PostgreSQL COPY text format, so the snapshot streams lines straight into COPY;
* ``value_converter`` / ``row_converter``: a binlog value as mysql-replication
  1.0.x delivers it -> a JSON-ready value that ``jsonb_populate_record`` turns
  into the same PostgreSQL value the snapshot produced.

docs/type-mapping.md explains every hard case.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from pgbaton.mysql.model import MyColumn
from pgbaton.mysql.names import natural_column

if TYPE_CHECKING:
    from pgbaton.config import MySQLSourceConfig

log = logging.getLogger(__name__)

# Settings the snapshot connection runs before any snapshot_expr query.
SNAPSHOT_SESSION_SQL: list[str] = [
    "SET NAMES utf8mb4",                 # every text column arrives converted to UTF-8
    "SET time_zone = '+00:00'",          # TIMESTAMP values print in UTC ('+00' is appended)
    "SET SESSION sql_mode = ''",         # zero dates can be read and compared, no strict errors
]

INT_TYPES = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
TEXT_TYPES = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}
BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
GEOMETRY_TYPES = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                  "multipolygon", "geometrycollection", "geomcollection"}
TEMPORAL_ZERO = {"date", "datetime", "timestamp"}

# the none_sources mysql-replication reports for values it could not represent
_ZERO_SOURCES = ("out of date range", "out of datetime range", "out of datetime2 range")
_EMPTY_SET_SOURCE = "empty set"
_ABSENT_SOURCE = "cols bitmap"        # column not in a MINIMAL row image

# MySQL charsets whose binlog bytes mysql-replication cannot decode itself
_PY_CODECS = {"ucs2": "utf-16-be", "utf16": "utf-16-be", "utf16le": "utf-16-le", "utf32": "utf-32-be",
              "eucjpms": "euc_jp", "macce": "mac_latin2", "macroman": "mac_roman", "latin1": "cp1252",
              "utf8": "utf-8", "utf8mb3": "utf-8", "utf8mb4": "utf-8", "binary": "latin-1"}

# MySQL string literals, typed with an introducer so no backslash escaping and no
# binary-string coercion is involved (independent of NO_BACKSLASH_ESCAPES).
_LIT_BS = "_utf8mb4 X'5C'"
_LIT_NULL = "_utf8mb4 X'5C4E'"        # \N
_EPOCH = dt.datetime(1970, 1, 1)


@dataclass(frozen=True)
class TypeOptions:
    tinyint1_as_boolean: bool = False
    zero_dates: str = "null"                       # "null" or "sentinel"
    zero_date_sentinel: str = "0001-01-01 00:00:00"
    postgis: bool = False                          # target database has PostGIS
    srid_enforced: bool = False                    # the source checks values against a column's SRID (MySQL 8)
    overrides: Mapping[str, str] = field(default_factory=dict)   # column name -> PostgreSQL type


@dataclass(frozen=True)
class PgColumn:
    name: str
    type_sql: str
    nullable: bool
    default_sql: str | None = None
    identity: bool = False
    comment: str | None = None
    warnings: tuple[str, ...] = ()


def type_options(cfg: MySQLSourceConfig, db: str, table: str, postgis: bool) -> TypeOptions:
    """The options for one table: global switches plus its column overrides."""
    prefix = f"{db}.{table}."
    overrides = {k[len(prefix):]: v for k, v in cfg.column_types.items() if k.startswith(prefix)}
    return TypeOptions(
        tinyint1_as_boolean=cfg.tinyint1_as_boolean, zero_dates=str(cfg.zero_dates.value),
        zero_date_sentinel=cfg.zero_date_sentinel, postgis=postgis, overrides=overrides,
        srid_enforced=cfg.type == "mysql",
    )


# -- classification ------------------------------------------------------------------------

def kind(col: MyColumn, opts: TypeOptions) -> str:
    """The value family that decides type, snapshot expression and converter."""
    t = col.data_type.lower()
    if t == "tinyint" and opts.tinyint1_as_boolean and col.column_type.lower().startswith("tinyint(1)"):
        return "bool"
    if t in INT_TYPES:
        return "int"
    if t in ("decimal", "numeric"):
        return "decimal"
    if t in ("float", "double", "real"):
        return t if t != "real" else "double"
    if t in ("bit", "year", "date", "datetime", "timestamp", "time", "enum", "set", "json"):
        return t
    if t in TEXT_TYPES:
        return "text"
    if t in BINARY_TYPES:
        return "binary"
    if t in GEOMETRY_TYPES:
        return "geometry"
    return "unknown"


def _base_type(col: MyColumn, k: str, opts: TypeOptions) -> str:
    t = col.data_type.lower()
    if k == "int":
        if col.auto_increment and t == "bigint":
            return "bigint"           # identity needs an integer type; 2^63 ids are not realistic
        signed = {"tinyint": "smallint", "smallint": "smallint", "mediumint": "integer",
                  "int": "integer", "integer": "integer", "bigint": "bigint"}
        unsigned = {"tinyint": "smallint", "smallint": "integer", "mediumint": "integer",
                    "int": "bigint", "integer": "bigint", "bigint": "numeric(20,0)"}
        return (unsigned if col.unsigned else signed)[t]
    if k == "decimal":
        p = col.numeric_precision or 10
        return f"numeric({p},{col.numeric_scale or 0})"
    if k == "bit":
        return f"bit({col.numeric_precision or 1})"
    if k in ("datetime", "timestamp"):
        name = "timestamp" if k == "datetime" else "timestamptz"
        return f"{name}({col.datetime_precision or 0})"
    if k == "text":
        n = col.char_max_length
        if t in ("char", "varchar") and n and n <= 10_485_760:
            return f"varchar({n})"
        return "text"
    if k == "geometry":
        return _geometry_type(col, opts) if opts.postgis else "bytea"
    simple = {"bool": "boolean", "float": "real", "double": "double precision", "year": "smallint",
              "date": "date", "time": "interval", "enum": "text", "set": "text[]", "json": "jsonb",
              "binary": "bytea", "unknown": "text"}
    return simple[k]


# MySQL column types whose values are always of that one geometry type.  A GEOMETRYCOLLECTION
# column also takes MULTIPOINT etc. (OGC subtypes), so it stays an unconstrained geometry.
_GEOMETRY_SUBTYPES = {"point": "Point", "linestring": "LineString", "polygon": "Polygon",
                      "multipoint": "MultiPoint", "multilinestring": "MultiLineString",
                      "multipolygon": "MultiPolygon"}


def _geometry_type(col: MyColumn, opts: TypeOptions) -> str:
    """PostGIS ``geometry(Subtype, srid)``.  The SRID is declared only where the source
    rejects values of another SRID (MySQL 8 ``SRID n``): MariaDB records ``REF_SYSTEM_ID``
    but stores any SRID, which a typmod would refuse (or relabel, for SRID 0)."""
    sub = _GEOMETRY_SUBTYPES.get(col.data_type.lower())
    srid = col.srid if opts.srid_enforced else None
    if srid is not None:
        return f"geometry({sub or 'Geometry'},{srid})"
    return f"geometry({sub})" if sub else "geometry"


def map_column(col: MyColumn, opts: TypeOptions) -> PgColumn:
    """The PostgreSQL column for one MySQL column."""
    k = kind(col, opts)
    warnings: list[str] = []
    type_sql = opts.overrides.get(col.name) or _base_type(col, k, opts)
    if k == "unknown":
        warnings.append(f"unknown MySQL type {col.column_type!r}: copied as text")
    if k == "geometry" and not opts.postgis:
        warnings.append("spatial column stored as WKB in bytea, its SRID lost (no PostGIS in the target database)")
    elif k == "geometry" and col.srid and not opts.srid_enforced:
        warnings.append(f"REF_SYSTEM_ID={col.srid} is not checked by MariaDB: the column is {type_sql} and each "
                        "value keeps its own SRID (column_types can declare the SRID)")
    if col.generated:
        warnings.append(f"{col.generated} generated column: a plain column carrying the source's values")
    identity = col.auto_increment and k == "int" and col.name not in opts.overrides
    default_sql = None
    if not identity and not col.generated:
        default_sql, note = default_expression(col, opts)
        if note:
            warnings.append(note)
    return PgColumn(
        name=col.target, type_sql=type_sql, nullable=col.nullable and not identity, default_sql=default_sql,
        identity=identity, comment=col.comment or None, warnings=tuple(warnings),
    )


# -- zero dates ----------------------------------------------------------------------------

def zero_value(col: MyColumn, opts: TypeOptions) -> str | None:
    """What a zero or partial-zero date becomes: NULL, or the sentinel.  A NOT NULL
    column always gets the sentinel, whatever the policy, so the row still loads."""
    if opts.zero_dates != "sentinel" and col.nullable:
        return None
    k = kind(col, opts)
    s = opts.zero_date_sentinel.strip()
    if k == "date":
        return s.split()[0] if s else s
    if k == "timestamp" and not any(ch in s[10:] for ch in "+-Z"):
        return s + "+00"
    return s


# -- defaults ------------------------------------------------------------------------------

_NOW = {"current_timestamp", "current_timestamp()", "now()", "localtimestamp", "localtimestamp()",
        "localtime", "localtime()"}


def unquote_literal(text: str) -> str:
    """The value of a MySQL single-quoted string literal ('it''s', 'a\\\\b', 'AB\\0')."""
    body = text[1:-1]
    escapes = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(escapes.get(nxt, "\\" + nxt if nxt in "%_" else nxt))
            i += 2
        elif ch == "'" and body[i + 1:i + 2] == "'":
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return text.strip() != "" and text.strip().lower() not in ("nan", "inf", "-inf", "infinity")


def default_expression(col: MyColumn, opts: TypeOptions) -> tuple[str | None, str | None]:
    """(PostgreSQL DEFAULT SQL or None, a warning or None) from COLUMN_DEFAULT.

    ``col.default`` is in MariaDB's form: strings quoted, NULL as the word NULL,
    expressions as text (introspect brings MySQL 8's unquoted form into it)."""
    raw = col.default
    if raw is None:
        return None, None
    text = raw.strip()
    low = text.lower()
    if low == "null":
        return None, None
    k = kind(col, opts)
    if low in _NOW or (low.startswith("current_timestamp(") or low.startswith("now(")) and low.endswith(")"):
        return "CURRENT_TIMESTAMP", None
    if low in ("curdate()", "current_date", "current_date()") and k == "date":
        return "CURRENT_DATE", None
    if len(text) >= 2 and text[0] == text[-1] == "'":
        value: str | None = literal_text(unquote_literal(text), col, opts)
    elif low.startswith("b'") and text.endswith("'") and k in ("bit", "int", "bool"):
        bits = text[2:-1] or "0"
        value = bits.zfill(col.numeric_precision or 1) if k == "bit" else literal_text(str(int(bits, 2)), col, opts)
    elif is_number(text):
        value = literal_text(text, col, opts)
    else:
        return None, f"default expression {raw!r} is not translated: column has no default"
    return (None, None) if value is None else (_sql_string(value), None)


def literal_text(value: str, col: MyColumn, opts: TypeOptions) -> str | None:
    """A MySQL literal value as the PostgreSQL text input of the mapped type."""
    k = kind(col, opts)
    if k in ("date", "datetime", "timestamp") and _is_zero_date_text(value):
        return zero_value(col, opts)
    if k == "timestamp":
        return value + "+00" if value[10:].find("+") < 0 else value
    if k == "binary":
        data = value.encode("utf-8")
        if col.data_type.lower() == "binary" and col.char_max_length:
            data = data.ljust(col.char_max_length, b"\0")
        return "\\x" + data.hex()
    if k == "bool":
        return "t" if Decimal(value) != 0 else "f"
    if k == "bit" and value.isdigit() and not set(value) <= {"0", "1"}:
        return bin(int(value))[2:].zfill(col.numeric_precision or 1)
    if k == "set":
        return _set_literal(value.split(",") if value else [])
    if k == "text":
        return value.rstrip(" ") if col.data_type.lower() == "char" else value.replace("\0", "")
    return value


def _is_zero_date_text(value: str) -> bool:
    parts = value.split()[0].split("-") if value.strip() else []
    return len(parts) == 3 and any(p.strip("0") == "" for p in parts)


def _set_literal(members: Sequence[str]) -> str:
    quoted = ('"' + m.replace("\\", "\\\\").replace('"', '\\"') + '"' for m in members)
    return "{" + ",".join(quoted) + "}"


def set_members(col: MyColumn) -> list[str]:
    """The members of an ENUM or SET column in definition order, from COLUMN_TYPE."""
    ct = col.column_type
    start = ct.find("(")
    members: list[str] = []
    i = start + 1
    while 0 < i < len(ct) and ct[i] == "'":
        j = i + 1
        while j < len(ct):
            if ct[j] == "'" and ct[j + 1:j + 2] == "'":
                j += 2
            elif ct[j] == "\\":
                j += 2
            elif ct[j] == "'":
                break
            else:
                j += 1
        members.append(unquote_literal(ct[i:j + 1]))
        i = j + 2          # skip the closing quote and the comma
    return members



# -- snapshot: MySQL expressions producing COPY text -----------------------------------------

def quote_mysql(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# [\\ TAB LF CR NUL]: the characters COPY text needs escaped (or PostgreSQL cannot hold)
_NEEDS_ESCAPE = "_utf8mb4 X'5B5C5C090A0D005D'"


def _copy_escape(expr: str) -> str:
    """Escape backslash, tab, newline and CR for COPY text format; drop NUL characters
    (PostgreSQL text cannot hold U+0000; the binlog path drops them too).  Most values
    contain none of them: one regular-expression test skips the five replacements
    (it halves the server's work for a typical text column)."""
    e = f"REPLACE({expr}, _utf8mb4 X'00', '')"
    e = f"REPLACE({e}, {_LIT_BS}, _utf8mb4 X'5C5C')"
    e = f"REPLACE({e}, _utf8mb4 X'09', _utf8mb4 X'5C74')"
    e = f"REPLACE({e}, _utf8mb4 X'0A', _utf8mb4 X'5C6E')"
    e = f"REPLACE({e}, _utf8mb4 X'0D', _utf8mb4 X'5C72')"
    return f"IF({expr} REGEXP {_NEEDS_ESCAPE}, {e}, {expr})"


def _zero_checked(c: str, col: MyColumn, opts: TypeOptions, shown: str) -> str:
    zero = zero_value(col, opts)
    zero_sql = "NULL" if zero is None else _sql_string(zero)
    return f"IF(YEAR({c}) = 0 OR MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0, {zero_sql}, {shown})"


def _snapshot_value(col: MyColumn, opts: TypeOptions) -> str:
    """An expression that is NULL exactly when the PostgreSQL value is NULL."""
    c = quote_mysql(col.name)
    k = kind(col, opts)
    if k in ("int", "decimal", "double"):
        return c
    if k == "bool":
        return f"CASE WHEN {c} <> 0 THEN 't' WHEN {c} = 0 THEN 'f' END"
    if k == "float":
        return f"CAST({c} AS DOUBLE)"          # FLOAT prints with 6 digits; DOUBLE is exact
    if k == "bit":
        return f"LPAD(BIN({c} + 0), {col.numeric_precision or 1}, '0')"
    if k == "year":
        return f"{c} + 0"
    if k in ("date", "datetime"):
        return _zero_checked(c, col, opts, c)
    if k == "timestamp":
        return _zero_checked(c, col, opts, f"CONCAT({c}, '+00')")
    if k == "time":
        return c
    if k == "set":
        members = (f"REPLACE(REPLACE(CONVERT({c} USING utf8mb4), {_LIT_BS}, _utf8mb4 X'5C5C'), "
                   f"'\"', _utf8mb4 X'5C22')")
        inner = f"IF({c} = '', '', CONCAT('\"', REPLACE({members}, ',', '\",\"'), '\"'))"
        return _copy_escape(f"CONCAT('{{', {inner}, '}}')")
    if k == "binary":
        return f"CONCAT(_utf8mb4 X'5C5C78', HEX({c}))"
    if k == "geometry":
        wkb = f"HEX(SUBSTRING({c}, 5))"       # the stored value is a 4-byte SRID + WKB
        if opts.postgis:
            return f"CONCAT('SRID=', ST_SRID({c}), ';', {wkb})"
        return f"CONCAT(_utf8mb4 X'5C5C78', {wkb})"
    if k == "json":
        # jsonb_populate_record reads a JSON null as SQL NULL: the snapshot does the same
        return _copy_escape(f"IF(TRIM({c}) = 'null', NULL, CONVERT({c} USING utf8mb4))")
    return _copy_escape(f"CONVERT({c} USING utf8mb4)")     # text, enum, unknown


def snapshot_expr(col: MyColumn, opts: TypeOptions) -> str:
    """A MySQL expression giving the column in PostgreSQL COPY text format (``\\N`` for
    NULL, never SQL NULL).  Needs the session settings of SNAPSHOT_SESSION_SQL."""
    value = _snapshot_value(col, opts)
    if not col.nullable and not col.generated and kind(col, opts) not in TEMPORAL_ZERO:
        return value    # never NULL: no COALESCE to evaluate per row
    return f"COALESCE({value}, {_LIT_NULL})"


def snapshot_select(columns: Sequence[MyColumn], db: str, table: str,
                    opts: TypeOptions | Callable[[MyColumn], TypeOptions]) -> str:
    """``SELECT CONCAT_WS(CHAR(9), ...) FROM db.table``: one COPY line per row."""
    exprs = ", ".join(snapshot_expr(c, _opts(opts, c)) for c in columns)
    return f"SELECT CONCAT_WS(_utf8mb4 X'09', {exprs}) FROM {quote_mysql(db)}.{quote_mysql(table)}"


def _opts(opts: TypeOptions | Callable[[MyColumn], TypeOptions], col: MyColumn) -> TypeOptions:
    return opts if isinstance(opts, TypeOptions) else opts(col)


# -- binlog: mysql-replication values -> JSON-ready values -----------------------------------

Converter = Callable[[Any], Any]


def interval_text(v: dt.timedelta) -> str:
    """A TIME value from mysql-replication as PostgreSQL interval text.

    mysql-replication 1.0.x decodes a negative TIME2 with a fraction wrongly: for
    -W.F it returns -((W + 1) - F).  Such a result always has a fraction, and a
    correct negative value with a fraction cannot reach us, so it is undone here."""
    us = (v.days * 86400 + v.seconds) * 1_000_000 + v.microseconds
    if us < 0 and us % 1_000_000:
        x = -us
        us = -((x // 1_000_000) * 1_000_000 + (1_000_000 - x % 1_000_000))
    sign = "-" if us < 0 else ""
    secs, frac = divmod(abs(us), 1_000_000)
    h, rest = divmod(secs, 3600)
    m, s = divmod(rest, 60)
    return f"{sign}{h:02d}:{m:02d}:{s:02d}.{frac:06d}"


def _text_converter(col: MyColumn) -> Converter:
    codec = _PY_CODECS.get((col.charset or "utf8mb4").lower(), col.charset or "utf-8")

    def conv(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, bytes | bytearray):
            try:
                v = bytes(v).decode(codec, "replace")
            except LookupError:
                v = bytes(v).decode("utf-8", "replace")
        return v.replace("\0", "") if "\0" in v else v
    return conv


def _binary_converter(col: MyColumn, k: str, opts: TypeOptions) -> Converter:
    pad = col.char_max_length or 0 if col.data_type.lower() == "binary" else 0

    def to_bytes(v: Any) -> bytes:
        return v.encode("utf-8") if isinstance(v, str) else bytes(v)

    if k == "geometry":
        if opts.postgis:
            return lambda v: None if v is None else (
                f"SRID={int.from_bytes(to_bytes(v)[:4], 'little')};{to_bytes(v)[4:].hex()}")
        return lambda v: None if v is None else "\\x" + to_bytes(v)[4:].hex()
    if pad:
        return lambda v: None if v is None else "\\x" + to_bytes(v).ljust(pad, b"\0").hex()
    return lambda v: None if v is None else "\\x" + to_bytes(v).hex()


def _plain_json(v: Any) -> Any:
    """MySQL 8 binary JSON as mysql-replication decodes it (bytes keys/strings)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, dict):
        return {_plain_json(k): _plain_json(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain_json(x) for x in v]
    return v


def _json_value(v: Any) -> Any:
    # the document's own text, embedded verbatim by orjson: numbers such as 1.50 or
    # 1e2 keep the exact form the snapshot gives to jsonb (a float would not)
    if v is None:
        return None
    if isinstance(v, str | bytes):
        # a JSON null document becomes SQL NULL in jsonb_populate_record anyway
        if len(v) <= 12 and v.strip() in ("null", b"null"):
            return None
        try:
            orjson.loads(v)
        except orjson.JSONDecodeError:
            # not JSON: a row written before the column became JSON (encoded while its table
            # is re-copied, and discarded then); embedded verbatim it would break the log line
            return v if isinstance(v, str) else v.decode("utf-8", "replace")
        return orjson.Fragment(v)
    return _plain_json(v)


def _set_converter(col: MyColumn) -> Converter:
    order = {m: i for i, m in enumerate(set_members(col))}

    def conv(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, str):
            v = v.split(",") if v else []
        return _set_literal(sorted(v, key=lambda m: order.get(m, len(order))))
    return conv


def _temporal_converter(col: MyColumn, k: str, zero: str | None) -> Converter:
    if k == "date":
        return lambda v: None if v is None else v.isoformat()
    if k == "datetime":
        return lambda v: None if v is None else v.isoformat(" ")
    # TIMESTAMP: a zero timestamp is stored as 0 and arrives as the epoch, which is
    # not a valid MySQL TIMESTAMP value otherwise (the range starts one second later)
    return lambda v: None if v is None else (zero if v == _EPOCH else v.isoformat(" ") + "+00")


def _same(v: Any) -> Any:
    return v


def _inet6_text(b: bytes) -> str:
    """16 bytes as MariaDB prints an INET6 (as inet_ntop: IPv4-mapped and IPv4-compatible
    addresses end in dotted IPv4)."""
    words = [int.from_bytes(b[i:i + 2], "big") for i in range(0, 16, 2)]
    if (not any(words[:6]) and words[6]) or (not any(words[:5]) and words[5] == 0xFFFF):
        return ("::ffff:" if words[5] == 0xFFFF else "::") + str(ipaddress.IPv4Address(b[12:]))
    return str(ipaddress.IPv6Address(b))


def _stored_bytes(v: Any, size: int) -> bytes:
    """A fixed-size binary value from the binlog: trailing zero bytes are not sent."""
    raw = v.encode("utf-8", "surrogateescape") if isinstance(v, str) else bytes(v)
    return raw.ljust(size, b"\0")


def _fixed_binary_text(col: MyColumn) -> Converter | None:
    """MariaDB's INET4, INET6 and UUID arrive from the binlog as their stored bytes, the
    snapshot reads their text: the bytes are printed as MariaDB prints them."""
    t = col.data_type.lower()
    if t == "inet4":
        return lambda v: None if v is None else str(ipaddress.IPv4Address(_stored_bytes(v, 4)))
    if t == "inet6":
        return lambda v: None if v is None else _inet6_text(_stored_bytes(v, 16))
    if t == "uuid":     # stored in text order (seen on MariaDB 10.11)
        return lambda v: None if v is None else str(uuid.UUID(bytes=_stored_bytes(v, 16)))
    return None


def _base_converter(col: MyColumn, opts: TypeOptions) -> Converter:
    k = kind(col, opts)
    special = _fixed_binary_text(col) if k == "unknown" else None
    if special is not None:
        return special
    if k in ("int", "float", "double", "bit"):
        return _same
    if k == "bool":
        return lambda v: None if v is None else v != 0
    if k == "decimal":
        return lambda v: None if v is None else format(v, "f")
    if k == "year":
        return lambda v: 0 if v == 1900 else v       # YEAR 0000 arrives as 1900
    if k in TEMPORAL_ZERO:
        return _temporal_converter(col, k, zero_value(col, opts))
    if k == "time":
        return lambda v: None if v is None else interval_text(v)
    if k == "set":
        return _set_converter(col)
    if k == "json":
        return _json_value
    if k in ("binary", "geometry"):
        return _binary_converter(col, k, opts)
    return _text_converter(col)


def none_values(col: MyColumn, opts: TypeOptions) -> dict[str, Any]:
    """What a None from mysql-replication means, by its reported none_source."""
    k = kind(col, opts)
    out: dict[str, Any] = {"null": None}
    if k in TEMPORAL_ZERO:
        zero = zero_value(col, opts)
        out.update({s: zero for s in _ZERO_SOURCES})
        if not col.nullable:
            out["null"] = zero
    if k == "set":
        out[_EMPTY_SET_SOURCE] = "{}"
        if not col.nullable:
            out["null"] = "{}"
    return out


def value_converter(col: MyColumn, opts: TypeOptions) -> Converter:
    """Binlog value -> JSON-ready value for ``jsonb_populate_record``.

    None means SQL NULL, except for NOT NULL columns, where mysql-replication uses
    None for zero dates (-> the sentinel) and empty SETs (-> '{}').  For nullable
    columns with those values use ``row_converter``, which reads the none_sources."""
    base = _base_converter(col, opts)
    on_none = none_values(col, opts)["null"]
    if on_none is None:
        return base
    return lambda v: on_none if v is None else base(v)


RowConverter = Callable[[Mapping[str, Any], Mapping[str, str] | None], dict[str, Any]]


def row_converter(columns: Sequence[MyColumn],
                  opts: TypeOptions | Callable[[MyColumn], TypeOptions], *, keep_unknown: bool = True) -> RowConverter:
    """Convert a whole row image: ``conv(row["values"], row["none_sources"])``
    (or before/after values with their none_sources).  Columns absent from a
    MINIMAL row image are left out of the result."""
    # read by MySQL name, written by PostgreSQL name (mysql/names.py): the log and the
    # replay SQL only ever see the target's column names
    plan = [(c.name, c.target, _base_converter(c, _opts(opts, c)), none_values(c, _opts(opts, c)))
            for c in columns]
    known = {c.name for c in columns}

    def convert(values: Mapping[str, Any], none_sources: Mapping[str, str] | None = None) -> dict[str, Any]:
        sources = none_sources or {}
        out: dict[str, Any] = {}
        for name, pg, conv, on_none in plan:
            if name not in values:
                continue
            v = values[name]
            if v is not None:
                out[pg] = conv(v)
                continue
            src = sources.get(name, "null")
            if src != _ABSENT_SOURCE:
                out[pg] = on_none.get(src)
        if keep_unknown and len(values) > len(out):
            for name, v in values.items():
                if name not in known:
                    out[natural_column(name)] = None if v is None else str(v)
        return out
    return convert
