"""MySQL's sakila sample database (tests/data/sakila) replicated end to end.

Loaded into the test MariaDB, ``replica init`` with PostGIS in the target, then writes
that fire the schema's triggers and InnoDB's cascades (ON UPDATE CASCADE, ON DELETE SET
NULL), rows in the spatial column, and DDL while the replica runs.  Afterwards every
table equals its source row for row and has the shape a fresh ``init`` gives, the views
are on the target, and ``status`` names the triggers and routines that are not carried."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import errors, status, table_status
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until
from .test_ddl_replica import _assert_data, _assert_shapes

DATA = Path(__file__).resolve().parent.parent / "data" / "sakila"
VIEWS = {"actor_info", "customer_list", "film_list", "nicer_but_slower_film_list", "sales_by_film_category",
         "sales_by_store", "staff_list"}


def _load(mariadb: MariaDBServer, db: str) -> None:
    """Both files through the mariadb client (DELIMITER blocks), into database ``db``.  MariaDB
    skips MySQL 5.7's executable comments (/*!50705 ... */), which hold the spatial column and
    its index: they are run here; MySQL 8's /*!80003 SRID 0 */ is left out."""
    for name in ("sakila-schema.sql", "sakila-data.sql"):
        text = (DATA / name).read_text(encoding="utf-8")
        text = re.sub(r"/\*!80003[^*]*\*/", "", text)
        text = re.sub(r"/\*!50705 (.*?)\*/", r"\1", text)
        text = re.sub(r"\bsakila(?=[.;])", db, text)
        subprocess.run(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(mariadb.port), "-u", "root",
                        "--default-character-set=utf8mb4", db], input=text.encode(), check=True,
                       capture_output=True, timeout=120)


