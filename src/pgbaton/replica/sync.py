"""`replica sync-tables`: copy some tables again from a fresh snapshot while the replica runs.

Exactly once, with the replica of the other tables going on:

1. The tables become ``copying`` and the source's ``tables_version`` is bumped.  A running
   writer notices it between two source transactions, closes its batch and reloads: from
   then on it stores the tables' changes and ends a batch with each transaction that
   touches them (TableCodec.isolates).  Its acknowledgement is awaited.
2. A fresh consistent snapshot of the tables is taken at binlog position P (later than the
   writer's reload) and copied into the target tables (truncate + COPY in one transaction).
   The replayer skips tables that are ``copying``.
3. Catch-up, under the replay lock: the tables' changes in batches already replayed that end
   after P are applied, then the tables become ``replicating`` with P as their sync position.
   From there on the replayer applies their changes only from batches ending after P.

Because every batch holding a change of these tables from a transaction at or before P ends
with that transaction, "batch ends after P" is exact, also for tables without a key.
Without a running replica the same steps run directly (the source's lock is held so that
no replica starts meanwhile).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pgbaton.cdc.model import Position, position_key
from pgbaton.cdc.replay import ReplayTable, _statements, range_params, replay_lock_key
from pgbaton.cdc.store import log_table_name
from pgbaton.config import Config, MySQLSourceConfig
from pgbaton.errors import PgbatonError, SourceError
from pgbaton.mysql import introspect, names, pgddl, typemap
from pgbaton.mysql.model import MyTable
from pgbaton.mysql.snapshot import copy_table, open_snapshot
from pgbaton.replica import catalog as cat
from pgbaton.replica.init import mysql_connect, snapshot_reader_factory

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    tables: list[str]
    position: str
    online: bool
    rows: int = 0
    caught_up_batches: int = 0
    per_table: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Target:
    id: int
    table: MyTable
    schema: str
    name: str
    pk: tuple[str, ...]
    created: bool          # new in the target: keys and indexes are built after the copy


def sync_lock_key(source: str) -> int:
    return cat.lock_key(source) ^ 0x5359


def sync_tables(cfg: Config, source: str, names: list[str], *, writer_timeout: float = 120.0) -> SyncResult:
    """Re-copy ``names`` (``db.table`` or ``table``; ``["disabled"]``: every disabled table)."""
    src = cfg.source(source)
    conn = cat.catalog_connection(cfg, purpose=f"pgbaton-sync-{source}")
    lock = cat.catalog_connection(cfg, purpose=f"pgbaton-sync-lock-{source}", autocommit=True)
    try:
        cat.source_row(conn, source)
        if not bool(lock.execute("SELECT pg_try_advisory_lock(%s)", (sync_lock_key(source),)).fetchone()[0]):  # type: ignore[index]
            raise PgbatonError(f"source {source}: another sync-tables is running")
        offline = cat.try_lock(lock, source)
        state = cat.source_row(conn, source).state
        if state in ("new", "initializing"):
            raise PgbatonError(f"source {source} is not initialized: run `pgbaton replica init --source {source}`")
        wanted = _resolve(conn, src, source, names)
        if not wanted:
            return SyncResult([], "", not offline)
        defs = {(t.db, t.name): t for t in _introspect(src, wanted)}
        missing = [f"{d}.{t}" for d, t in wanted if (d, t) not in defs]
        if missing:
            raise SourceError(f"source {source}: no table {', '.join(missing)} in databases "
                              f"{', '.join(src.databases)}")
        postgis = cat.has_postgis(conn)
        conn.commit()
        targets, version = _mark_copying(conn, src, source, [defs[w] for w in wanted], postgis)
        if not offline:
            _wait_writer(conn, lock, source, version, writer_timeout)
        point, per_table = _copy(src, cfg, source, targets, postgis)
        batches = _finish(conn, cfg.target.catalog_schema, source, targets, point.pos, per_table)
        return SyncResult([f"{t.table.db}.{t.table.name}" for t in targets], str(point.pos), not offline,
                          sum(r["rows"] for r in per_table), batches, per_table)
    finally:
        conn.close()
        lock.close()


def _resolve(conn: psycopg.Connection, src: MySQLSourceConfig, source: str, names: list[str]) -> list[tuple[str, str]]:
    if names == ["disabled"]:
        rows = conn.execute("SELECT src_db, src_table FROM tables WHERE source = %s AND state = 'disabled' "
                            "ORDER BY id", (source,)).fetchall()
        conn.commit()
        return [(r[0], r[1]) for r in rows]
    known = conn.execute("SELECT src_db, src_table FROM tables WHERE source = %s", (source,)).fetchall()
    conn.commit()
    out: list[tuple[str, str]] = []
    for n in names:
        if "." in n:
            db, _, t = n.partition(".")
            if db not in src.databases:
                raise PgbatonError(f"{n}: database {db} is not in sources.{source}.databases")
            hit = [(db, t)]
        else:
            hit = [(d, t) for d, t in known if t == n] or [(d, n) for d in src.databases]
            if len(hit) > 1:
                raise PgbatonError(f"table {n} is ambiguous: write db.table ({', '.join(d for d, _ in hit)})")
        for h in hit:
            if h not in out:
                out.append(h)
    return out


def _introspect(src: MySQLSourceConfig, wanted: list[tuple[str, str]]) -> list[MyTable]:
    my = mysql_connect(src)
    try:
        dbs = sorted({d for d, _ in wanted})
        return introspect.introspect(my, dbs, lambda d, t: (d, t) in wanted)
    finally:
        my.close()


def _mark_copying(conn: psycopg.Connection, src: MySQLSourceConfig, source: str, tables: list[MyTable],
                  postgis: bool) -> tuple[list[_Target], int]:
    """Tables become 'copying' (new ones are created) and the source's table version moves on."""
    targets = []
    with conn.transaction():
        for t in tables:
            row = conn.execute(
                """UPDATE tables SET state = 'copying', disabled_reason = NULL, disabled_at = NULL,
                          sync_file = NULL, sync_pos = NULL, sync_gtid = NULL
                    WHERE source = %s AND src_db = %s AND src_table = %s
                RETURNING id, definition, dst_schema, dst_table, pk_cols""", (source, t.db, t.name)).fetchone()
            if row is not None:
                targets.append(_Target(row[0], MyTable.from_json(row[1]), row[2], row[3], tuple(row[4]), False))
                continue
            schema = src.databases[t.db]
            t = t.named()
            dst_table = names.table_name(t.name, cat.registered_names(conn, schema))
            cat.refuse_foreign_relation(conn, schema, dst_table, f"{t.db}.{t.name}",
                                        f"sources.{source}.databases.{t.db}")
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            for stmt in pgddl.create_table_sql(t, schema, typemap.type_options(src, t.db, t.name, postgis),
                                               name=dst_table):
                conn.execute(stmt)
            new_id = cat.register_table(conn, source, t, schema, dst_table, "copying")
            targets.append(_Target(new_id, t, schema, dst_table, t.pg_pk_columns, True))
        v = conn.execute("UPDATE sources SET tables_version = tables_version + 1 WHERE name = %s "
                         "RETURNING tables_version", (source,)).fetchone()
    assert v is not None
    return targets, int(v[0])


