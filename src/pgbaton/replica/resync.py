"""Self-healing: copy a table again when a DDL statement changed its rows in a way the
binlog does not carry (DROP / TRUNCATE / EXCHANGE PARTITION, a generated column whose
expression has no PostgreSQL equivalent, a JSON check dropped...) or could not be
followed at all.

The DDL executor (``replica.ddl``) records the request in the DDL's own transaction:
the table becomes ``disabled`` with a reason starting ``re-copy pending:`` and an
``errors`` row keeps the history.  A worker thread of the running replica then copies
the table with the ``replica sync-tables`` machinery (``replica.sync``): the writer is
told first, one fresh consistent snapshot is copied, the changes replayed meanwhile are
caught up, the table goes back to ``replicating``.  Unlike a plain sync-tables the table
is created again from the source's definition as it is now, so whatever DDL the replica
could not follow is healed too.  A request left by a stopped replica is picked up by the
next DDL statement or by ``resume_pending``; ``replica sync-tables disabled`` does the
same by hand.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pgbaton.cdc.model import position_key
from pgbaton.config import Config, MySQLSourceConfig
from pgbaton.errors import PgbatonError
from pgbaton.mysql import names, pgddl, typemap
from pgbaton.mysql.ddl.translate import Scope, guess_table
from pgbaton.mysql.model import MyTable
from pgbaton.replica import catalog as cat
from pgbaton.replica import sync

log = logging.getLogger(__name__)

PENDING = "re-copy pending: "
COPYING = "being re-copied: "
DONE = "re-copied from a fresh snapshot: "
MAX_ROUNDS = 3
IDLE_SECONDS = 30.0     # a worker with nothing to do waits this long for more before it ends


def request(conn: psycopg.Connection, table_id: int, reason: str) -> None:
    """In the DDL's transaction: the table waits for a re-copy (its changes are not stored meanwhile)."""
    conn.execute(
        """UPDATE tables SET state = 'disabled', disabled_reason = %s, disabled_at = clock_timestamp()
            WHERE id = %s""", ((PENDING + reason)[:1000], table_id))


def request_new(conn: psycopg.Connection, source: str, db: str, table: str, schema: str, reason: str) -> None:
    """A table the replica does not know yet (EXCHANGE / CONVERT with a table outside the catalog)."""
    conn.execute(
        """INSERT INTO tables (source, src_db, src_table, dst_schema, dst_table, pk_cols, definition, state,
                               disabled_reason, disabled_at)
           VALUES (%s, %s, %s, %s, %s, '{}', %s, 'disabled', %s, clock_timestamp())
           ON CONFLICT (source, src_db, src_table) DO NOTHING""",
        (source, db, table, schema, names.table_name(table, cat.registered_names(conn, schema)),
         Jsonb(MyTable(db, table, ()).to_json()), (PENDING + reason)[:1000]))


_PENDING_SQL = """
SELECT src_db, src_table FROM tables
 WHERE source = %(s)s AND ((state = 'disabled' AND disabled_reason LIKE %(pending)s)
                           OR (state = 'copying' AND disabled_reason LIKE %(copying)s))
 ORDER BY id"""


def pending(conn: psycopg.Connection, source: str, *, commit: bool = True) -> list[tuple[str, str]]:
    """Tables waiting for a re-copy, and those a re-copy left half done (its process
    stopped): a worker of this process only calls this between two re-copies."""
    rows = conn.execute(_PENDING_SQL, {"s": source, "pending": PENDING + "%", "copying": COPYING + "%"}).fetchall()
    if commit:
        conn.commit()
    return [(r[0], r[1]) for r in rows]


# -- the worker --------------------------------------------------------------------------

_guard = threading.Lock()
_workers: dict[str, threading.Thread] = {}
_requests: dict[str, int] = {}


def schedule(cfg: Config, source: str) -> None:
    """Make sure a worker of this process copies the source's pending tables (soon after
    the current transaction commits)."""
    with _guard:
        _requests[source] = _requests.get(source, 0) + 1
        worker = _workers.get(source)
        if worker is not None and worker.is_alive():
            return
        worker = threading.Thread(target=_work, args=(cfg, source), name=f"resync-{source}", daemon=True)
        _workers[source] = worker
        worker.start()


def resume_pending(cfg: Config, source: str) -> None:
    """At replica start: pick up requests a stopped replica left."""
    conn = cat.catalog_connection(cfg, purpose=f"pgbaton-resync-{source}")
    try:
        if pending(conn, source):
            schedule(cfg, source)
    finally:
        conn.close()