def _text(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode()
    return str(v)


# GROUP_CONCAT without ORDER BY: the order of the parts is unspecified, on both sides
_UNORDERED = {("film_list", 7), ("nicer_but_slower_film_list", 7)}


def _rows(view: str, rows: list[tuple[object, ...]]) -> list[tuple[str | None, ...]]:
    out = []
    for r in rows:
        vals = [_text(v) for v in r]
        for i, v in enumerate(vals):
            if (view, i) in _UNORDERED and v is not None:
                vals[i] = ", ".join(sorted(v.split(", ")))
        out.append(tuple(vals))
    return sorted(out, key=repr)


def _assert_views_equal(pg_db: str, mariadb: MariaDBServer, my_db: str, views: set[str]) -> None:
    """Each view's rows on the target equal the source's (as text, in any order)."""
    my = mariadb.connect(my_db)
    try:
        with psycopg.connect(pg_db) as conn:
            for view in sorted(views):
                with my.cursor() as cur:
                    cur.execute(f"SELECT * FROM {view}")
                    want = _rows(view, list(cur.fetchall()))
                got = _rows(view, conn.execute(f"SELECT * FROM app.{view}").fetchall())
                diff = [r for r in want if r not in got][:2], [r for r in got if r not in want][:2]
                assert got == want, (view, len(want), len(got), diff)
    finally:
        my.close()


def test_sakila_end_to_end(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone():
            conn.execute("CREATE EXTENSION postgis")
        else:
            pytest.skip("PostGIS is not installed (scripts/bootstrap.sh installs postgresql-15-postgis-3)")
    _load(mariadb, my_db)
    cfg = make_config(pg_db, mariadb, my_db, batch_max_ms=20)
    add_source(cfg, "src")
    result = init_replica(cfg, "src", show_progress=False)
    assert result.tables == 16
    # every view is carried (mysql/ddl/viewfix.py: a smallint as a condition, columns a
    # GROUP BY key determines through a join, GROUP_CONCAT(DISTINCT .. ORDER BY ..))
    assert not [w for w in result.warnings if w.startswith("view ")], result.warnings
    told = " ".join(result.warnings)
    for name in ("ins_film", "upd_film", "del_film", "payment_date", "rewards_report", "get_customer_balance"):
        assert name in told, result.warnings
    with psycopg.connect(pg_db) as conn:
        have = {r[0] for r in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'app'").fetchall()}
        assert have == VIEWS
        types: dict[str, str] = dict(conn.execute("SELECT column_name, udt_name FROM information_schema.columns "
                                  "WHERE table_schema = 'app' AND table_name = 'address'").fetchall())
        assert types["location"] == "geometry"
        gist = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'app' AND tablename = 'address' "
                            "AND indexdef LIKE '%gist%'").fetchall()
        assert len(gist) == 1
    _assert_views_equal(pg_db, mariadb, my_db, VIEWS)

    with ReplicaThread(cfg) as rt:
        my_exec(mariadb, my_db, [
            # ON UPDATE CASCADE down three levels (country -> city -> address -> ...)
            "UPDATE country SET country_id = 900 WHERE country_id = 1",
            "UPDATE city SET city_id = 900 WHERE city_id = 1",
            # film -> film_actor, film_category, inventory; the upd_film trigger rewrites film_text
            "UPDATE film SET film_id = 1001, title = 'ACADEMY DINOSAUR II' WHERE film_id = 1",
            # ON DELETE SET NULL: the payments of these rentals keep no rental
            "DELETE FROM rental WHERE rental_id IN (1, 2, 3, 4)",
        ])
        my_exec(mariadb, my_db, [
            "INSERT INTO film (title, description, release_year, language_id, rental_duration, rental_rate, "
            "length, replacement_cost, rating, special_features) VALUES ('PGBATON EDITION', 'A replica', 2006, 1, "
            "3, 4.99, 90, 19.99, 'PG', 'Trailers,Deleted Scenes')",       # ins_film fills film_text
            "INSERT INTO address (address, district, city_id, phone, location) VALUES "
            "('1 Replica Road', 'Lisboa', 900, '555', ST_GeomFromText('POINT(-9.14 38.72)', 4326))",
            "UPDATE address SET location = ST_GeomFromText('POINT(1 1)') WHERE address_id = 5",
            "DELETE FROM film_text WHERE film_id = 2",
            "INSERT INTO payment (customer_id, staff_id, rental_id, amount) VALUES (1, 1, 5, 1.25)",
        ])
        my_exec(mariadb, my_db, [
            "ALTER TABLE film ADD COLUMN pgb_note varchar(20) NOT NULL DEFAULT 'n', ADD INDEX idx_note (pgb_note)",
            "CREATE INDEX idx_amount ON payment (amount)",
            "ALTER TABLE address ADD COLUMN pgb_area polygon NULL",
            "CREATE VIEW pgb_recent AS SELECT rental_id, rental_date FROM rental WHERE rental_id > 900",
            "CREATE PROCEDURE pgb_proc() SELECT 1",
            "DROP TRIGGER customer_create_date",
        ])
        my_exec(mariadb, my_db, [
            "UPDATE film SET pgb_note = 'new' WHERE film_id < 10",
            "UPDATE address SET pgb_area = ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))', 4326) "
            "WHERE address_id < 4",
            "UPDATE customer SET store_id = 2 WHERE customer_id < 20",
            "DELETE FROM payment WHERE payment_id BETWEEN 100 AND 120",
        ])
        wait_until(lambda: caught_up(cfg) and all(t["state"] == "replicating" for t in table_status(cfg, "src")),
                   60, "replica to catch up")
        assert rt.error is None, rt.error
        assert errors(cfg, "src") == []
        st = status(cfg, "src")[0]
        assert st["tables_disabled"] == 0 and st["tables_copying"] == 0
    nc = st["not_carried"]
    assert nc["views"] == []
    assert set(nc["triggers"]) == {f"{my_db}.{t}" for t in ("ins_film", "upd_film", "del_film", "payment_date",
                                                            "rental_date")}
    assert f"{my_db}.pgb_proc" in nc["procedures"] and f"{my_db}.rewards_report" in nc["procedures"]
    assert set(nc["functions"]) == {f"{my_db}.{f}" for f in ("get_customer_balance", "inventory_held_by_customer",
                                                             "inventory_in_stock")}
    with psycopg.connect(pg_db) as conn:
        have = {r[0] for r in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'app'").fetchall()}
        assert have == VIEWS | {"pgb_recent"}
        assert conn.execute("SELECT count(*) FROM app.payment WHERE rental_id IS NULL AND payment_id IN "
                            "(SELECT payment_id FROM app.payment WHERE rental_id IS NULL)").fetchone() != (0,)
    _assert_views_equal(pg_db, mariadb, my_db, VIEWS | {"pgb_recent"})
    _assert_shapes(cfg, pg_db, mariadb, my_db)
    _assert_data(cfg)
