"""Catalog access for a replica: connections, the source row, table registry, locks."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pgbaton.catalog import migrate
from pgbaton.cdc.model import Position
from pgbaton.cdc.store import TableCodec
from pgbaton.config import Config, MySQLSourceConfig
from pgbaton.errors import PgbatonError, SourceError
from pgbaton.mysql import typemap
from pgbaton.mysql.model import MyTable
from pgbaton.pgsql.conn import connect


def catalog_connection(cfg: Config, *, purpose: str = "pgbaton", autocommit: bool = False) -> psycopg.Connection:
    """A target connection with the catalog current and on the search path."""
    conn = connect(cfg.target, application_name=purpose)
    schema = cfg.target.catalog_schema
    migrate.ensure(conn, schema)
    # PostGIS's schema too: the type mapping names its type (geometry) unqualified
    row = conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                       "WHERE e.extname = 'postgis'").fetchone()
    path = [sql.Identifier(schema), sql.SQL("pg_catalog")] + ([sql.Identifier(row[0])] if row else [])
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.SQL(", ").join(path)))
    conn.commit()
    conn.autocommit = autocommit
    return conn


@dataclass(frozen=True)
class SourceRow:
    name: str
    state: str
    read_file: str | None
    read_pos: int | None
    read_gtid: str | None
    next_batch_id: int


def source_row(conn: psycopg.Connection, name: str) -> SourceRow:
    row = conn.execute(
        "SELECT name, state, read_file, read_pos, read_gtid, next_batch_id FROM sources WHERE name = %s", (name,)
    ).fetchone()
    conn.commit()
    if row is None:
        raise SourceError(f"source {name!r} is not registered in the catalog: run `pgbaton source add {name}` first")
    return SourceRow(*row)


def set_state(conn: psycopg.Connection, name: str, state: str, **extra: Any) -> None:
    sets: list[sql.Composable] = [sql.SQL("state = %s")]
    values: list[Any] = [state]
    for key, value in extra.items():
        sets.append(sql.SQL("{} = %s").format(sql.Identifier(key)))
        values.append(value)
    conn.execute(
        sql.SQL("UPDATE sources SET {} WHERE name = %s").format(sql.SQL(", ").join(sets)), (*values, name)
    )


def lock_key(source: str) -> int:
    """The advisory lock a running replica or an init holds for its source."""
    return zlib.crc32(f"pgbaton:{source}".encode())


def try_lock(conn: psycopg.Connection, source: str) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(source),)).fetchone()
    return bool(row and row[0])


def lock_holder(conn: psycopg.Connection, source: str) -> int | None:
    """The backend PID holding the source's lock (a replica or init is running), else None."""
    holder = advisory_holder(conn, lock_key(source))
    return holder[0] if holder else None


def advisory_holder(conn: psycopg.Connection, key: int) -> tuple[int, str] | None:
    """The backend PID and application name holding the session advisory lock ``key``
    in this database, else None."""
    row = conn.execute(
        """SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
            WHERE l.locktype = 'advisory' AND l.granted AND l.objid = (%s::bigint & 4294967295)::oid
              AND l.classid = ((%s::bigint >> 32) & 4294967295)::oid AND l.database = (
                  SELECT oid FROM pg_database WHERE datname = current_database())""",
        (key, key),
    ).fetchone()
    return (int(row[0]), str(row[1] or "")) if row else None


def has_postgis(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis')").fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class TableEntry:
    id: int
    definition: MyTable
    dst_schema: str
    dst_table: str
    pk: tuple[str, ...]
    state: str
    sync_pos: Position | None = None


def tables(conn: psycopg.Connection, source: str, states: tuple[str, ...] = ("replicating",)) -> list[TableEntry]:
    rows = conn.execute(
        """SELECT id, definition, dst_schema, dst_table, pk_cols, state, sync_file, sync_pos, sync_gtid
             FROM tables WHERE source = %s AND state = ANY(%s) ORDER BY id""",
        (source, list(states)),
    ).fetchall()
    conn.commit()
    return [TableEntry(r[0], MyTable.from_json(r[1]), r[2], r[3], tuple(r[4]), r[5],
                       Position(r[6], int(r[7]), r[8]) if r[6] is not None else None) for r in rows]


def codecs(entries: list[TableEntry], src: MySQLSourceConfig, postgis: bool) -> dict[tuple[str, str], TableCodec]:
    """Per-table encoders for the binlog writer, built from the tracked MySQL definitions."""
    out: dict[tuple[str, str], TableCodec] = {}
    for e in entries:
        t = e.definition
        opts = typemap.type_options(src, t.db, t.name, postgis)
        key_cols = [c for c in t.columns if c.target in e.pk] if e.pk else list(t.columns)
        out[(t.db, t.name)] = TableCodec(e.id, e.pk, typemap.row_converter(t.columns, opts),
                                         typemap.row_converter(key_cols, opts, keep_unknown=not e.pk),
                                         copying=e.state == "copying", sync_until=e.sync_pos)
    return out


# -- table registry: the one place target names are chosen and recorded ---------------------

def registered_names(conn: psycopg.Connection, schema: str, *, except_id: int | None = None) -> set[str]:
    """Target table names the catalog already holds in ``schema`` (any source)."""
    rows = conn.execute("SELECT dst_table FROM tables WHERE dst_schema = %s AND id IS DISTINCT FROM %s",
                        (schema, except_id)).fetchall()
    return {r[0] for r in rows}


def foreign_relations(conn: psycopg.Connection, schema: str) -> set[str]:
    """Relations in ``schema`` that pgbaton did not register as replicated tables (a user's
    own tables, views, sequences...)."""
    rows = conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
              AND c.relname NOT IN (SELECT dst_table FROM tables WHERE dst_schema = %s)""",
        (schema, schema)).fetchall()
    return {r[0] for r in rows}


def refuse_foreign_relation(conn: psycopg.Connection, schema: str, name: str, what: str, key: str) -> None:
    """``replica init`` never replaces what it did not create."""
    row = conn.execute(
        """SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s""", (schema, name)).fetchone()
    if row is None:
        return
    kinds = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table",
             "S": "sequence", "i": "index"}
    raise PgbatonError(
        f"{what}: the target already has a {kinds.get(row[0], 'relation')} {schema}.{name} that pgbaton did "
        f"not create; drop or rename it, or map the database to another schema (config key {key})")


def register_table(conn: psycopg.Connection, source: str, t: MyTable, schema: str, dst_table: str,
                   state: str) -> int:
    """Record a replicated table with its chosen PostgreSQL names; returns its catalog id."""
    t = t.named()
    row = conn.execute(
        """INSERT INTO tables (source, src_db, src_table, dst_schema, dst_table, pk_cols, definition, state)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (source, t.db, t.name, schema, dst_table, list(t.pg_pk_columns), Jsonb(t.to_json()), state),
    ).fetchone()
    assert row is not None
    return int(row[0])


def renamed_columns(t: MyTable) -> dict[str, str]:
    """The columns of ``t`` whose PostgreSQL name differs from the MySQL one."""
    return {c.name: c.target for c in t.columns if c.target != c.name}


def column_maps(conn: psycopg.Connection, source: str) -> dict[tuple[str, str], dict[str, str]]:
    """Per replicated (db, table) of the source: MySQL column name -> PostgreSQL name, as recorded."""
    rows = conn.execute("SELECT src_db, src_table, definition FROM tables WHERE source = %s", (source,)).fetchall()
    out = {}
    for db, table, definition in rows:
        t = MyTable.from_json(definition)
        out[(db, table)] = {c.name: c.target for c in t.columns}
    return out
