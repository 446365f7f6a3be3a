"""The catalog is created by ordered migrations, records its version and upgrades with data intact."""

from __future__ import annotations

import psycopg
import pytest

from pgbaton.catalog import migrate
from pgbaton.errors import CatalogError


def test_fresh_catalog_reaches_newest_version_and_rerun_is_noop(pg_db: str) -> None:
    with psycopg.connect(pg_db) as conn:
        applied = migrate.upgrade(conn, "pgbaton")
        assert applied == list(range(1, migrate.latest_version() + 1))
        assert migrate.current_version(conn, "pgbaton") == migrate.latest_version()
        assert migrate.upgrade(conn, "pgbaton") == []
        names = conn.execute("SELECT version, name FROM pgbaton.catalog_version ORDER BY 1").fetchall()
        assert [v for v, _ in names] == applied


def test_upgrade_from_first_version_keeps_data(pg_db: str) -> None:
    with psycopg.connect(pg_db) as conn:
        assert migrate.upgrade(conn, "cat", to_version=1) == [1]
        conn.execute("""INSERT INTO cat.sources (name, kind, state, read_file, read_pos)
                        VALUES ('shop', 'mariadb', 'running', 'binlog.000003', 12345)""")
        conn.execute("""INSERT INTO cat.tables (source, src_db, src_table, dst_schema, dst_table, pk_cols,
                        definition, state) VALUES ('shop', 'shop', 'orders', 'shop', 'orders', '{id}',
                        '{"db": "shop", "name": "orders", "columns": []}', 'replicating')""")
        conn.execute("""INSERT INTO cat.batches (source, batch_id, kind, status, end_file, end_pos, n_events)
                        VALUES ('shop', 7, 'rows', 'closed', 'binlog.000003', 12345, 42)""")
        conn.commit()
        assert migrate.upgrade(conn, "cat") == list(range(2, migrate.latest_version() + 1))
        src = conn.execute("SELECT name, state, read_file, read_pos, rows_replayed FROM cat.sources").fetchall()
        assert src == [("shop", "running", "binlog.000003", 12345, 0)]
        tab = conn.execute("SELECT src_table, pk_cols, state, rows_replayed FROM cat.tables").fetchall()
        assert tab == [("orders", ["id"], "replicating", 0)]
        bat = conn.execute("SELECT batch_id, status, n_events FROM cat.batches").fetchall()
        assert bat == [(7, "closed", 42)]
        conn.execute("INSERT INTO cat.errors (source, message) VALUES ('shop', 'x')")


def test_newer_catalog_is_refused(pg_db: str) -> None:
    with psycopg.connect(pg_db) as conn:
        migrate.upgrade(conn, "pgbaton")
        conn.execute("INSERT INTO pgbaton.catalog_version (version, name) VALUES (999, 'future')")
        conn.commit()
        with pytest.raises(CatalogError, match="newer than this pgbaton"):
            migrate.ensure(conn, "pgbaton")
