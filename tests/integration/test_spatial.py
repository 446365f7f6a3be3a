"""Spatial columns on a live MariaDB, with and without PostGIS in the target database.

With PostGIS every geometry column becomes ``geometry(Subtype)``, SPATIAL indexes GiST,
and each value keeps its coordinates and its own SRID through the snapshot, the binlog
and DDL (ADD COLUMN, ADD SPATIAL INDEX).  Without it the columns hold the WKB in bytea
and ``replica init`` says what is lost."""

from __future__ import annotations

import logging

import psycopg
import pymysql
import pytest

from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import errors, status, table_status
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until
from .test_ddl_replica import _assert_data, _assert_shapes

_TABLE = ("CREATE TABLE geo (id int PRIMARY KEY, g geometry NULL, p point REF_SYSTEM_ID=4326 NOT NULL, "
          "l linestring, a polygon, mp multipoint, ml multilinestring, ma multipolygon, c geometrycollection, "
          "SPATIAL KEY sp (p))")
_ROWS = [
    "INSERT INTO geo VALUES (1, ST_GeomFromText('POINT(1.5 -2.25)', 3857), ST_GeomFromText('POINT(13.4 52.5)', 4326), "
    "ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0.5)', 4326), ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 0), "
    "(1 1, 2 1, 2 2, 1 1))', 25832), ST_GeomFromText('MULTIPOINT(1 2, 3 4)'), "
    "ST_GeomFromText('MULTILINESTRING((0 0, 1 1), (2 2, 3 3))', 4326), "
    "ST_GeomFromText('MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))'), "
    "ST_GeomFromText('MULTIPOINT(7 8)', 4326))",
    # SRID 0 in a REF_SYSTEM_ID=4326 column: MariaDB keeps it, so must the replica
    "INSERT INTO geo (id, g, p, c) VALUES (2, NULL, ST_GeomFromText('POINT(0 0)'), "
    "ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 2), LINESTRING(0 0, 1 1))', 4326))",
    "INSERT INTO geo (id, g, p, c) VALUES (3, ST_GeomFromText('GEOMETRYCOLLECTION EMPTY'), "
    "ST_GeomFromText('POINT(-180 90)', 4326), NULL)",
]
_COLS = ["g", "p", "l", "a", "mp", "ml", "ma", "c"]


def _source_values(mariadb: MariaDBServer, db: str, table: str, cols: list[str]) -> dict[int, tuple[object, ...]]:
    """Each value as (SRID, WKB hex): MariaDB stores 4 bytes of SRID, then little-endian WKB."""
    exprs = ", ".join(f"IF({c} IS NULL, NULL, CONCAT(ST_SRID({c}), ':', HEX(SUBSTRING({c}, 5))))" for c in cols)
    conn = pymysql.connect(**mariadb.connect_args(db))  # type: ignore[call-overload]
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT id, {exprs} FROM {table} ORDER BY id")
            return {r[0]: tuple(r[1:]) for r in cur.fetchall()}
    finally:
        conn.close()


def _target_values(pg_db: str, table: str, cols: list[str]) -> dict[int, tuple[object, ...]]:
    exprs = ", ".join(f"ST_SRID({c}) || ':' || upper(encode(ST_AsBinary({c}, 'NDR'), 'hex'))" for c in cols)
    with psycopg.connect(pg_db) as conn:
        rows = conn.execute(f"SELECT id, {exprs} FROM app.{table} ORDER BY id").fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def _types(pg_db: str, table: str) -> dict[str, str]:
    with psycopg.connect(pg_db) as conn:
        return dict(conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = ('app.' || %s)::regclass AND attnum > 0 AND NOT attisdropped", (table,)).fetchall())


def _indexes(pg_db: str, table: str) -> dict[str, str]:
    with psycopg.connect(pg_db) as conn:
        return dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'app' "
                                 "AND tablename = %s", (table,)).fetchall())


