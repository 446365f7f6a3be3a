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

from pgbaton.cdc.model import position_key
from pgbaton.cdc.replay import Batch
from pgbaton.config import Config, MySQLSourceConfig
from pgbaton.errors import DDLError
from pgbaton.mysql import names, typemap
from pgbaton.mysql.ddl import plan
from pgbaton.mysql.ddl.translate import (
    Action,
    Alter,
    Create,
    Drop,
    DropView,
    Fail,
    Key,
    MakeView,
    Rename,
    Resync,
    Scope,
    Skip,
    Tracked,
    Truncate,
    translate_text,
)
from pgbaton.mysql.ddl.views import translate_view
from pgbaton.mysql.model import MyTable
from pgbaton.replica import catalog as cat
from pgbaton.replica import resync

log = logging.getLogger(__name__)


class _Row:
    def __init__(self, id: int, dst_schema: str, dst_table: str, table: MyTable, state: str,
                 synced_at: tuple[str, int, int] | None = None) -> None:
        self.id, self.dst_schema, self.dst_table, self.table, self.state = id, dst_schema, dst_table, table, state
        self.synced_at = synced_at  # position_key of the snapshot its rows and definition were copied at


# the state a table is translated in when the statement is older than its copy
COPIED_AFTER = "copied after this statement (its copy holds it already)"


def _tracked(conn: psycopg.Connection, source: str) -> dict[Key, _Row]:
    rows = conn.execute(
        "SELECT id, src_db, src_table, dst_schema, dst_table, definition, state, sync_file, sync_pos "
        "FROM tables WHERE source = %s", (source,)).fetchall()
    return {(r[1], r[2]): _Row(r[0], r[3], r[4], MyTable.from_json(r[5]), r[6],
                               position_key(r[7], r[8]) if r[7] is not None and r[8] is not None else None)
            for r in rows}


def _state_for(row: _Row, at: tuple[str, int, int] | None) -> str:
    """A table copied again (sync-tables, a re-copy) at a snapshot after this statement (at
    ``at``) has its effect already, in its rows and in the definition read for the copy: the
    replayer can reach the statement only after the copy ended, as it does the row changes it skips."""
    if row.state == "replicating" and row.synced_at is not None and at is not None and at <= row.synced_at:
        return COPIED_AFTER
    return row.state


def apply_ddl_batch(conn: psycopg.Connection, cfg: Config, source: str, batch: Batch) -> None:
    src = cfg.source(source)
    statement = batch.ddl or ""
    rows = _tracked(conn, source)
    scope = Scope(frozenset(src.databases), batch.ddl_db, src.tables.wants, mariadb=src.type == "mariadb")
    at = position_key(batch.end_file, batch.end_pos or 0) if batch.end_file is not None else None
    actions = translate_text(statement, {k: Tracked(r.table, _state_for(r, at)) for k, r in rows.items()}, scope)
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
        if isinstance(action, MakeView | DropView):
            _view(conn, src, source, batch, action)
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
        t = action.table.named()
        schema = src.databases[t.db]
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        stale = rows.pop((t.db, t.name), None)
        if stale is not None:         # replaced (CREATE OR REPLACE): only pgbaton's own table goes
            with ParkedViews(conn, stale.dst_schema, stale.dst_table):
                _run(conn, plan.drop_sql(stale.dst_schema, stale.dst_table))
        conn.execute("DELETE FROM tables WHERE source = %s AND src_db = %s AND src_table = %s", (source, t.db, t.name))
        # a name another table (or a user's own object) holds in the schema is not taken over
        dst = names.table_name(t.name, cat.registered_names(conn, schema) | cat.foreign_relations(conn, schema))
        if dst != t.target:
            log.warning("%s.%s: created as %s.%s (the name %s is taken in the target)", t.db, t.name, schema,
                        dst, t.target)
        with ParkedViews(conn, schema, dst):
            _run(conn, plan.create_sql(t, schema, _opts(src, t, postgis), name=dst))
        row_id = cat.register_table(conn, source, t, schema, dst, "replicating")
        rows[(t.db, t.name)] = _Row(row_id, schema, dst, t, "replicating")
        for note in action.notes:
            log.info("%s.%s: %s not replicated", t.db, t.name, note)
    elif isinstance(action, Drop):
        r = rows.pop(action.key, None)
        if r is not None:
            with ParkedViews(conn, r.dst_schema, r.dst_table):
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
        if stmts:
            with ParkedViews(conn, r.dst_schema, r.dst_table):
                _run(conn, stmts)
        conn.execute("UPDATE tables SET definition = %s, pk_cols = %s WHERE id = %s",
                     (Jsonb(action.new.to_json()), list(action.new.pg_pk_columns), r.id))
        r.table = action.new
        for note in action.notes:
            log.info("%s.%s: %s", action.new.db, action.new.name, note)