def _work(cfg: Config, source: str) -> None:
    failures = 0
    try:
        conn = cat.catalog_connection(cfg, purpose=f"pgbaton-resync-{source}")
    except Exception:
        log.exception("source %s: the re-copy worker cannot connect", source)
        with _guard:
            _workers.pop(source, None)
        return
    try:
        seen = -1
        idle_until = time.monotonic() + IDLE_SECONDS     # the requesting transaction commits meanwhile
        while True:
            with _guard:
                current = _requests.get(source, 0)
            try:
                keys = pending(conn, source)
            except psycopg.Error as exc:      # the target went away: the next DDL starts a worker again
                log.warning("source %s: the re-copy worker stops: %s", source, str(exc).strip())
                with _guard:
                    _workers.pop(source, None)
                return
            if not keys:
                if current != seen:
                    seen, idle_until = current, time.monotonic() + IDLE_SECONDS
                if time.monotonic() >= idle_until:
                    with _guard:
                        if _requests.get(source, 0) == seen:
                            _workers.pop(source, None)
                            return
                time.sleep(0.1)
                continue
            try:
                resync_tables(cfg, source, keys, in_replica=True)
                failures = 0
            except Exception as exc:
                failures += 1
                log.warning("source %s: re-copy of %s failed (%s); retrying", source,
                            ", ".join(f"{d}.{t}" for d, t in keys), exc)
                time.sleep(min(30.0, 0.5 * 2 ** failures))
    finally:
        conn.close()


# -- one re-copy -------------------------------------------------------------------------

def _same_shape(a: MyTable, b: MyTable) -> bool:
    keep = ("foreign_keys", "fk_indexes", "checks")
    return replace(a, auto_increment=None, extra={k: v for k, v in a.extra.items() if k in keep}) == \
        replace(b, auto_increment=None, extra={k: v for k, v in b.extra.items() if k in keep})


def resync_tables(cfg: Config, source: str, keys: list[tuple[str, str]], *, writer_timeout: float = 120.0,
                  in_replica: bool = False) -> list[str]:
    """Copy ``keys`` again from a fresh snapshot, each created anew from its current
    definition on the source.  Returns the tables re-copied.

    ``in_replica``: called by the worker of a replica process, whose writer may be between two
    runs of its supervisor (a lost binlog connection): the source's lock is never taken then,
    or the writer's next run would find it held and the process would end."""
    src = cfg.source(source)
    conn = cat.catalog_connection(cfg, purpose=f"pgbaton-resync-{source}")
    lock = cat.catalog_connection(cfg, purpose=f"pgbaton-resync-lock-{source}", autocommit=True)
    try:
        row = lock.execute("SELECT pg_try_advisory_lock(%s)", (sync.sync_lock_key(source),)).fetchone()
        if not (row and row[0]):
            raise PgbatonError(f"source {source}: a sync-tables is running")
        offline = not in_replica and cat.try_lock(lock, source)
        postgis = cat.has_postgis(conn)
        conn.commit()
        targets: list[sync._Target] = []
        try:
            for attempt in range(MAX_ROUNDS):
                if attempt:
                    time.sleep(attempt)      # let a burst of DDL on the source pass
                defs = {(t.db, t.name): t for t in sync._introspect(src, keys)}
                gone = [k for k in keys if k not in defs]
                if gone:
                    _forget(conn, source, gone)
                live = [k for k in keys if k in defs]
                if not live:
                    return []
                targets, version = _recreate(conn, src, source, [defs[k] for k in live], postgis)
                if not offline:
                    sync._wait_writer(conn, lock, source, version, writer_timeout, take_lock=not in_replica)
                point, per_table = sync._copy(src, cfg, source, targets, postgis)
                after = {(t.db, t.name): t for t in sync._introspect(src, live)}
                if any(k not in after or not _same_shape(after[k], defs[k]) for k in live):
                    log.info("source %s: tables changed on the source during the re-copy: copying again", source)
                    continue
                sync._finish(conn, cfg.target.catalog_schema, source, targets, point.pos, per_table)
                if _ddl_since(conn, src, source, live, point.pos):
                    log.info("source %s: DDL on %s during the re-copy: copying again", source, live)
                    continue
                with conn.transaction():
                    for t in targets:
                        conn.execute(
                            """UPDATE tables SET disabled_reason = %s || substr(disabled_reason, %s)
                                WHERE id = %s AND disabled_reason LIKE %s""",
                            (DONE, len(COPYING) + 1, t.id, COPYING + "%"))
                names = [f"{d}.{t}" for d, t in live]
                log.info("source %s: re-copied %s at %s", source, ", ".join(names), point.pos)
                return names
            raise PgbatonError(f"source {source}: {keys} kept changing during {MAX_ROUNDS} re-copies")
        except BaseException:
            # the tables wait for the next attempt (not left 'copying' with nobody copying them)
            if targets:
                conn.rollback()
                _mark_pending(conn, [t.id for t in targets], "the last attempt failed")
            raise
    finally:
        conn.close()
        lock.close()