def _wait_writer(conn: psycopg.Connection, lock: psycopg.Connection, source: str, version: int,
                 timeout: float, *, take_lock: bool = True) -> None:
    """Wait until the running replica's writer stores the tables' changes (``take_lock``: or
    until the replica has stopped, its lock then taken so that it cannot start meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute("SELECT writer_tables_version FROM sources WHERE name = %s", (source,)).fetchone()
        conn.commit()
        if row is not None and int(row[0]) >= version:
            return
        if take_lock and cat.lock_holder(lock, source) is None and cat.try_lock(lock, source):
            return    # the replica stopped meanwhile: it reloads the tables when it starts
        time.sleep(0.05)
    raise PgbatonError(f"source {source}: the running replica did not pick up the tables within {timeout:.0f} s "
                       "(is it far behind or stuck?); the tables stay 'copying': rerun sync-tables")


def _copy(src: MySQLSourceConfig, cfg: Config, source: str, targets: list[_Target],
          postgis: bool) -> tuple[Any, list[dict[str, Any]]]:
    point, readers = open_snapshot(lambda: mysql_connect(src), snapshot_reader_factory(src), 1)
    reader = readers[0]
    log.info("source %s: sync snapshot at %s", source, point.pos)
    results = []
    try:
        with psycopg.connect(cfg.target.conninfo(f"pgbaton-sync-copy-{source}")) as pg:
            for t in targets:
                opts = typemap.type_options(src, t.table.db, t.table.name, postgis)
                t0 = time.monotonic()
                rows, size = copy_table(reader, pg, t.table, t.schema, t.name, opts,
                                        [c.target for c in t.table.columns], lambda _r, _b: None)
                if t.created:
                    with pg.transaction():
                        for stmt in pgddl.post_load_sql(t.table, t.schema, opts, name=t.name):
                            pg.execute(stmt)
                pg.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(t.schema, t.name)))
                pg.commit()
                results.append({"id": t.id, "table": f"{t.table.db}.{t.table.name}", "rows": rows, "bytes": size,
                                "seconds": round(time.monotonic() - t0, 3)})
    finally:
        reader.close()
    return point, results


def _finish(conn: psycopg.Connection, schema: str, source: str, targets: list[_Target], pos: Position,
            per_table: list[dict[str, Any]]) -> int:
    """Apply the changes replayed (for the other tables) while the copy ran, then go live."""
    key = position_key(pos.file, pos.pos)
    log_ident = sql.Identifier(schema, log_table_name(source))
    rows_by_id = {r["id"]: r["rows"] for r in per_table}
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (replay_lock_key(source),))
        done = conn.execute(
            """SELECT batch_id, end_file, end_pos FROM batches
                WHERE source = %s AND status = 'replayed' AND kind = 'rows' ORDER BY batch_id""",
            (source,)).fetchall()
        after = [b for b, f, p in done if f is not None and position_key(f, p) > key]
        if after:
            conn.execute("SET LOCAL enable_hashjoin = off")
            conn.execute("SET LOCAL enable_mergejoin = off")
            for t in targets:
                stmts = _statements(ReplayTable(t.id, t.schema, t.name, t.pk, t.table.name), log_ident)
                params = range_params(after[0], after[-1], t.id)
                conn.execute(stmts[0], params)
                conn.execute(stmts[1], params)
        for t in targets:
            conn.execute(
                """UPDATE tables SET state = 'replicating', sync_file = %s, sync_pos = %s, sync_gtid = %s,
                          synced_at = now(), rows_copied = %s WHERE id = %s""",
                (pos.file, pos.pos, pos.gtid, rows_by_id.get(t.id), t.id))
        conn.execute("UPDATE sources SET tables_version = tables_version + 1 WHERE name = %s", (source,))
    log.info("source %s: %d table(s) synced at %s, %d replayed batch(es) caught up", source, len(targets), pos,
             len(after))
    return len(after)
