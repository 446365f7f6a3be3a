"""The type mapping, defaults, binlog converters and DDL: pure functions, no servers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
import pytest

from pgbaton.config import MySQLSourceConfig
from pgbaton.mysql.introspect import warnings_for
from pgbaton.mysql.model import MyColumn, MyIndex, MyTable
from pgbaton.mysql.pgddl import create_table_sql, pg_name, post_load_sql
from pgbaton.mysql.typemap import (
    TypeOptions,
    interval_text,
    map_column,
    row_converter,
    set_members,
    snapshot_expr,
    type_options,
    unquote_literal,
    value_converter,
)

D = TypeOptions()


def col(column_type: str, name: str = "c", **kw: Any) -> MyColumn:
    """A column as information_schema would describe ``column_type``."""
    base = column_type.split("(")[0].split()[0].lower()
    args = column_type[column_type.find("(") + 1:column_type.find(")")] if "(" in column_type else ""
    nums = [int(x) for x in args.split(",") if x.strip().isdigit()]
    fields: dict[str, Any] = {"name": name, "position": 1, "data_type": base, "column_type": column_type}
    if base in ("char", "varchar", "binary", "varbinary") and nums:
        fields["char_max_length"] = nums[0]
    if base in ("decimal", "bit") and nums:
        fields["numeric_precision"] = nums[0]
        fields["numeric_scale"] = nums[1] if len(nums) > 1 else 0
    if base in ("datetime", "timestamp", "time"):
        fields["datetime_precision"] = nums[0] if nums else 0
    fields.update(kw)
    return MyColumn(**fields)


def pg_type(column_type: str, opts: TypeOptions = D, **kw: Any) -> str:
    return map_column(col(column_type, **kw), opts).type_sql


@pytest.mark.parametrize(("mysql", "pg"), [
    ("tinyint(4)", "smallint"), ("tinyint(3) unsigned", "smallint"), ("tinyint(1)", "smallint"),
    ("smallint(6)", "smallint"), ("smallint(5) unsigned", "integer"), ("mediumint(9)", "integer"),
    ("mediumint(8) unsigned", "integer"), ("int(11)", "integer"), ("int(10) unsigned", "bigint"),
    ("bigint(20)", "bigint"), ("bigint(20) unsigned", "numeric(20,0)"), ("decimal(10,2)", "numeric(10,2)"),
    ("decimal(65,30)", "numeric(65,30)"), ("float", "real"), ("double", "double precision"),
    ("bit(1)", "bit(1)"), ("bit(64)", "bit(64)"), ("year(4)", "smallint"), ("date", "date"),
    ("datetime", "timestamp(0)"), ("datetime(6)", "timestamp(6)"), ("timestamp", "timestamptz(0)"),
    ("timestamp(3)", "timestamptz(3)"), ("time", "interval"), ("time(6)", "interval"),
    ("char(5)", "varchar(5)"), ("char(0)", "text"), ("varchar(255)", "varchar(255)"), ("tinytext", "text"),
    ("text", "text"), ("mediumtext", "text"), ("longtext", "text"), ("enum('a','b')", "text"),
    ("set('a','b')", "text[]"), ("json", "jsonb"), ("binary(16)", "bytea"), ("varbinary(3)", "bytea"),
    ("tinyblob", "bytea"), ("blob", "bytea"), ("mediumblob", "bytea"), ("longblob", "bytea"),
    ("geometry", "bytea"), ("point", "bytea"), ("multipolygon", "bytea"), ("inet6", "text"),
])
def test_type_of_every_mysql_type(mysql: str, pg: str) -> None:
    assert pg_type(mysql) == pg


def test_options_change_types() -> None:
    assert pg_type("tinyint(1)", TypeOptions(tinyint1_as_boolean=True)) == "boolean"
    assert pg_type("tinyint(4)", TypeOptions(tinyint1_as_boolean=True)) == "smallint"
    assert pg_type("point", TypeOptions(postgis=True)) == "geometry(Point)"
    assert pg_type("int(11)", TypeOptions(overrides={"c": "bigint"})) == "bigint"
    assert pg_type("int(11)", TypeOptions(overrides={"other": "bigint"})) == "integer"
    # MariaDB's JSON is LONGTEXT; introspect marks it data_type 'json'
    assert map_column(col("longtext", data_type="json"), D).type_sql == "jsonb"


def test_type_options_pick_the_tables_overrides() -> None:
    cfg = MySQLSourceConfig.model_validate({
        "databases": {"shop": "shop"}, "tinyint1_as_boolean": True, "zero_dates": "sentinel",
        "column_types": {"shop.items.price": "numeric(12,2)", "shop.other.x": "text"}})
    opts = type_options(cfg, "shop", "items", postgis=True)
    assert opts.overrides == {"price": "numeric(12,2)"}
    assert opts.tinyint1_as_boolean and opts.postgis and opts.zero_dates == "sentinel"


def test_auto_increment_becomes_identity() -> None:
    pc = map_column(col("int(10) unsigned", extra="auto_increment", nullable=False), D)
    assert pc.identity and pc.type_sql == "bigint" and not pc.nullable and pc.default_sql is None
    assert map_column(col("bigint(20) unsigned", extra="auto_increment"), D).type_sql == "bigint"


@pytest.mark.parametrize(("column_type", "default", "expected"), [
    ("int(11)", "-5", "'-5'"), ("int(11)", "NULL", None), ("int(11)", None, None),
    ("decimal(10,2)", "1.50", "'1.50'"), ("varchar(20)", "'it''s'", "'it''s'"),
    ("varchar(20)", "'NULL'", "'NULL'"), ("varchar(20)", "''", "''"), ("text", "'a\\\\b'", "'a\\b'"),
    ("varchar(9)", "'x\\ny'", "'x\ny'"), ("datetime(6)", "current_timestamp(6)", "CURRENT_TIMESTAMP"),
    ("timestamp", "current_timestamp()", "CURRENT_TIMESTAMP"), ("datetime", "now()", "CURRENT_TIMESTAMP"),
    ("date", "curdate()", "CURRENT_DATE"), ("bit(3)", "b'101'", "'101'"), ("bit(8)", "b'101'", "'00000101'"),
    ("binary(4)", "'AB\\0\\0'", "'\\x41420000'"), ("binary(4)", "'AB'", "'\\x41420000'"),
    ("enum('a','b')", "'b'", "'b'"), ("set('a','b c')", "'a,b c'", "'{\"a\",\"b c\"}'"),
    ("date", "'2020-01-02'", "'2020-01-02'"), ("timestamp", "'2020-01-02 03:04:05'", "'2020-01-02 03:04:05+00'"),
    ("date", "'0000-00-00'", None), ("int(11)", "uuid_short()", None), ("char(5)", "'ab  '", "'ab'"),
])
def test_defaults(column_type: str, default: str | None, expected: str | None) -> None:
    assert map_column(col(column_type, default=default), D).default_sql == expected


def test_default_warnings_and_bool() -> None:
    pc = map_column(col("varchar(36)", default="uuid()"), D)
    assert pc.default_sql is None and any("uuid()" in w for w in pc.warnings)
    assert map_column(col("tinyint(1)", default="1"), TypeOptions(tinyint1_as_boolean=True)).default_sql == "'t'"
    gen = map_column(col("int(11)", default="NULL", extra="VIRTUAL GENERATED", generation_expression="a+1"), D)
    assert gen.default_sql is None and any("generated" in w for w in gen.warnings)


def test_zero_date_policy() -> None:
    sentinel = TypeOptions(zero_dates="sentinel", zero_date_sentinel="1970-01-01 00:00:00")
    nullable, not_null = col("date", default="'0000-00-00'"), col("date", default="'0000-00-00'", nullable=False)
    assert map_column(nullable, D).default_sql is None
    assert map_column(not_null, D).default_sql == "'0001-01-01'"        # NOT NULL always gets the sentinel
    assert map_column(nullable, sentinel).default_sql == "'1970-01-01'"
    ts = col("timestamp", default="'0000-00-00 00:00:00'", nullable=False)
    assert map_column(ts, D).default_sql == "'0001-01-01 00:00:00+00'"
    assert "IF(YEAR(`c`) = 0 OR MONTH(`c`) = 0 OR DAYOFMONTH(`c`) = 0, NULL, `c`)" in snapshot_expr(nullable, D)
    assert "'0001-01-01'" in snapshot_expr(not_null, D)
    # binlog: mysql-replication gives None for zero and partial-zero dates
    assert value_converter(not_null, D)(None) == "0001-01-01"
    assert value_converter(nullable, D)(None) is None
    conv = row_converter([nullable], sentinel)
    assert conv({"c": None}, {"c": "out of date range"}) == {"c": "1970-01-01"}
    assert conv({"c": None}, {"c": "null"}) == {"c": None}
    assert row_converter([nullable], D)({"c": None}, {"c": "out of date range"}) == {"c": None}
    # a zero TIMESTAMP is stored as 0 and arrives as the epoch
    assert value_converter(ts, D)(dt.datetime(1970, 1, 1)) == "0001-01-01 00:00:00+00"


def test_snapshot_expressions() -> None:
    assert snapshot_expr(col("int(11)"), D) == "COALESCE(`c`, _utf8mb4 X'5C4E')"
    assert "CAST(`c` AS DOUBLE)" in snapshot_expr(col("float"), D)
    assert "LPAD(BIN(`c` + 0), 10, '0')" in snapshot_expr(col("bit(10)"), D)
    assert "HEX(`c`)" in snapshot_expr(col("blob"), D)
    assert "CONCAT(`c`, '+00')" in snapshot_expr(col("timestamp"), D)
    assert "CONVERT(`we``ird` USING utf8mb4)" in snapshot_expr(col("text", name="we`ird"), D)
    assert "ST_SRID" in snapshot_expr(col("point"), TypeOptions(postgis=True))
    assert "CASE WHEN `c` <> 0 THEN 't'" in snapshot_expr(col("tinyint(1)"), TypeOptions(tinyint1_as_boolean=True))


@pytest.mark.parametrize(("column_type", "value", "expected"), [
    ("int(11)", -5, -5), ("bigint(20) unsigned", 18446744073709551615, 18446744073709551615),
    ("decimal(30,10)", Decimal("0E-10"), "0.0000000000"), ("decimal(10,2)", Decimal("-1.50"), "-1.50"),
    ("float", 3.140000104904175, 3.140000104904175), ("bit(3)", "101", "101"), ("year(4)", 1900, 0),
    ("year(4)", 2155, 2155), ("date", dt.date(999, 1, 2), "0999-01-02"),
    ("datetime(6)", dt.datetime(2020, 1, 2, 3, 4, 5, 120000), "2020-01-02 03:04:05.120000"),
    ("timestamp(6)", dt.datetime(1970, 1, 1, 0, 0, 1, 1), "1970-01-01 00:00:01.000001+00"),
    ("time", dt.timedelta(hours=838, minutes=59, seconds=59), "838:59:59.000000"),
    ("varchar(9)", "a\0b", "ab"), ("varchar(9)", "😀", "😀"),
    ("varchar(9)", b"\x00\xfc \xac", "ü€"),          # ucs2: left undecoded by mysql-replication
    ("blob", b"\x00\xff", "\\x00ff"), ("blob", "", "\\x"), ("binary(4)", b"A", "\\x41000000"),
    ("enum('a','')", "", ""), ("set('a','b','c')", {"c", "a"}, '{"a","c"}'),
    ("geometry", b"\xe6\x10\x00\x00\x01", "\\x01"),
])
def test_value_converters(column_type: str, value: Any, expected: Any) -> None:
    charset = "ucs2" if isinstance(value, bytes) and column_type.startswith("varchar") else None
    assert value_converter(col(column_type, charset=charset), D)(value) == expected


def test_special_converters() -> None:
    assert value_converter(col("tinyint(1)"), TypeOptions(tinyint1_as_boolean=True))(5) is True
    assert value_converter(col("point"), TypeOptions(postgis=True))(b"\xe6\x10\x00\x00\x01\x02") == "SRID=4326;0102"
    doc = '{"a": 1.50, "b": 1e2}'
    assert orjson.dumps({"j": value_converter(col("json"), D)(doc)}) == b'{"j":{"a": 1.50, "b": 1e2}}'
    assert value_converter(col("json"), D)("null") is None
    assert value_converter(col("json"), D)({b"k": [b"v", 1]}) == {"k": ["v", 1]}    # MySQL 8 binary JSON
    not_null_set = col("set('a','b')", nullable=False)
    assert value_converter(not_null_set, D)(None) == "{}"
    assert row_converter([col("set('a','b')")], D)({"c": None}, {"c": "empty set"}) == {"c": "{}"}


def test_row_converter_minimal_image_and_unknown_columns() -> None:
    conv = row_converter([col("int(11)", name="a"), col("int(11)", name="b")], D)
    assert conv({"a": None, "b": None, "new": 5}, {"a": "cols bitmap", "b": "null"}) == {"b": None, "new": "5"}


@pytest.mark.parametrize(("delta", "expected"), [
    (dt.timedelta(0), "00:00:00.000000"),
    (-dt.timedelta(hours=838, minutes=59, seconds=59), "-838:59:59.000000"),
    (dt.timedelta(days=4, hours=4), "100:00:00.000000"),
    # mysql-replication 1.0.x returns -((W + 1) - F) for a negative TIME2 -W.F
    (-(dt.timedelta(hours=838, minutes=59, seconds=59, microseconds=10000)), "-838:59:59.990000"),
    (-dt.timedelta(microseconds=999999), "-00:00:00.000001"),
    (-dt.timedelta(seconds=1, microseconds=500000), "-00:00:01.500000"),
])
def test_interval_text(delta: dt.timedelta, expected: str) -> None:
    assert interval_text(delta) == expected


def test_literal_helpers() -> None:
    assert unquote_literal("'it''s \\\\ \\0'") == "it's \\ \0"
    assert set_members(col("set('a','it''s','x,\"y')")) == ["a", "it's", 'x,"y']
    assert set_members(col("enum('','b c')")) == ["", "b c"]


def _table() -> MyTable:
    cols = (
        col("int(10) unsigned", name="id", extra="auto_increment", nullable=False),
        col("varchar(50)", name="name", comment="the name"), col("text", name="body"),
        col("blob", name="data"), col("geometry", name="g", nullable=False),
    )
    idx = (
        MyIndex("PRIMARY", (("id", None),), unique=True, primary=True),
        MyIndex("uq_name", (("name", 10),), unique=True), MyIndex("k_body", (("body", 20), ("id", None))),
        MyIndex("k_data", (("data", 4),)), MyIndex("ft", (("name", None), ("body", None)), kind="FULLTEXT"),
        MyIndex("sp", (("g", None),), kind="SPATIAL"),
    )
    return MyTable(db="d", name="t", columns=cols, indexes=idx, auto_increment=42, comment="a table")


def render(stmts: list[Any]) -> list[str]:
    return [s.as_string(None) for s in stmts]


def test_create_table_sql() -> None:
    stmts = render(create_table_sql(_table(), "s", D))
    assert stmts[0] == ('CREATE TABLE "s"."t" ("id" bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL, '
                        '"name" varchar(50), "body" text, "data" bytea, "g" bytea NOT NULL)')
    assert stmts[1] == "COMMENT ON TABLE \"s\".\"t\" IS 'a table'"
    assert stmts[2] == "COMMENT ON COLUMN \"s\".\"t\".\"name\" IS 'the name'"


def test_post_load_sql() -> None:
    stmts = render(post_load_sql(_table(), "s", D))
    assert stmts[0] == 'ALTER TABLE "s"."t" ADD CONSTRAINT "t_pkey" PRIMARY KEY ("id")'
    assert 'CREATE UNIQUE INDEX "t_uq_name" ON "s"."t" ("name")' in stmts     # varchar prefix -> whole column
    assert 'CREATE INDEX "t_k_body" ON "s"."t" ((left("body", 20)), "id")' in stmts
    assert 'CREATE INDEX "t_k_data" ON "s"."t" ((substring("data" from 1 for 4)))' in stmts
    assert any(s.startswith('CREATE INDEX "t_ft" ON "s"."t" USING gin (to_tsvector') for s in stmts)
    assert not any("t_sp" in s for s in stmts)                                 # SPATIAL without PostGIS
    assert stmts[-1].startswith(
        "SELECT setval(pg_get_serial_sequence(quote_ident('s') || '.' || quote_ident('t'), 'id')")
    assert "GREATEST(COALESCE(MAX(\"id\"), 0) + 1, 42)" in stmts[-1]
    with_gis = render(post_load_sql(_table(), "s", TypeOptions(postgis=True)))
    assert 'CREATE INDEX "t_sp" ON "s"."t" USING gist ("g")' in with_gis


def test_index_names_fit_63_bytes() -> None:
    long_name = pg_name("é" * 40, "index")
    assert len(long_name.encode()) <= 63
    long_name.encode().decode("utf-8")
    assert pg_name("a" * 60, "x1") != pg_name("a" * 60, "x2")
    assert pg_name("t", "i") == "t_i"


def test_warnings_for() -> None:
    w = warnings_for(_table())
    assert any("prefix" in x for x in w) and any("FULLTEXT" in x for x in w)
    # SPATIAL indexes are named only when the target has no PostGIS (replica/spatial.py)
    assert not any("SPATIAL" in x for x in w)
    no_pk = MyTable(db="d", name="n", columns=(col("int(11)", name="a"),))
    assert any("whole row" in x for x in warnings_for(no_pk))


def test_model_json_round_trip() -> None:
    t = _table()
    assert MyTable.from_json(orjson.loads(orjson.dumps(t.to_json()))) == t


def test_json_converter_survives_text_that_is_not_json() -> None:
    import orjson

    from pgbaton.mysql.model import MyColumn
    from pgbaton.mysql.typemap import TypeOptions, value_converter

    conv = value_converter(MyColumn("j", 1, "json", "longtext"), TypeOptions())
    assert orjson.dumps({"j": conv('{"a":  1.50}')}) == b'{"j":{"a":  1.50}}'
    assert orjson.dumps({"j": conv("not json")}) == b'{"j":"not json"}'
    assert conv("null") is None