def _forget(conn: psycopg.Connection, source: str, keys: list[tuple[str, str]]) -> None:
    """Tables gone from the source meanwhile: the DROP in the stream removes them; a
    placeholder row of a table never created is removed here."""
    with conn.transaction():
        for db, name in keys:
            conn.execute(
                """DELETE FROM tables WHERE source = %s AND src_db = %s AND src_table = %s
                      AND definition -> 'columns' = '[]'::jsonb""", (source, db, name))
            conn.execute(
                """UPDATE tables SET disabled_reason = 'table no longer on the source'
                    WHERE source = %s AND src_db = %s AND src_table = %s AND disabled_reason LIKE %s""",
                (source, db, name, PENDING + "%"))


def _mark_pending(conn: psycopg.Connection, ids: list[int], why: str) -> None:
    """Back to waiting for a copy, keeping the original reason."""
    with conn.transaction():
        for i in ids:
            row = conn.execute("SELECT disabled_reason FROM tables WHERE id = %s", (i,)).fetchone()
            request(conn, i, _bare_reason(str(row[0] or "") if row else ""))
    log.info("re-copy of table ids %s pending again: %s", ids, why)


def _bare_reason(reason: str) -> str:
    for prefix in (PENDING, COPYING, DONE):
        if reason.startswith(prefix):
            return reason[len(prefix):]
    return reason


def _recreate(conn: psycopg.Connection, src: MySQLSourceConfig, source: str, tables: list[MyTable],
              postgis: bool) -> tuple[list[sync._Target], int]:
    """Each table becomes 'copying', dropped and created again bare from its definition now."""
    targets = []
    with conn.transaction():
        for t in tables:
            t = replace(t, extra={k: v for k, v in t.extra.items() if k != "rows_estimate"})
            schema = src.databases[t.db]
            row = conn.execute(
                "SELECT id, dst_schema, dst_table, disabled_reason, definition FROM tables "
                "WHERE source = %s AND src_db = %s AND src_table = %s FOR UPDATE", (source, t.db, t.name)).fetchone()
            if row is None:
                raise PgbatonError(f"{t.db}.{t.name} is not a table of source {source}")
            reason = _bare_reason(str(row[3] or ""))
            t = t.named(previous=MyTable.from_json(row[4]))     # columns keep their PostgreSQL names
            from pgbaton.replica.ddl import ParkedViews  # (ddl imports this module)
            with ParkedViews(conn, row[1], row[2]):
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(row[1], row[2])))
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
                dst = row[2] if row[1] == schema else names.table_name(
                    t.name, cat.registered_names(conn, schema, except_id=row[0]))
                cat.refuse_foreign_relation(conn, schema, dst, f"{t.db}.{t.name}",
                                            f"sources.{source}.databases.{t.db}")
                for stmt in pgddl.create_table_sql(t, schema, typemap.type_options(src, t.db, t.name, postgis),
                                                   name=dst):
                    conn.execute(stmt)
            conn.execute(
                """UPDATE tables SET state = 'copying', dst_schema = %s, dst_table = %s, definition = %s,
                          pk_cols = %s, disabled_reason = %s, sync_file = NULL, sync_pos = NULL, sync_gtid = NULL
                    WHERE id = %s""",
                (schema, dst, Jsonb(t.to_json()), list(t.pg_pk_columns), (COPYING + reason)[:1000], row[0]))
            targets.append(sync._Target(row[0], t, schema, dst, t.pg_pk_columns, True))
        v = conn.execute("UPDATE sources SET tables_version = tables_version + 1 WHERE name = %s "
                         "RETURNING tables_version", (source,)).fetchone()
    assert v is not None
    return targets, int(v[0])


def _ddl_since(conn: psycopg.Connection, src: MySQLSourceConfig, source: str, keys: list[tuple[str, str]],
               pos: object) -> bool:
    """A DDL statement on one of ``keys`` replayed after the snapshot while the tables were
    'copying' (the executor passes over copying tables): their definition may be stale."""
    key = position_key(pos.file, pos.pos)  # type: ignore[attr-defined]
    rows = conn.execute(
        """SELECT ddl, ddl_db, end_file, end_pos FROM batches
            WHERE source = %s AND kind = 'ddl' AND status = 'replayed' AND end_file IS NOT NULL
            ORDER BY batch_id DESC LIMIT 200""", (source,)).fetchall()
    conn.commit()
    scope = Scope(frozenset(src.databases), None, src.tables.wants)
    names = {t.lower() for _, t in keys}
    for ddl, db, f, p in rows:
        if position_key(f, p) <= key:
            continue
        hit = guess_table(ddl or "", Scope(scope.databases, db, scope.wants))
        if hit in keys or (hit is None and any(n in (ddl or "").lower() for n in names)):
            return True
    return False
