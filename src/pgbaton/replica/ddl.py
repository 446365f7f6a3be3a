"""Apply a DDL batch from the binlog to the replica, in stream order.

The statement is parsed and translated against the tracked MySQL definitions
(``pgbaton.mysql.ddl``, pure); this module executes the resulting PostgreSQL
statements and updates the catalog rows in the replay transaction.  Each action
runs in a savepoint.  When a statement changed rows in a way the binlog does not
carry, or could not be followed at all, the table is re-copied from a fresh snapshot
by itself (``replica.resync``); the reason goes to ``errors`` and to the table's
status, and replication of the other tables goes on (``on_unknown_ddl: stop``
raises on a statement that is not understood instead).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pgbaton.cdc.replay import Batch
from pgbaton.config import Config, MySQLSourceConfig
from pgbaton.errors import DDLError
from pgbaton.mysql import typemap
from pgbaton.mysql.ddl import plan
from pgbaton.mysql.ddl.translate import (
    Action,
    Alter,
    Create,
    Drop,
    Fail,
    Key,
    Rename,
    Resync,
    Scope,
    Skip,
    Tracked,
    Truncate,
    translate_text,
)
from pgbaton.mysql.model import MyTable
from pgbaton.replica import catalog as cat
from pgbaton.replica import resync

log = logging.getLogger(__name__)


class _Row:
    def __init__(self, id: int, dst_schema: str, dst_table: str, table: MyTable, state: str) -> None:
        self.id, self.dst_schema, self.dst_table, self.table, self.state = id, dst_schema, dst_table, table, state


def _tracked(conn: psycopg.Connection, source: str) -> dict[Key, _Row]:
    rows = conn.execute(
        "SELECT id, src_db, src_table, dst_schema, dst_table, definition, state FROM tables WHERE source = %s",
        (source,)).fetchall()
    return {(r[1], r[2]): _Row(r[0], r[3], r[4], MyTable.from_json(r[5]), r[6]) for r in rows}


def apply_ddl_batch(conn: psycopg.Connection, cfg: Config, source: str, batch: Batch) -> None:
    src = cfg.source(source)
    statement = batch.ddl or ""
    rows = _tracked(conn, source)
    scope = Scope(frozenset(src.databases), batch.ddl_db, src.tables.wants)
    actions = translate_text(statement, {k: Tracked(r.table, r.state) for k, r in rows.items()}, scope)
    postgis = cat.has_postgis(conn)
    recopy = False
    for action in actions:
        if isinstance(action, Skip):
            log.info("source %s: DDL passed over (%s): %.120s", source, action.reason, _one_line(statement))
            continue
        if isinstance(action, Fail):
            recopy |= _failed(conn, src, source, batch, action.key, action.reason, rows)
            continue
        if isinstance(action, Resync):
            _resync(conn, src, source, batch, action.key, action.reason, rows)
            recopy = True
            continue
        try:
            with conn.transaction():
                _execute(conn, src, source, action, rows, postgis)
        except (psycopg.Error, DDLError, LookupError, ValueError) as exc:
            key = _action_key(action)
            recopy |= _failed(conn, src, source, batch, key, f"{exc.__class__.__name__}: {str(exc).strip()}", rows)
            continue
        log.info("source %s: DDL applied (%s): %.120s", source, type(action).__name__.lower(), _one_line(statement))
    if recopy or _any_pending(conn, source):
        resync.schedule(cfg, source)
    # the replayer and the writer read the catalog again after a DDL batch


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _action_key(action: Action) -> Key | None:
    if isinstance(action, Create):
        return (action.table.db, action.table.name)
    if isinstance(action, Alter):
        return (action.old.db, action.old.name)
    if isinstance(action, Rename):
        return action.old
    if isinstance(action, Drop | Truncate):
        return action.key
    return None


def _opts(src: MySQLSourceConfig, table: MyTable, postgis: bool) -> typemap.TypeOptions:
    return typemap.type_options(src, table.db, table.name, postgis)


def _execute(conn: psycopg.Connection, src: MySQLSourceConfig, source: str, action: Action,
             rows: dict[Key, _Row], postgis: bool) -> None:
    if isinstance(action, Create):
        t = action.table
        schema = src.databases[t.db]
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        _run(conn, plan.create_sql(t, schema, _opts(src, t, postgis)))
        conn.execute("DELETE FROM tables WHERE source = %s AND src_db = %s AND src_table = %s", (source, t.db, t.name))
        row = conn.execute(
            """INSERT INTO tables (source, src_db, src_table, dst_schema, dst_table, pk_cols, definition, state)
               VALUES (%s, %s, %s, %s, %s, %s, %s, 'replicating') RETURNING id""",
            (source, t.db, t.name, schema, t.name, list(t.pk_columns), Jsonb(t.to_json()))).fetchone()
        assert row is not None
        rows[(t.db, t.name)] = _Row(int(row[0]), schema, t.name, t, "replicating")
        for note in action.notes:
            log.info("%s.%s: %s not replicated", t.db, t.name, note)
    elif isinstance(action, Drop):
        r = rows.pop(action.key, None)
        if r is not None:
            _run(conn, plan.drop_sql(r.dst_schema, r.dst_table))
            conn.execute("DELETE FROM tables WHERE id = %s", (r.id,))
    elif isinstance(action, Truncate):
        r = rows[action.key]
        _run(conn, plan.truncate_sql(r.dst_schema, r.dst_table))
    elif isinstance(action, Rename):
        _rename(conn, src, source, action, rows)
    elif isinstance(action, Alter):
        r = rows[(action.old.db, action.old.name)]
        stmts = plan.alter_sql(action, r.dst_schema, r.dst_table, _opts(src, action.old, postgis),
                               _opts(src, action.new, postgis))
        _run(conn, stmts)
        conn.execute("UPDATE tables SET definition = %s, pk_cols = %s WHERE id = %s",
                     (Jsonb(action.new.to_json()), list(action.new.pk_columns), r.id))
        r.table = action.new
        for note in action.notes:
            log.info("%s.%s: %s", action.new.db, action.new.name, note)


def _rename(conn: psycopg.Connection, src: MySQLSourceConfig, source: str, action: Rename,
            rows: dict[Key, _Row]) -> None:
    r = rows.pop(action.old)
    schema = src.databases[action.new[0]]
    stale = rows.pop(action.new, None)
    if stale is not None:
        _run(conn, plan.drop_sql(stale.dst_schema, stale.dst_table))
        conn.execute("DELETE FROM tables WHERE id = %s", (stale.id,))
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    _run(conn, plan.rename_sql(action.table, r.dst_schema, r.dst_table, schema, action.new[1]))
    conn.execute(
        """UPDATE tables SET src_db = %s, src_table = %s, dst_schema = %s, dst_table = %s, definition = %s
            WHERE id = %s""",
        (action.new[0], action.new[1], schema, action.new[1], Jsonb(action.table.to_json()), r.id))
    r.dst_schema, r.dst_table, r.table = schema, action.new[1], action.table
    rows[action.new] = r


def _run(conn: psycopg.Connection, stmts: Sequence[sql.Composed]) -> None:
    for stmt in stmts:
        conn.execute(stmt)


def _any_pending(conn: psycopg.Connection, source: str) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM tables WHERE source = %s AND state = 'disabled' "
                       "AND disabled_reason LIKE %s)", (source, resync.PENDING + "%")).fetchone()
    return bool(row and row[0])


def _record(conn: psycopg.Connection, source: str, batch: Batch, key: Key | None, message: str,
            row: _Row | None) -> None:
    statement = batch.ddl or ""
    pos = conn.execute("SELECT end_file, end_pos, end_gtid FROM batches WHERE source = %s AND batch_id = %s",
                       (source, batch.batch_id)).fetchone()
    position = f"{pos[0]}:{pos[1]}" if pos and pos[0] else None
    conn.execute(
        """INSERT INTO errors (source, table_id, batch_id, kind, message, change, position)
           VALUES (%s, %s, %s, 'ddl', %s, jsonb_build_object('statement', %s::text, 'db', %s::text,
                   'position', %s::text, 'gtid', %s::text, 'table', %s::text), %s)""",
        (source, row.id if row else None, batch.batch_id, message, statement, batch.ddl_db,
         position, pos[2] if pos else None, f"{key[0]}.{key[1]}" if key else None, position))


def _resync(conn: psycopg.Connection, src: MySQLSourceConfig, source: str, batch: Batch, key: Key,
            reason: str, rows: dict[Key, _Row]) -> None:
    """The statement changed rows without row events: the table is copied again."""
    row = rows.get(key)
    log.warning("source %s: %s.%s is re-copied: %s", source, key[0], key[1], reason)
    if row is not None:
        resync.request(conn, row.id, reason)
        row.state = "disabled"
    elif key[0] in src.databases:
        resync.request_new(conn, source, key[0], key[1], src.databases[key[0]], reason)
    _record(conn, source, batch, key, f"re-copied from a fresh snapshot: {reason}", row)


def _failed(conn: psycopg.Connection, src: MySQLSourceConfig, source: str, batch: Batch, key: Key | None,
            reason: str, rows: dict[Key, _Row]) -> bool:
    """Record a DDL statement that could not be applied; its table is re-copied (with its
    definition read from the source again).  True when a re-copy was requested."""
    statement = batch.ddl or ""
    where = f"{key[0]}.{key[1]}" if key else "no replicated table identified"
    if src.on_unknown_ddl == "stop":
        raise DDLError(f"source {source}: DDL at batch {batch.batch_id} not applied ({where}): {reason}; "
                       f"statement: {_one_line(statement)[:300]}")
    row = rows.get(key) if key else None
    log.error("source %s: DDL not applied (%s): %s; statement: %.200s", source, where, reason, _one_line(statement))
    _record(conn, source, batch, key, f"DDL not applied: {reason}" + ("; table re-copied" if row else ""), row)
    if row is None:
        return False
    resync.request(conn, row.id, f"DDL not applied: {reason}")
    row.state = "disabled"
    return True
