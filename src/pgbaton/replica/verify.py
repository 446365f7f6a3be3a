"""`replica verify`: prove that the target tables equal the source tables.

The source tables are read from one consistent snapshot through the same
conversion as the initial copy into temporary tables on the target; PostgreSQL
then compares them with the replicated tables using its own type semantics:
row counts, an order-independent checksum, and the rows missing on either side.
Run it while the replica has caught up and the source is quiet, or in-flight
changes show up as differences.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from pgbaton.config import Config
from pgbaton.errors import PgbatonError
from pgbaton.mysql import typemap
from pgbaton.mysql.snapshot import copy_table, open_snapshot
from pgbaton.replica import catalog as cat
from pgbaton.replica.init import mysql_connect, snapshot_reader_factory

log = logging.getLogger(__name__)

# ROW(x.*): a user's column named x must not stand in for the row
_CHECKSUM = """SELECT count(*), coalesce(md5(string_agg(md5(ROW(x.*)::text), '' ORDER BY md5(ROW(x.*)::text))),
                      md5('')) FROM {} AS x"""
_DIFF = "SELECT count(*) FROM (SELECT * FROM {} AS a EXCEPT ALL SELECT * FROM {} AS b) AS d"


def verify(cfg: Config, source: str, tables: list[str] | None = None, samples: int = 3) -> list[dict[str, Any]]:
    """Compare each replicated table with the source. Returns one result per table."""
    src = cfg.source(source)
    conn = cat.catalog_connection(cfg, purpose=f"pgbaton-verify-{source}")
    try:
        entries = cat.tables(conn, source, states=("replicating", "disabled", "copying"))
        postgis = cat.has_postgis(conn)
        if tables:
            wanted = set(tables)
            entries = [e for e in entries if f"{e.definition.db}.{e.definition.name}" in wanted
                       or e.definition.name in wanted]
            if not entries:
                raise PgbatonError(f"none of the tables {', '.join(tables)} is replicated by source {source}")
        _, mys = open_snapshot(lambda: mysql_connect(src), snapshot_reader_factory(src), 1)
        my = mys[0]
        results = []
        try:
            for e in entries:
                results.append(_verify_table(conn, my, src, e, postgis, samples))
        finally:
            my.close()
        return results
    finally:
        conn.close()


def _verify_table(conn: psycopg.Connection, my: Any, src: Any, e: cat.TableEntry, postgis: bool,
                  samples: int) -> dict[str, Any]:
    t = e.definition
    opts = typemap.type_options(src, t.db, t.name, postgis)
    target = sql.Identifier(e.dst_schema, e.dst_table)
    temp = sql.Identifier("pgbaton_verify")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.pgbaton_verify"))
    conn.execute(sql.SQL("CREATE TEMP TABLE pgbaton_verify (LIKE {})").format(target))
    conn.commit()
    copy_table(my, conn, t, "pg_temp", "pgbaton_verify", opts, [c.target for c in t.columns], lambda r, b: None)
    cols = sql.SQL(", ").join(sql.Identifier(c.target) for c in t.columns)
    src_sel = sql.SQL("(SELECT {} FROM pg_temp.{})").format(cols, temp)
    dst_sel = sql.SQL("(SELECT {} FROM {})").format(cols, target)
    s_rows, s_sum = conn.execute(sql.SQL(_CHECKSUM).format(src_sel)).fetchone() or (0, "")
    d_rows, d_sum = conn.execute(sql.SQL(_CHECKSUM).format(dst_sel)).fetchone() or (0, "")
    missing = extra = 0
    examples: dict[str, list[str]] = {}
    if s_sum != d_sum:
        missing = _count(conn, sql.SQL(_DIFF).format(src_sel, dst_sel))
        extra = _count(conn, sql.SQL(_DIFF).format(dst_sel, src_sel))
        examples["missing_on_target"] = _examples(conn, src_sel, dst_sel, samples)
        examples["extra_on_target"] = _examples(conn, dst_sel, src_sel, samples)
    conn.execute("DROP TABLE IF EXISTS pg_temp.pgbaton_verify")
    conn.commit()
    return {"table": f"{t.db}.{t.name}", "target": f"{e.dst_schema}.{e.dst_table}", "state": e.state,
            "source_rows": int(s_rows), "target_rows": int(d_rows), "source_checksum": s_sum,
            "target_checksum": d_sum, "missing_on_target": missing, "extra_on_target": extra,
            "equal": s_sum == d_sum, **({"examples": examples} if examples else {})}


def _count(conn: psycopg.Connection, query: sql.Composed) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _examples(conn: psycopg.Connection, a: sql.Composable, b: sql.Composable, n: int) -> list[str]:
    query = sql.SQL("SELECT ROW(d.*)::text FROM (SELECT * FROM {} AS a EXCEPT ALL SELECT * FROM {} AS b) AS d "
                    "LIMIT {}")
    rows = conn.execute(query.format(a, b, sql.Literal(n))).fetchall()
    return [r[0] for r in rows]
