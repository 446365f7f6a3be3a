"""Replay stored batches into the target tables with set-based SQL.

Consecutive row batches are applied together, table by table, with two
statements per table (delete the touched keys, insert the final images), in the
same transaction that marks the batches replayed.  A crash at any moment leaves
either all of a group applied and marked, or none of it.  DDL batches are
applied alone, in their place in the stream.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import orjson
import psycopg
from psycopg import sql

from pgbaton.cdc import cascade
from pgbaton.cdc.model import position_key
from pgbaton.cdc.store import log_table_name
from pgbaton.config import OnError
from pgbaton.errors import ReplayError, is_transient

log = logging.getLogger(__name__)


@cache
def _template(name: str) -> str:
    return resources.files("pgbaton.cdc").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


@dataclass(frozen=True)
class ReplayTable:
    id: int
    schema: str
    name: str
    pk: tuple[str, ...]
    label: str          # db.table on the source, for messages
    # re-synchronised table: its changes in batches ending at or before this position are
    # already in its snapshot (position_key of the snapshot position)
    sync_key: tuple[str, int, int] | None = None


@dataclass(frozen=True)
class Batch:
    batch_id: int
    kind: str
    n_events: int
    table_ids: tuple[int, ...]
    ddl: str | None
    ddl_db: str | None
    end_file: str | None = None
    end_pos: int | None = None

    def ends_after(self, key: tuple[str, int, int]) -> bool:
        return self.end_file is not None and position_key(self.end_file, self.end_pos or 0) > key


DdlHandler = Callable[[psycopg.Connection, Batch], None]


def _statements(t: ReplayTable, log_ident: sql.Identifier) -> tuple[sql.Composed, sql.Composed]:
    target = sql.Identifier(t.schema, t.name)
    if t.pk:
        new_key = sql.SQL("jsonb_build_object({})").format(
            sql.SQL(", ").join(sql.SQL("{}, l.new -> {}").format(sql.Literal(c), sql.Literal(c)) for c in t.pk)
        )
        key_match = sql.SQL(" AND ").join(
            sql.SQL("t.{c} = r.{c}").format(c=sql.Identifier(c)) for c in t.pk
        )
        parts: dict[str, Any] = {"target": target, "log": log_ident, "new_key": new_key, "key_match": key_match}
        return (sql.SQL(_template("replay_keyed_delete")).format(**parts),
                sql.SQL(_template("replay_keyed_insert")).format(**parts))
    parts = {"target": target, "log": log_ident}
    return (sql.SQL(_template("replay_rowmatch_delete")).format(**parts),
            sql.SQL(_template("replay_rowmatch_insert")).format(**parts))


class _Superseded(Exception):
    """The group's batches were replayed by someone else meanwhile: roll back, read again."""