def _view(conn: psycopg.Connection, src: MySQLSourceConfig, source: str, batch: Batch,
          action: MakeView | DropView) -> None:
    """CREATE / ALTER / DROP VIEW; a view PostgreSQL cannot have is recorded, nothing else stops."""
    schema = src.databases[action.key[0]]
    ident = sql.Identifier(schema, names.natural_table(action.key[1]))
    try:
        with conn.transaction():
            if isinstance(action, DropView):
                with ParkedViews(conn, schema, action.key[1]):
                    conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(ident))
                return
            view = translate_view(action.select, action.key[0], src.databases, cat.column_maps(conn, source))
            if view.select is None:
                raise DDLError(view.reason or "not translated")
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (ident.as_string(conn),)).fetchone()
            if action.if_not_exists and exists and exists[0]:
                return
            cols = sql.SQL(" ({})").format(sql.SQL(", ").join(map(sql.Identifier, action.columns))) \
                if action.columns else sql.SQL("")
            with ParkedViews(conn, schema, action.key[1]):
                conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(ident))
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
                conn.execute(sql.SQL("CREATE VIEW {}{} AS {}").format(ident, cols, sql.SQL(view.select)))
        log.info("source %s: view %s.%s %s", source, *action.key,
                 "dropped" if isinstance(action, DropView) else "created")
    except (psycopg.Error, DDLError) as exc:
        msg = f"view {action.key[0]}.{action.key[1]} not carried: {str(exc).strip().splitlines()[0][:300]}"
        log.warning("source %s: %s", source, msg)
        _record(conn, source, batch, action.key, msg, None)


class ParkedViews:
    """Views that read a table (or view) are dropped for the duration of a change to it and
    created again afterwards from their PostgreSQL definition; one that no longer fits is
    reported and left out (PostgreSQL refuses to drop or retype what a view reads)."""

    def __init__(self, conn: psycopg.Connection, schema: str, name: str) -> None:
        self.conn, self.schema, self.name = conn, schema, name
        self.saved: list[tuple[str, str, str]] = []
        self.lost: list[str] = []

    def __enter__(self) -> ParkedViews:
        rows = self.conn.execute(_DEPENDENT_VIEWS, (sql.Identifier(self.schema, self.name).as_string(self.conn),)
                                 ).fetchall()
        self.saved = [(r[0], r[1], r[2]) for r in rows]
        for s, v, _ in reversed(self.saved):
            self.conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(s, v)))
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            return
        for s, v, definition in self.saved:
            try:
                with self.conn.transaction():
                    self.conn.execute(sql.SQL("CREATE VIEW {} AS {}").format(sql.Identifier(s, v), sql.SQL(definition)))
            except psycopg.Error as exc:
                self.lost.append(f"{s}.{v}")
                log.warning("view %s.%s could not be created again after a change to %s.%s: %s", s, v,
                            self.schema, self.name, str(exc).strip().splitlines()[0])


# views reading a relation, directly or through other views, the closest first
_DEPENDENT_VIEWS = """
WITH RECURSIVE deps(oid, depth) AS (
    SELECT DISTINCT r.ev_class, 1
      FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
     WHERE d.refobjid = to_regclass(%s) AND r.ev_class <> d.refobjid
    UNION
    SELECT r.ev_class, deps.depth + 1
      FROM deps JOIN pg_depend d ON d.refobjid = deps.oid JOIN pg_rewrite r ON r.oid = d.objid
     WHERE r.ev_class <> d.refobjid AND deps.depth < 50
)
SELECT n.nspname, c.relname, pg_get_viewdef(c.oid)
  FROM deps JOIN pg_class c ON c.oid = deps.oid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'v'
 GROUP BY n.nspname, c.relname, c.oid
 ORDER BY max(deps.depth), n.nspname, c.relname"""


def _rename(conn: psycopg.Connection, src: MySQLSourceConfig, source: str, action: Rename,
            rows: dict[Key, _Row]) -> None:
    r = rows.pop(action.old)
    schema = src.databases[action.new[0]]
    stale = rows.pop(action.new, None)
    if stale is not None:
        _run(conn, plan.drop_sql(stale.dst_schema, stale.dst_table))
        conn.execute("DELETE FROM tables WHERE id = %s", (stale.id,))
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    taken = cat.registered_names(conn, schema, except_id=r.id) | cat.foreign_relations(conn, schema)
    if r.dst_schema == schema:
        taken.discard(r.dst_table)
    dst = names.table_name(action.new[1], taken)
    _run(conn, plan.rename_sql(action.table, r.dst_schema, r.dst_table, schema, dst))
    conn.execute(
        """UPDATE tables SET src_db = %s, src_table = %s, dst_schema = %s, dst_table = %s, definition = %s
            WHERE id = %s""",
        (action.new[0], action.new[1], schema, dst, Jsonb(action.table.to_json()), r.id))
    r.dst_schema, r.dst_table, r.table = schema, dst, action.table
    rows[action.new] = r


def _run(conn: psycopg.Connection, stmts: Sequence[sql.Composed]) -> None:
    for stmt in stmts:
        conn.execute(stmt)


def _any_pending(conn: psycopg.Connection, source: str) -> bool:
    return bool(resync.pending(conn, source, commit=False))


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
