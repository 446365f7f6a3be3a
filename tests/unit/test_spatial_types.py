"""Geometry columns: PostGIS types, declared SRIDs, and the DDL grammar for them (no servers)."""

from __future__ import annotations

import pytest

from pgbaton.mysql.ddl.parse import parse_one
from pgbaton.mysql.ddl.statements import AddColumn, AlterTable, CreateTable
from pgbaton.mysql.model import MyColumn
from pgbaton.mysql.typemap import TypeOptions, map_column, snapshot_expr, value_converter

POSTGIS = TypeOptions(postgis=True)
MYSQL_POSTGIS = TypeOptions(postgis=True, srid_enforced=True)


def _col(data_type: str, srid: int | None = None) -> MyColumn:
    return MyColumn(name="g", position=1, data_type=data_type, column_type=data_type, srid=srid)


@pytest.mark.parametrize(("data_type", "pg"), [
    ("geometry", "geometry"), ("point", "geometry(Point)"), ("linestring", "geometry(LineString)"),
    ("polygon", "geometry(Polygon)"), ("multipoint", "geometry(MultiPoint)"),
    ("multilinestring", "geometry(MultiLineString)"), ("multipolygon", "geometry(MultiPolygon)"),
    # a GEOMETRYCOLLECTION column also takes MULTIPOINT values: no subtype
    ("geometrycollection", "geometry"), ("geomcollection", "geometry"),
])
def test_postgis_types(data_type: str, pg: str) -> None:
    assert map_column(_col(data_type), POSTGIS).type_sql == pg
    assert map_column(_col(data_type), TypeOptions()).type_sql == "bytea"


def test_srid_declared_only_where_the_source_enforces_it() -> None:
    assert map_column(_col("point", 4326), MYSQL_POSTGIS).type_sql == "geometry(Point,4326)"
    assert map_column(_col("geometry", 0), MYSQL_POSTGIS).type_sql == "geometry(Geometry,0)"
    maria = map_column(_col("point", 4326), POSTGIS)
    assert maria.type_sql == "geometry(Point)"
    assert any("REF_SYSTEM_ID=4326" in w for w in maria.warnings)
    lost = map_column(_col("point", 4326), TypeOptions())
    assert any("SRID lost" in w for w in lost.warnings)


def test_values_keep_their_srid() -> None:
    stored = (4326).to_bytes(4, "little") + bytes.fromhex("0101000000000000000000f03f0000000000000040")
    assert value_converter(_col("point"), POSTGIS)(stored) == "SRID=4326;0101000000000000000000f03f0000000000000040"
    assert value_converter(_col("point"), TypeOptions())(stored) == "\\x0101000000000000000000f03f0000000000000040"
    assert "ST_SRID(`g`)" in snapshot_expr(_col("point"), POSTGIS)


@pytest.mark.parametrize(("text", "srid"), [
    ("ALTER TABLE t ADD COLUMN g point REF_SYSTEM_ID=4326 NOT NULL", 4326),
    ("ALTER TABLE t ADD COLUMN g point REF_SYSTEM_ID 3857", 3857),
    ("ALTER TABLE t ADD COLUMN g point NOT NULL SRID 4326", 4326),
    ("ALTER TABLE t ADD COLUMN g geometry /*!80003 SRID 0 */", 0),
    ("ALTER TABLE t ADD COLUMN g geometry", None),
])
def test_ddl_reads_the_srid(text: str, srid: int | None) -> None:
    stmt = parse_one(text)
    assert isinstance(stmt, AlterTable) and isinstance(stmt.clauses[0], AddColumn)
    assert stmt.clauses[0].spec.column.srid == srid


def test_create_table_with_ref_system_id() -> None:
    stmt = parse_one("CREATE TABLE t (id int PRIMARY KEY, p point REF_SYSTEM_ID=4326 NOT NULL, SPATIAL KEY s (p))")
    assert isinstance(stmt, CreateTable)
    assert stmt.columns[1].column.srid == 4326
    assert stmt.indexes[0].kind == "SPATIAL" and stmt.indexes[0].columns == (("p", None),)
