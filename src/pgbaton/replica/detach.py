"""`replica detach` and `source drop`: end a replica for good.

Detach turns the target tables of a source into a standalone database: what is stored is
replayed, identity/serial sequences are moved past the values in their columns (and past
the source's AUTO_INCREMENT), the source's foreign keys are created (NOT VALID, then
VALIDATE, with their ON DELETE/ON UPDATE actions), and pgbaton's objects for the source are
removed.  `source drop` removes pgbaton's objects only (and, when asked, the target tables).
Each step can run again: a rerun after an interruption finishes the work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pgbaton.cdc.replay import Batch, Replayer
from pgbaton.cdc.store import log_table_name
from pgbaton.config import Config, MySQLSourceConfig, OnError
from pgbaton.errors import PgbatonError
from pgbaton.mysql.foreignkeys import read_foreign_keys
from pgbaton.mysql.model import MyTable
from pgbaton.mysql.pgddl import pg_name
from pgbaton.replica import catalog as cat
from pgbaton.replica.ddl import apply_ddl_batch
from pgbaton.replica.init import mysql_connect

log = logging.getLogger(__name__)

_RULES = {"CASCADE": "CASCADE", "SET NULL": "SET NULL", "SET DEFAULT": "SET DEFAULT", "RESTRICT": "RESTRICT",
          "NO ACTION": "NO ACTION"}


@dataclass
class ForeignKey:
    db: str
    table: str
    name: str
    ref_db: str
    ref_table: str
    columns: list[str]
    ref_columns: list[str]
    on_update: str
    on_delete: str


@dataclass
class DetachResult:
    source: str
    replayed_events: int = 0
    sequences: list[str] = field(default_factory=list)
    foreign_keys: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    removed: bool = False


def _guard(cfg: Config, source: str) -> tuple[psycopg.Connection, psycopg.Connection]:
    conn = cat.catalog_connection(cfg, purpose=f"pgbaton-detach-{source}")
    lock = cat.catalog_connection(cfg, purpose=f"pgbaton-lock-{source}", autocommit=True)
    if not cat.try_lock(lock, source):
        conn.close()
        lock.close()
        raise PgbatonError(f"source {source}: a replica, init or sync runs; stop it first "
                           f"(`pgbaton replica stop --source {source}`)")
    return conn, lock


def _registered(conn: psycopg.Connection, source: str) -> bool:
    row = conn.execute("SELECT 1 FROM sources WHERE name = %s", (source,)).fetchone()
    conn.commit()
    return row is not None


def detach(cfg: Config, source: str, *, foreign_keys: bool = True) -> DetachResult:
    """Make the source's target tables standalone and forget the source. Safe to rerun."""
    src = cfg.source(source)
    result = DetachResult(source)
    conn, lock = _guard(cfg, source)
    try:
        if not _registered(conn, source):
            return result          # detached before: nothing left to do
        schema = cfg.target.catalog_schema
        replayer = Replayer(conn, schema, source, OnError.stop,
                            lambda c, b: _apply_ddl(c, cfg, source, b))
        result.replayed_events = replayer.replay_pending()
        tables = conn.execute("SELECT src_db, src_table, dst_schema, dst_table, definition FROM tables "
                              "WHERE source = %s", (source,)).fetchall()
        conn.commit()
        mapping = {(r[0], r[1]): (r[2], r[3]) for r in tables}
        defs = {(r[0], r[1]): MyTable.from_json(r[4]) for r in tables}
        fks: list[ForeignKey] = []
        auto_inc: dict[tuple[str, str], int] = {}
        if foreign_keys:
            fks, auto_inc = _read_source(src)
        result.sequences = _fix_sequences(conn, mapping, auto_inc)
        for fk in fks:
            done = _create_fk(conn, fk, mapping, defs, result.warnings)
            if done:
                result.foreign_keys.append(done)
        _remove(conn, schema, source)
        result.removed = True
    finally:
        conn.close()
        lock.close()
    log.info("source %s detached: %d sequence(s) set, %d foreign key(s)", source, len(result.sequences),
             len(result.foreign_keys))
    return result


def drop_source(cfg: Config, source: str, *, drop_tables: bool = False) -> bool:
    """Remove pgbaton's objects for the source (and its target tables if asked). Safe to rerun."""
    cfg.source(source)
    conn, lock = _guard(cfg, source)
    try:
        if not _registered(conn, source):
            return False
        if drop_tables:
            with conn.transaction():
                for s, t in conn.execute("SELECT dst_schema, dst_table FROM tables WHERE source = %s",
                                         (source,)).fetchall():
                    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(s, t)))
        _remove(conn, cfg.target.catalog_schema, source)
        return True
    finally:
        conn.close()
        lock.close()


def _apply_ddl(conn: psycopg.Connection, cfg: Config, source: str, batch: Batch) -> None:
    apply_ddl_batch(conn, cfg, source, batch)


