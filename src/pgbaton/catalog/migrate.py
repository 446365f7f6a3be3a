"""Versioned catalog migrations.

The catalog lives in one schema of the target database.  Its migrations are the
ordered ``sql/NNNN_name.sql`` files of this package; each runs in its own
transaction together with the row that records it, so an upgrade interrupted at
any point resumes from the last complete version.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from pgbaton.errors import CatalogError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x70676274  # advisory lock serialising concurrent upgrades


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with this pgbaton, oldest first."""
    found = []
    for entry in resources.files("pgbaton.catalog").joinpath("sql").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mg: mg.version)
    for i, mg in enumerate(found, start=1):
        if mg.version != i:
            raise CatalogError(f"catalog migrations are not numbered 1..n: found {mg.version} at place {i}")
    return found


def latest_version() -> int:
    return migrations()[-1].version


def current_version(conn: psycopg.Connection, schema: str) -> int:
    """The catalog version in ``schema``, 0 when there is no catalog yet."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'catalog_version')",
        (schema,),
    ).fetchone()
    if not row or not row[0]:
        return 0
    got = conn.execute(
        sql.SQL("SELECT coalesce(max(version), 0) FROM {}.catalog_version").format(sql.Identifier(schema))
    ).fetchone()
    return int(got[0]) if got else 0


def upgrade(conn: psycopg.Connection, schema: str, to_version: int | None = None) -> list[int]:
    """Apply the missing migrations up to ``to_version`` (default: newest). Returns the versions applied."""
    known = migrations()
    newest = known[-1].version
    goal = newest if to_version is None else to_version
    if goal > newest or goal < 1:
        raise CatalogError(f"catalog version {goal} does not exist; this pgbaton knows 1 to {newest}")
    applied: list[int] = []
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.commit()
    for mg in known:
        if mg.version > goal:
            break
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            have = current_version(conn, schema)
            if have > newest:
                raise CatalogError(
                    f"the catalog in schema {schema} has version {have}, newer than this pgbaton "
                    f"(knows up to {newest}): upgrade pgbaton"
                )
            if have >= mg.version:
                continue
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("SET LOCAL search_path TO {}, pg_catalog").format(sql.Identifier(schema)))
            conn.execute(mg.sql.encode())
            conn.execute(
                "INSERT INTO catalog_version (version, name) VALUES (%s, %s)", (mg.version, mg.name)
            )
            log.info("catalog %s: applied migration %04d_%s", schema, mg.version, mg.name)
            applied.append(mg.version)
    if not applied and goal < current_version(conn, schema):
        raise CatalogError("catalog downgrades are not supported")
    conn.commit()
    return applied


def ensure(conn: psycopg.Connection, schema: str) -> None:
    """Make sure the catalog exists and is current (used by every command that needs it)."""
    have = current_version(conn, schema)
    conn.commit()
    newest = latest_version()
    if have > newest:
        raise CatalogError(
            f"the catalog in schema {schema} has version {have}, newer than this pgbaton (knows up to {newest})"
        )
    if have < newest:
        upgrade(conn, schema)


def drop(conn: psycopg.Connection, schema: str) -> list[str]:
    """Remove the catalog once no source is registered in it. Returns what was dropped.

    Only pgbaton's own tables are dropped by name; the schema itself goes last and only when
    it is then empty, so nothing someone else put there is ever removed."""
    if current_version(conn, schema) == 0:
        conn.commit()
        return []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        left = [r[0] for r in conn.execute(
            sql.SQL("SELECT name FROM {}.sources ORDER BY name").format(sql.Identifier(schema))).fetchall()]
        if left:
            raise CatalogError(f"the catalog in schema {schema} still holds source(s) {', '.join(left)}: "
                               "`pgbaton replica detach` or `pgbaton source drop` each first")
        ours = [r[0] for r in conn.execute(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
                  AND (c.relname IN ('catalog_version', 'sources', 'tables', 'batches', 'errors', 'foreign_keys')
                       OR c.relname LIKE 'log\\_%%')""", (schema,)).fetchall()]
        for name in ours:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(schema, name)))
        others = [r[0] for r in conn.execute(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relkind NOT IN ('S', 'i') ORDER BY 1""", (schema,)).fetchall()]
        if others:
            log.warning("schema %s kept: it holds objects pgbaton did not create (%s)", schema, ", ".join(others))
        else:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            ours.append(f"schema {schema}")
    return ours