def test_postgis_geometry_srid_and_gist(pg_db: str, my_db: str, mariadb: MariaDBServer,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone():
            pytest.skip("PostGIS is not installed (scripts/bootstrap.sh installs postgresql-15-postgis-3)")
        conn.execute("CREATE EXTENSION postgis")
    my_exec(mariadb, my_db, [_TABLE, *_ROWS])
    cfg = make_config(pg_db, mariadb, my_db, batch_max_ms=20)
    add_source(cfg, "src")
    result = init_replica(cfg, "src", show_progress=False)
    assert not [w for w in result.warnings if "PostGIS" in w or "SPATIAL" in w], result.warnings
    assert any("REF_SYSTEM_ID=4326" in r.getMessage() for r in caplog.records)
    assert _types(pg_db, "geo") == {
        "id": "integer", "g": "geometry", "p": "geometry(Point)", "l": "geometry(LineString)",
        "a": "geometry(Polygon)", "mp": "geometry(MultiPoint)", "ml": "geometry(MultiLineString)",
        "ma": "geometry(MultiPolygon)", "c": "geometry"}
    assert "USING gist (p)" in _indexes(pg_db, "geo")["geo_sp"]
    assert _target_values(pg_db, "geo", _COLS) == _source_values(mariadb, my_db, "geo", _COLS)

    with ReplicaThread(cfg) as rt:
        my_exec(mariadb, my_db, [
            "INSERT INTO geo (id, g, p) VALUES (10, ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))', 2154), "
            "ST_GeomFromText('POINT(2.35 48.85)', 4326))",
            "UPDATE geo SET p = ST_GeomFromText('POINT(9 9)', 3857), g = ST_GeomFromText('POINT(1 1)') WHERE id = 1",
            "UPDATE geo SET c = ST_GeomFromText('MULTILINESTRING((0 0, 1 1))', 31467) WHERE id = 3",
            "DELETE FROM geo WHERE id = 2",
        ])
        my_exec(mariadb, my_db, [
            "ALTER TABLE geo ADD COLUMN z linestring REF_SYSTEM_ID=4326, ADD SPATIAL INDEX sp2 (p)",
            "CREATE TABLE later (id int PRIMARY KEY, s geometry NOT NULL, t point NOT NULL, SPATIAL KEY ss (s))",
            "INSERT INTO later VALUES (0, ST_GeomFromText('POINT(0 1)', 3857), ST_GeomFromText('POINT(1 0)', 3857))",
            "ALTER TABLE later ADD SPATIAL INDEX st (t)",
            # MariaDB skips MySQL 5.7's executable comments (as in sakila's schema): so must the replica
            "CREATE TABLE mixed (id int PRIMARY KEY /*!50705 , g geometry NOT NULL, SPATIAL KEY sg (g) */"
            " /*!50100 , v int */)",
            "INSERT INTO mixed VALUES (1, 2)",
        ])
        my_exec(mariadb, my_db, [
            "INSERT INTO geo (id, p, z) VALUES (11, ST_GeomFromText('POINT(1 1)', 4326), "
            "ST_GeomFromText('LINESTRING(5 5, 6 6)', 4326))",
            "UPDATE geo SET z = ST_GeomFromText('LINESTRING(1 2, 3 4)', 3857) WHERE id = 1",
            "INSERT INTO later VALUES (1, ST_GeomFromText('POINT(3 4)', 4326), ST_GeomFromText('POINT(3 4)')), "
            "(2, ST_GeomFromText('MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)))'), ST_GeomFromText('POINT(5 5)', 4326))",
        ])
        wait_until(lambda: caught_up(cfg) and all(t["state"] == "replicating" for t in table_status(cfg, "src")),
                   60, "replica to catch up")
        assert rt.error is None, rt.error
        assert errors(cfg, "src") == []
        assert status(cfg, "src")[0]["tables_disabled"] == 0
    cols = [*_COLS, "z"]
    assert _target_values(pg_db, "geo", cols) == _source_values(mariadb, my_db, "geo", cols)
    assert _target_values(pg_db, "later", ["s", "t"]) == _source_values(mariadb, my_db, "later", ["s", "t"])
    assert _types(pg_db, "geo")["z"] == "geometry(LineString)"
    assert "USING gist (p)" in _indexes(pg_db, "geo")["geo_sp2"]
    assert "USING gist (s)" in _indexes(pg_db, "later")["later_ss"]
    assert "USING gist (t)" in _indexes(pg_db, "later")["later_st"]
    # MariaDB reports a sub-part of 32 for spatial key parts: not a prefix index
    assert not [r for r in caplog.records if "prefix" in r.getMessage()]
    _assert_shapes(cfg, pg_db, mariadb, my_db)
    _assert_data(cfg)


def test_without_postgis_wkb_in_bytea_and_init_says_so(pg_db: str, my_db: str, mariadb: MariaDBServer,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    my_exec(mariadb, my_db, [_TABLE, *_ROWS])
    cfg = make_config(pg_db, mariadb, my_db, batch_max_ms=20)
    add_source(cfg, "src")
    result = init_replica(cfg, "src", show_progress=False)
    lost = [w for w in result.warnings if "PostGIS" in w]
    assert len(lost) == 1, result.warnings
    assert "geo.p" in lost[0] and "SRID" in lost[0] and "sp" in lost[0] and "CREATE EXTENSION postgis" in lost[0]
    assert set(_types(pg_db, "geo").values()) == {"integer", "bytea"}
    assert list(_indexes(pg_db, "geo")) == ["geo_pkey"]
    with ReplicaThread(cfg) as rt:
        my_exec(mariadb, my_db, [
            "INSERT INTO geo (id, p) VALUES (10, ST_GeomFromText('POINT(2.35 48.85)', 4326))",
            "UPDATE geo SET l = ST_GeomFromText('LINESTRING(1 2, 3 4)', 3857) WHERE id = 2",
            "ALTER TABLE geo ADD COLUMN z point, ADD SPATIAL INDEX sp2 (p)",
            "INSERT INTO geo (id, p, z) VALUES (11, ST_GeomFromText('POINT(1 1)'), ST_GeomFromText('POINT(5 6)'))",
        ])
        wait_until(lambda: caught_up(cfg) and all(t["state"] == "replicating" for t in table_status(cfg, "src")),
                   60, "replica to catch up")
        assert rt.error is None, rt.error
        assert errors(cfg, "src") == []
    # the WKB survives, the SRID does not
    cols = [*_COLS, "z"]
    exprs = ", ".join(f"upper(encode({c}, 'hex'))" for c in cols)
    with psycopg.connect(pg_db) as conn:
        got = {r[0]: tuple(r[1:]) for r in conn.execute(f"SELECT id, {exprs} FROM app.geo ORDER BY id").fetchall()}
    want = {k: tuple(None if v is None else str(v).split(":")[1] for v in vals)
            for k, vals in _source_values(mariadb, my_db, "geo", cols).items()}
    assert got == want
    assert not [r for r in caplog.records if "prefix" in r.getMessage()]
    _assert_shapes(cfg, pg_db, mariadb, my_db)
    _assert_data(cfg)


def test_postgis_added_after_init_recopies_the_spatial_tables(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    """Created while the replica runs: the next reload of the table list (here after a DDL
    statement) re-copies geo; created while it is stopped: the next start does."""
    with psycopg.connect(pg_db) as conn:
        if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone():
            pytest.skip("PostGIS is not installed (scripts/bootstrap.sh installs postgresql-15-postgis-3)")
    my_exec(mariadb, my_db, [_TABLE, *_ROWS, "CREATE TABLE plain (id int PRIMARY KEY, v int)",
                             "CREATE TABLE geo2 (id int PRIMARY KEY, s point)", "INSERT INTO plain VALUES (1, 1)",
                             "INSERT INTO geo2 VALUES (1, ST_GeomFromText('POINT(1 1)', 4326))"])
    cfg = make_config(pg_db, mariadb, my_db, batch_max_ms=20)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    assert _types(pg_db, "geo")["p"] == "bytea"

    def settled() -> bool:
        return caught_up(cfg) and all(t["state"] == "replicating" for t in table_status(cfg, "src"))

    with ReplicaThread(cfg) as rt:
        my_exec(mariadb, my_db, ["INSERT INTO geo (id, p) VALUES (10, ST_GeomFromText('POINT(1 2)', 4326))"])
        wait_until(lambda: caught_up(cfg), 60, "replica to catch up")
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION postgis")
        my_exec(mariadb, my_db, ["ALTER TABLE plain ADD COLUMN w int",
                                 "INSERT INTO geo (id, p) VALUES (11, ST_GeomFromText('POINT(3 4)', 3857))",
                                 "INSERT INTO plain VALUES (2, 2, 2)"])
        wait_until(settled, 60, "replica to re-copy geo")
        assert rt.error is None, rt.error
        my_exec(mariadb, my_db, ["UPDATE geo SET p = ST_GeomFromText('POINT(7 8)', 4326) WHERE id = 2"])
        wait_until(settled, 60, "replica to catch up")
        reasons = {t["source_table"].split(".")[1]: t["last_error"] for t in table_status(cfg, "src")}
    assert "PostGIS" in (reasons["geo"] or "") and "PostGIS" in (reasons["geo2"] or "") and reasons["plain"] is None
    assert _types(pg_db, "geo")["p"] == "geometry(Point)"
    assert _target_values(pg_db, "geo", _COLS) == _source_values(mariadb, my_db, "geo", _COLS)
    _assert_shapes(cfg, pg_db, mariadb, my_db)
    _assert_data(cfg)

    # a table made while PostGIS was missing, PostGIS there at the next start
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("DROP EXTENSION postgis CASCADE")      # geo and geo2 lose their geometry columns
    my_exec(mariadb, my_db, ["CREATE TABLE geo3 (id int PRIMARY KEY, s linestring)"])
    with ReplicaThread(cfg) as rt:
        my_exec(mariadb, my_db, ["INSERT INTO geo3 VALUES (1, ST_GeomFromText('LINESTRING(0 0, 1 1)', 4326))"])
        wait_until(lambda: caught_up(cfg), 60, "replica to catch up")
    assert _types(pg_db, "geo3")["s"] == "bytea"
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
    with ReplicaThread(cfg) as rt:
        wait_until(lambda: settled() and _types(pg_db, "geo3")["s"] != "bytea", 60, "replica to re-copy geo3")
        assert rt.error is None, rt.error
    assert _types(pg_db, "geo3")["s"] == "geometry(LineString)"
    assert _target_values(pg_db, "geo3", ["s"]) == _source_values(mariadb, my_db, "geo3", ["s"])