class Replayer:
    def __init__(self, conn: psycopg.Connection, schema: str, source: str, on_error: OnError,
                 ddl_handler: DdlHandler, *, max_group_events: int = 200_000) -> None:
        self.conn = conn
        self.schema = schema
        self.source = source
        self.on_error = on_error
        self.ddl_handler = ddl_handler
        self.max_group_events = max_group_events
        self._log = sql.Identifier(schema, log_table_name(source))
        self._stmts: dict[int, tuple[sql.Composed, sql.Composed]] = {}
        self.tables: dict[int, ReplayTable] = {}
        self.cascade_keys: list[cascade.CascadeKey] = []
        self.tables_version = 0
        self.reload_tables()

    def reload_tables(self, *, commit: bool = True) -> None:
        version = self.conn.execute("SELECT tables_version FROM sources WHERE name = %s",
                                    (self.source,)).fetchone()
        rows = self.conn.execute(
            """SELECT id, dst_schema, dst_table, pk_cols, src_db || '.' || src_table, sync_file, sync_pos
                 FROM tables WHERE source = %s AND state = 'replicating'""",
            (self.source,),
        ).fetchall()
        self.cascade_keys = cascade.load(self.conn, self.source)
        if commit:
            self.conn.commit()
        self.tables_version = int(version[0]) if version else 0
        self.tables = {r[0]: ReplayTable(r[0], r[1], r[2], tuple(r[3]), r[4],
                                         position_key(r[5], r[6]) if r[5] is not None else None) for r in rows}
        self._stmts = {}

    def _sync_with_catalog(self) -> None:
        """Inside a replay transaction: wait for a sync_tables catch-up step, reload tables if changed."""
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (replay_lock_key(self.source),))
        row = self.conn.execute("SELECT tables_version FROM sources WHERE name = %s", (self.source,)).fetchone()
        if row is not None and int(row[0]) != self.tables_version:
            self.reload_tables(commit=False)

    def _pending(self, limit: int = 500) -> list[Batch]:
        rows = self.conn.execute(
            """SELECT batch_id, kind, n_events, table_ids, ddl, ddl_db, end_file, end_pos FROM batches
                WHERE source = %s AND status = 'closed' ORDER BY batch_id LIMIT %s""",
            (self.source, limit),
        ).fetchall()
        self.conn.commit()
        return [Batch(r[0], r[1], r[2], tuple(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

    def replay_pending(self) -> int:
        """Replay everything that is closed now. Returns the number of row events applied."""
        done = 0
        while True:
            batches = self._pending()
            if not batches:
                return done
            for group in _groups(batches, self.max_group_events):
                if group[0].kind == "ddl":
                    self._replay_ddl(group[0])
                else:
                    done += self._replay_rows(group)

    def _replay_ddl(self, batch: Batch) -> None:
        try:
            with self.conn.transaction():
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (replay_lock_key(self.source),))
                self.ddl_handler(self.conn, batch)
                if self._mark(batch.batch_id, batch.batch_id, 0) != 1:
                    raise _Superseded
        except _Superseded:
            log.warning("source %s: DDL batch %d was replayed by another replayer", self.source, batch.batch_id)
        self.reload_tables()

    def _replay_rows(self, group: list[Batch]) -> int:
        first, last = group[0].batch_id, group[-1].batch_id
        n_events = sum(b.n_events for b in group)
        table_ids = sorted({t for b in group for t in b.table_ids})
        params = {"first": first, "last": last, "seq_lo": 0, "seq_hi": _SEQ_MAX}
        try:
            with self.conn.transaction():
                self._apply_group(group, table_ids, params, n_events)
        except _Superseded:
            log.warning("source %s: batches %d..%d were replayed by another replayer; reading again",
                        self.source, first, last)
            return 0
        return n_events

    def _apply_group(self, group: list[Batch], table_ids: list[int], params: dict[str, Any], n_events: int) -> None:
        first, last = params["first"], params["last"]
        self._sync_with_catalog()
        self.conn.execute("SET LOCAL enable_hashjoin = off")
        self.conn.execute("SET LOCAL enable_mergejoin = off")
        if self._cascades_in(first, last, set(table_ids)):
            self._apply_ordered(group)
            self._count_tables(first, last)
            if self._mark(first, last, n_events) != len(group):
                raise _Superseded
            return
        for tid in table_ids:
            table = self.tables.get(tid)
            if table is None:
                continue  # disabled, dropped or being copied: its changes are skipped
            tparams = {**params, "tbl": tid}
            if table.sync_key is not None:
                # a re-synchronised table: only batches after its snapshot position
                after = [b.batch_id for b in group if b.ends_after(table.sync_key)]
                if not after:
                    continue
                tparams["first"] = after[0]
                tparams["seq_lo"] = 0
            self._apply_table(table, tparams)
        self._count_tables(first, last)
        # each batch exactly once: if another replayer marked any of them meanwhile,
        # everything above is rolled back
        if self._mark(first, last, n_events) != len(group):
            raise _Superseded

    # -- ordered replay, for groups touching a parent of a cascading foreign key ---------------
    def _cascade_parents(self) -> tuple[set[int], dict[int, set[str]]]:
        """Tables whose deletes cascade, and tables whose key changes cascade (with the columns)."""
        on_delete = {k.parent_id for k in self.cascade_keys if k.on_delete in cascade.CASCADING}
        on_update: dict[int, set[str]] = {}
        for k in self.cascade_keys:
            if k.on_update in cascade.CASCADING:
                on_update.setdefault(k.parent_id, set()).update(k.parent_cols)
        return on_delete, on_update

    def _cascades_in(self, first: int, last: int, table_ids: set[int]) -> bool:
        """Does the group delete or update rows of a cascading parent (with foreign key checks on)?
        Only then is it replayed in order; every other group keeps the set-based path."""
        on_delete, on_update = self._cascade_parents()
        dels, upds = sorted(on_delete & table_ids), sorted(set(on_update) & table_ids)
        if not dels and not upds:
            return False
        row = self.conn.execute(
            sql.SQL("""SELECT EXISTS (SELECT 1 FROM {} WHERE batch_id BETWEEN %s AND %s AND nofk IS NOT TRUE
                          AND ((tbl = ANY(%s) AND op = 'D') OR (tbl = ANY(%s) AND op = 'U')))""").format(self._log),
            (first, last, dels, upds)).fetchone()
        return bool(row and row[0])

    def _apply_ordered(self, group: list[Batch]) -> None:
        first, last = group[0].batch_id, group[-1].batch_id
        by_id = {b.batch_id: b for b in group}
        on_delete, on_update = self._cascade_parents()
        rows = self.conn.execute(
            sql.SQL("""SELECT batch_id, seq, tbl, op, coalesce(nofk, false),
                              CASE WHEN op = 'U' AND tbl = ANY(%s) THEN old END,
                              CASE WHEN op = 'U' AND tbl = ANY(%s) THEN new END
                         FROM {} WHERE batch_id BETWEEN %s AND %s ORDER BY batch_id, seq""").format(self._log),
            (sorted(on_update), sorted(on_update), first, last)).fetchall()
        # steps: ("plain", start, end, tables) or ("point", start, end, table, op)
        steps: list[tuple[Any, ...]] = []
        for bid, seq, tbl, op, nofk, old, new in rows:
            if tbl not in self.tables:
                continue
            point = not nofk and (op == "D" and tbl in on_delete
                                  or op == "U" and tbl in on_update and _moves(old, new, on_update[tbl]))
            prev = steps[-1] if steps else None
            if point:
                if prev is not None and prev[0] == "point" and prev[3] == tbl and prev[4] == "D" == op:
                    steps[-1] = ("point", prev[1], (bid, seq), tbl, op)    # deletes of one table commute
                else:
                    steps.append(("point", (bid, seq), (bid, seq), tbl, op))
            elif prev is not None and prev[0] == "plain":
                steps[-1] = ("plain", prev[1], (bid, seq), prev[3] | {tbl})
            else:
                steps.append(("plain", (bid, seq), (bid, seq), {tbl}))
        for step in steps:
            start, end = step[1], step[2]
            if step[0] == "plain":
                for tid in sorted(step[3]):
                    if tid in self.tables:     # (a table can be disabled by a failure on the way)
                        self._apply_slice(self.tables[tid], start, end, by_id)
                continue
            found, op = self.tables.get(step[3]), step[4]
            batch = by_id[start[0]]
            if found is None or not self._applies(found, batch):
                continue
            table = found
            olds = self._before_images(table, start, end)
            self._apply_slice(table, start, end, by_id)
            cascader = cascade.Cascader(self.conn, self.cascade_keys, lambda tid, b=batch: self._cascade_target(tid, b))
            if op == "D":
                cascader.deleted(table.id, olds)
            else:
                new = self.conn.execute(
                    sql.SQL("""SELECT to_jsonb(r.*) FROM {log} AS l, jsonb_populate_record(NULL::{t}, l.new) AS r
                                WHERE l.batch_id = %s AND l.seq = %s""").format(
                        log=self._log, t=sql.Identifier(table.schema, table.name)), start).fetchone()
                if olds and new is not None:
                    cascader.updated(table.id, [(olds[0], new[0])])

    @staticmethod
    def _applies(table: ReplayTable, batch: Batch) -> bool:
        return table.sync_key is None or batch.ends_after(table.sync_key)

    def _cascade_target(self, tid: int, batch: Batch) -> tuple[str, str] | None:
        t = self.tables.get(tid)
        if t is None or not self._applies(t, batch):
            return None
        return (t.schema, t.name)

    def _apply_slice(self, table: ReplayTable, start: tuple[int, int], end: tuple[int, int],
                     by_id: dict[int, Batch]) -> None:
        ids = [bid for bid in range(start[0], end[0] + 1) if bid in by_id and self._applies(table, by_id[bid])]
        if not ids:
            return
        lo = start if ids[0] == start[0] else (ids[0], 0)
        self._apply_table(table, {"first": lo[0], "last": end[0], "tbl": table.id, "seq_lo": lo[1],
                                  "seq_hi": end[1]})

    def _before_images(self, table: ReplayTable, start: tuple[int, int], end: tuple[int, int]) -> list[Any]:
        """The target's rows that the log rows in [start, end] delete or change, as jsonb."""
        t = sql.Identifier(table.schema, table.name)
        if table.pk:
            match = sql.SQL(" AND ").join(sql.SQL("t.{c} = r.{c}").format(c=sql.Identifier(c)) for c in table.pk)
            query = sql.SQL("""SELECT to_jsonb(t.*)
                                 FROM {log} AS l, jsonb_populate_record(NULL::{t}, l.old) AS r, {t} AS t
                                WHERE (l.batch_id, l.seq) BETWEEN (%s, %s) AND (%s, %s) AND l.tbl = %s AND {m}
                                ORDER BY l.batch_id, l.seq""").format(log=self._log, t=t, m=match)
        else:
            query = sql.SQL("""SELECT to_jsonb(r.*) FROM {log} AS l, jsonb_populate_record(NULL::{t}, l.old) AS r
                                WHERE (l.batch_id, l.seq) BETWEEN (%s, %s) AND (%s, %s) AND l.tbl = %s
                                ORDER BY l.batch_id, l.seq""").format(log=self._log, t=t)
        return [r[0] for r in self.conn.execute(query, (*start, *end, table.id)).fetchall()]

    def _apply_table(self, table: ReplayTable, params: dict[str, Any]) -> None:
        stmts = self._stmts.get(table.id)
        if stmts is None:
            stmts = self._stmts[table.id] = _statements(table, self._log)
        try:
            with self.conn.transaction():
                self.conn.execute(stmts[0], params)
                self.conn.execute(stmts[1], params)
        except psycopg.Error as exc:
            if is_transient(exc):
                raise    # deadlock, cancel, lost connection, disk full: the whole group is retried
            self._table_failed(table, params, exc)

    def _table_failed(self, table: ReplayTable, params: dict[str, Any], exc: psycopg.Error) -> None:
        message = _pg_message(exc)
        change = self._find_failing_change(table, params)
        if self.on_error == OnError.stop:
            raise ReplayError(
                f"cannot apply changes to {table.schema}.{table.name} (source {table.label}) in batches "
                f"{params['first']}..{params['last']}: {message}"
                + (f"; failing change: {orjson.dumps(change).decode()}" if change else "")
                + ". The replica stopped (on_replay_error: stop); fix the cause and start it again."
            ) from None
        log.error("table %s disabled: %s", table.label, message)
        self.conn.execute(
            """UPDATE tables SET state = 'disabled', disabled_reason = %s, disabled_at = now() WHERE id = %s""",
            (message, table.id),
        )
        self.conn.execute(
            """INSERT INTO errors (source, table_id, batch_id, kind, message, change)
               VALUES (%s, %s, %s, 'replay', %s, %s)""",
            (self.source, table.id, params["first"], message, orjson.dumps(change).decode() if change else None),
        )
        self.tables.pop(table.id, None)

    def _find_failing_change(self, table: ReplayTable, params: dict[str, Any], limit: int = 5000) -> Any:
        """Apply the table's changes one by one (all rolled back) to name the first that fails."""
        rows = self.conn.execute(
            sql.SQL("""SELECT batch_id, seq, op, old, new FROM {} WHERE batch_id BETWEEN %(first)s AND %(last)s
                        AND tbl = %(tbl)s ORDER BY batch_id, seq LIMIT {}""").format(self._log, sql.Literal(limit)),
            params,
        ).fetchall()
        target = sql.Identifier(table.schema, table.name)
        cols = table.pk
        match = (sql.SQL(" AND ").join(sql.SQL("t.{c} = r.{c}").format(c=sql.Identifier(c)) for c in cols)
                 if cols else sql.SQL("ROW(t.*) IS NOT DISTINCT FROM ROW(r.*)"))
        delete_one = sql.SQL("DELETE FROM {t} AS t WHERE t.ctid = (SELECT t.ctid FROM {t} AS t, "
                             "jsonb_populate_record(NULL::{t}, %s::jsonb) AS r WHERE {m} LIMIT 1)")
        delete = delete_one.format(t=target, m=match)
        insert = sql.SQL("INSERT INTO {t} SELECT r.* FROM jsonb_populate_record(NULL::{t}, %s::jsonb) AS r").format(
            t=target)
        with self.conn.transaction(force_rollback=True):
            for bid, seq, op, old, new in rows:
                try:
                    with self.conn.transaction():
                        if old is not None:
                            self.conn.execute(delete, (orjson.dumps(old).decode(),))
                        if new is not None:
                            if cols:
                                key = {c: new.get(c) for c in cols}
                                self.conn.execute(delete, (orjson.dumps(key).decode(),))
                            self.conn.execute(insert, (orjson.dumps(new).decode(),))
                except psycopg.Error as exc:
                    return {"batch_id": bid, "seq": seq, "op": op, "old": old, "new": new,
                            "error": _pg_message(exc)}
        return None

    def cleanup(self, retention_seconds: float, step_batches: int = 200) -> int:
        """Delete log rows of batches replayed longer ago than the retention, a few batches per
        transaction so that reading and replay are never held up. Returns batches removed."""
        removed = 0
        while True:
            with self.conn.transaction():
                copying = self.conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM tables WHERE source = %s AND state = 'copying')",
                    (self.source,)).fetchone()
                if copying and copying[0]:
                    return removed   # sync_tables still needs the changes made during its copy
                row = self.conn.execute(
                    """SELECT min(batch_id), max(batch_id) FROM (
                           SELECT batch_id FROM batches
                            WHERE source = %s AND status = 'replayed'
                              AND replayed_at < clock_timestamp() - make_interval(secs => %s)
                            ORDER BY batch_id LIMIT %s) AS b""",
                    (self.source, retention_seconds, step_batches)).fetchone()
                if row is None or row[0] is None:
                    return removed
                self.conn.execute(sql.SQL("DELETE FROM {} WHERE batch_id BETWEEN %s AND %s").format(self._log),
                                  (row[0], row[1]))
                done = self.conn.execute(
                    """DELETE FROM batches
                        WHERE source = %s AND status = 'replayed' AND batch_id BETWEEN %s AND %s""",
                    (self.source, row[0], row[1]))
                removed += done.rowcount
            if removed and done.rowcount < step_batches:
                return removed

    def vacuum(self) -> None:
        """VACUUM the log table so the space of deleted batches is reused (blocks neither reads nor writes)."""
        self.conn.commit()
        self.conn.autocommit = True
        try:
            self.conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(self._log))
        finally:
            self.conn.autocommit = False

    def _count_tables(self, first: int, last: int) -> None:
        """Per-table counters of changes replayed (tables skipped in this group count nothing)."""
        ids = sorted(self.tables)
        if not ids:
            return
        self.conn.execute(
            sql.SQL("""UPDATE tables AS t SET rows_replayed = t.rows_replayed + c.n
                         FROM (SELECT tbl, count(*) AS n FROM {} WHERE batch_id BETWEEN %s AND %s
                                  AND tbl = ANY(%s) GROUP BY tbl) AS c
                        WHERE t.id = c.tbl""").format(self._log), (first, last, ids))

    def _mark(self, first: int, last: int, n_events: int) -> int:
        """Mark the batches replayed; returns how many were still closed."""
        done = self.conn.execute(
            """UPDATE batches SET status = 'replayed', replayed_at = clock_timestamp()
                WHERE source = %s AND batch_id BETWEEN %s AND %s AND status = 'closed'""",
            (self.source, first, last),
        )
        self.conn.execute(
            """UPDATE sources SET rows_replayed = rows_replayed + %s, replayed_at = clock_timestamp()
                WHERE name = %s""",
            (n_events, self.source),
        )
        return done.rowcount