def _read_source(src: MySQLSourceConfig) -> tuple[list[ForeignKey], dict[tuple[str, str], int]]:
    my = mysql_connect(src)
    try:
        # information_schema.REFERENTIAL_CONSTRAINTS shows nothing to a user with only the
        # documented grants on MariaDB: read_foreign_keys falls back to SHOW CREATE TABLE
        found = read_foreign_keys(my, sorted(src.databases))
        with my.cursor() as cur:
            dbs = list(src.databases)
            cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
                        "WHERE TABLE_SCHEMA IN %s AND AUTO_INCREMENT IS NOT NULL", (dbs,))
            auto_inc = {(r[0], r[1]): int(r[2]) for r in cur.fetchall()}
    finally:
        my.close()
    fks = [ForeignKey(f.child_db, f.child_table, f.name, f.parent_db, f.parent_table, list(f.child_cols),
                      list(f.parent_cols), _RULES.get(f.on_update, "NO ACTION"), _RULES.get(f.on_delete, "NO ACTION"))
           for f in found]
    return fks, auto_inc


def _fix_sequences(conn: psycopg.Connection, mapping: dict[tuple[str, str], tuple[str, str]],
                   auto_inc: dict[tuple[str, str], int]) -> list[str]:
    """Every identity/serial sequence of the tables continues after max(column) and AUTO_INCREMENT."""
    done = []
    with conn.transaction():
        for (db, table), (schema, name) in mapping.items():
            rel = sql.Identifier(schema, name).as_string(conn)
            cols = conn.execute(
                """SELECT a.attname, pg_get_serial_sequence(%s, a.attname) FROM pg_attribute a
                    WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
                      AND pg_get_serial_sequence(%s, a.attname) IS NOT NULL""", (rel, rel, rel)).fetchall()
            for col, seq in cols:
                conn.execute(
                    sql.SQL("SELECT setval(%s, GREATEST((SELECT coalesce(max({c}), 0) FROM {t}) + 1, %s, "
                            "(SELECT last_value + 1 FROM {s})), false)").format(
                        c=sql.Identifier(col), t=sql.Identifier(schema, name),
                        s=sql.SQL(seq)),  # pg_get_serial_sequence returns a quoted, qualified name
                    (seq, auto_inc.get((db, table), 1)))
                done.append(f"{schema}.{name}.{col}")
    return done


def _create_fk(conn: psycopg.Connection, fk: ForeignKey, mapping: dict[tuple[str, str], tuple[str, str]],
               defs: dict[tuple[str, str], MyTable], warnings: list[str]) -> str | None:
    label = f"{fk.db}.{fk.table}.{fk.name}"
    child, parent = mapping.get((fk.db, fk.table)), mapping.get((fk.ref_db, fk.ref_table))
    if child is None or parent is None:
        warnings.append(f"foreign key {label}: {fk.ref_db}.{fk.ref_table} or {fk.db}.{fk.table} is not "
                        "replicated; skipped")
        return None
    name = pg_name(fk.name)
    table = sql.Identifier(*child)
    exists = conn.execute("SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s",
                          (table.as_string(conn), name)).fetchone()
    try:
        if exists is None:
            with conn.transaction():
                conn.execute(sql.SQL(
                    "ALTER TABLE {t} ADD CONSTRAINT {n} FOREIGN KEY ({c}) REFERENCES {p} ({pc}) "
                    "ON UPDATE {u} ON DELETE {d} NOT VALID").format(
                    t=table, n=sql.Identifier(name),
                    c=sql.SQL(", ").join(sql.Identifier(defs[(fk.db, fk.table)].pg(c)) for c in fk.columns),
                    p=sql.Identifier(*parent),
                    pc=sql.SQL(", ").join(sql.Identifier(defs[(fk.ref_db, fk.ref_table)].pg(c))
                                          for c in fk.ref_columns),
                    u=sql.SQL(fk.on_update), d=sql.SQL(fk.on_delete)))
        if exists is None or not exists[0]:
            with conn.transaction():
                conn.execute(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(table, sql.Identifier(name)))
    except psycopg.Error as exc:
        conn.rollback()
        warnings.append(f"foreign key {label}: {exc.diag.message_primary or exc}")
        log.warning("foreign key %s not created: %s", label, exc.diag.message_primary or exc)
        return None
    conn.commit()
    return label


def _remove(conn: psycopg.Connection, schema: str, source: str) -> None:
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, log_table_name(source))))
        conn.execute("DELETE FROM sources WHERE name = %s", (source,))


def summary(result: DetachResult) -> dict[str, Any]:
    return {"source": result.source, "replayed_events": result.replayed_events, "sequences": result.sequences,
            "foreign_keys": result.foreign_keys, "warnings": result.warnings, "removed": result.removed}