_SEQ_MAX = 2**31 - 1


def range_params(first: int, last: int, tbl: int) -> dict[str, Any]:
    """Parameters of the replay statements for every change of ``tbl`` in batches first..last."""
    return {"first": first, "last": last, "tbl": tbl, "seq_lo": 0, "seq_hi": _SEQ_MAX}


def _moves(old: Any, new: Any, cols: set[str]) -> bool:
    """Does an update change a referenced column?  (The before image of a keyed table holds
    only the key: a referenced column outside it counts as changed.)"""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return True
    return any(c not in old or old[c] != new.get(c) for c in cols)


def replay_lock_key(source: str) -> int:
    """Transaction lock of each replay transaction; sync_tables takes it for its catch-up step."""
    return zlib.crc32(f"pgbaton-replay:{source}".encode())


def replayer_lock_key(source: str) -> int:
    """Session lock a replayer holds for its whole life: one replayer per source."""
    return zlib.crc32(f"pgbaton-replayer:{source}".encode())


def _groups(batches: list[Batch], max_events: int) -> list[list[Batch]]:
    """Split pending batches into groups: runs of row batches, and each DDL batch alone."""
    groups: list[list[Batch]] = []
    current: list[Batch] = []
    size = 0
    for b in batches:
        if b.kind == "ddl":
            if current:
                groups.append(current)
                current, size = [], 0
            groups.append([b])
            continue
        if current and size + b.n_events > max_events:
            groups.append(current)
            current, size = [], 0
        current.append(b)
        size += b.n_events
    if current:
        groups.append(current)
    return groups


def _pg_message(exc: psycopg.Error) -> str:
    diag = exc.diag
    parts = [diag.message_primary or str(exc).strip()]
    if diag.message_detail:
        parts.append(diag.message_detail)
    return " ".join(p for p in parts if p)
