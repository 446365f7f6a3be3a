"""The durable change log: per-source log tables in the catalog schema.

Changes are written in batches with COPY.  A batch is written in one transaction
together with the reader position after its last complete source transaction,
so a crash never loses or duplicates a change: after a restart the reader
resumes exactly after the last batch that was committed.  A source transaction
larger than one batch is written in chunks into an 'open' batch that becomes
'closed' only with its commit; open batches are discarded at restart.

Savepoints: ``ROLLBACK TO`` cuts the lines written since the savepoint (in memory,
or in the log table when a large transaction was spilled already).  XA: a prepared
transaction is stored as a 'prepared' batch under a negative id until its XA COMMIT
(which gives it the current batch id) or XA ROLLBACK (which deletes it).  The
position saved with any batch is always a transaction boundary.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg import sql

from pgbaton.cdc.model import Ddl, Op, Position, Rows, position_key

log = logging.getLogger(__name__)


def log_table_name(source: str) -> str:
    return f"log_{source}"


def ensure_log_table(conn: psycopg.Connection, schema: str, source: str) -> None:
    """Create the source's log table if it is missing (idempotent)."""
    conn.execute(
        sql.SQL(
            """CREATE TABLE IF NOT EXISTS {log} (
                   batch_id bigint NOT NULL,
                   seq      integer NOT NULL,
                   tbl      integer NOT NULL,
                   op       "char" NOT NULL,
                   old      jsonb,
                   new      jsonb,
                   nofk     boolean
               ) WITH (autovacuum_vacuum_scale_factor = 0.01)"""
        ).format(log=sql.Identifier(schema, log_table_name(source)))
    )
    # nofk: true when the source session had foreign_key_checks=0 (nothing cascaded)
    conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS nofk boolean").format(
        sql.Identifier(schema, log_table_name(source))))
    conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {idx} ON {log} (batch_id, tbl)").format(
            idx=sql.Identifier(f"{log_table_name(source)}_batch"),
            log=sql.Identifier(schema, log_table_name(source)),
        )
    )


@dataclass
class TableCodec:
    """How one source table's rows are encoded for the log."""

    table_id: int
    pk: tuple[str, ...]
    convert: Callable[[Mapping[str, Any], Mapping[str, str] | None], dict[str, Any]]
    # converts only the key columns of a before image (the whole row for tables without a key)
    convert_key: Callable[[Mapping[str, Any], Mapping[str, str] | None], dict[str, Any]]
    # a table being re-synchronised: each source transaction that touches it ends a batch,
    # while it is being copied and up to its snapshot position, so replay can skip exactly
    # the changes the snapshot already holds (batches ending at or before that position)
    copying: bool = False
    sync_until: Position | None = None

    def isolates(self, commit: Position) -> bool:
        if self.copying:
            return True
        s = self.sync_until
        return s is not None and position_key(commit.file, commit.pos) <= position_key(s.file, s.pos)


@dataclass
class PendingBatch:
    batch_id: int
    lines: list[bytes] = field(default_factory=list)
    table_ids: set[int] = field(default_factory=set)
    n_events: int = 0
    seq: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    started: float = field(default_factory=time.monotonic)
    opened_in_db: bool = False     # an 'open' row exists in batches (large transaction)
    spills: int = 0                # how many times lines were moved to the log table already

    @property
    def empty(self) -> bool:
        return self.n_events == 0


@dataclass(frozen=True)
class _Mark:
    """Where the batch stood at a savepoint (or a transaction's start)."""

    batch_id: int
    spills: int
    n_lines: int
    seq: int
    n_events: int
    txn_lines: int


class LogWriter:
    """Encodes row changes and writes them as batches into the log table."""

    def __init__(self, conn: psycopg.Connection, schema: str, source: str, codecs: dict[tuple[str, str], TableCodec],
                 next_batch_id: int) -> None:
        self.conn = conn
        self.schema = schema
        self.source = source
        self.codecs = codecs
        self._log = sql.Identifier(schema, log_table_name(source))
        self._next_id = next_batch_id
        self.batch = PendingBatch(self._take_id())
        self.txn_lines = 0          # lines of the current source transaction not yet closed
        self.txn_isolated: dict[int, TableCodec] = {}   # re-synchronising tables the open transaction touched
        self.in_txn = False         # between a transaction's Begin and its end
        self._txn_mark: _Mark | None = None
        self._savepoints: dict[str, _Mark] = {}

    def _take_id(self) -> int:
        bid = self._next_id
        self._next_id += 1
        return bid

    # -- building -------------------------------------------------------------------------
    def add_rows(self, rows: Rows) -> None:
        codec = self.codecs.get((rows.db, rows.table))
        if codec is None:
            return
        b = self.batch
        head = b"%d\t" % b.batch_id
        tail = b"\t%d\t%s\t" % (codec.table_id, rows.op.value.encode())
        flag = b"\t\\N\n" if rows.fk_checks else b"\tt\n"
        dumps = orjson.dumps
        conv, conv_key = codec.convert, codec.convert_key
        append = b.lines.append
        seq = b.seq
        for before, after in rows.images:
            seq += 1
            old = new = b"\\N"
            if before is not None:
                old = dumps(conv_key(*before)).replace(b"\\", b"\\\\")
            if after is not None:
                new = dumps(conv(*after)).replace(b"\\", b"\\\\")
            append(b"%s%d%s%s\t%s%s" % (head, seq, tail, old, new, flag))
        b.seq = seq
        n = len(rows.images)
        b.n_events += n
        self.txn_lines += n
        b.table_ids.add(codec.table_id)
        if codec.copying or codec.sync_until is not None:
            self.txn_isolated[codec.table_id] = codec
        if b.first_ts is None:
            b.first_ts = rows.ts
        b.last_ts = rows.ts

    # -- transaction framing --------------------------------------------------------------
    def _mark(self) -> _Mark:
        b = self.batch
        return _Mark(b.batch_id, b.spills, len(b.lines), b.seq, b.n_events, self.txn_lines)

    def begin(self) -> None:
        self.in_txn = True
        self._txn_mark = self._mark()
        self._savepoints = {}

    def savepoint(self, name: str) -> None:
        if self.in_txn:
            self._savepoints[name] = self._mark()

    def rollback_to(self, name: str) -> bool:
        """Forget the lines since ``SAVEPOINT name``. False when the savepoint is unknown."""
        mark = self._savepoints.get(name)
        if mark is None:
            return False
        self._cut(mark)
        self._savepoints = {k: m for k, m in self._savepoints.items() if m.seq <= mark.seq}
        return True

    def rollback(self) -> None:
        """The open transaction was rolled back: forget all of its lines."""
        if self._txn_mark is not None:
            self._cut(self._txn_mark)
        self.end_txn()

    def end_txn(self) -> None:
        self.in_txn = False
        self._txn_mark = None
        self._savepoints = {}
        self.txn_isolated = {}
        self.txn_lines = 0

    def _cut(self, mark: _Mark) -> None:
        b = self.batch
        if mark.batch_id != b.batch_id:
            raise RuntimeError(f"savepoint of batch {mark.batch_id} used in batch {b.batch_id}")
        if b.spills == mark.spills:
            del b.lines[mark.n_lines:]
        else:
            # part of what is undone is in the log table already (a large transaction)
            with self.conn.transaction():
                self.conn.execute(sql.SQL("DELETE FROM {} WHERE batch_id = %s AND seq > %s").format(self._log),
                                  (b.batch_id, mark.seq))
            b.lines = []
        b.n_events = mark.n_events
        self.txn_lines = mark.txn_lines

    def must_cut(self, commit: Position) -> bool:
        """True when the transaction ending at ``commit`` must end its batch (see TableCodec)."""
        return any(c.isolates(commit) for c in self.txn_isolated.values())

    def commit_seen(self, ts: float) -> None:
        self.end_txn()
        if self.batch.first_ts is None:
            self.batch.first_ts = ts
        self.batch.last_ts = ts

    # -- writing --------------------------------------------------------------------------
    def _copy(self, lines: list[bytes]) -> None:
        if not lines:
            return
        stmt = sql.SQL("COPY {} (batch_id, seq, tbl, op, old, new, nofk) FROM STDIN").format(self._log)
        with self.conn.cursor().copy(stmt) as cp:
            buf: list[bytes] = []
            size = 0
            for line in lines:
                buf.append(line)
                size += len(line)
                if size > 1 << 20:
                    cp.write(b"".join(buf))
                    buf, size = [], 0
            if buf:
                cp.write(b"".join(buf))

    def spill(self) -> None:
        """Write the lines gathered so far into an 'open' batch (a large transaction)."""
        b = self.batch
        with self.conn.transaction():
            if not b.opened_in_db:
                self.conn.execute(
                    "INSERT INTO batches (source, batch_id, kind, status) VALUES (%s, %s, 'rows', 'open')",
                    (self.source, b.batch_id),
                )
                b.opened_in_db = True
            self._copy(b.lines)
        b.lines = []
        b.spills += 1

    def flush(self, pos: Position, last_read_at: float) -> bool:
        """Close the batch of complete transactions ending at ``pos``. Returns True if one was written."""
        b = self.batch
        with self.conn.transaction():
            if not b.empty:
                self._copy(b.lines)
                params = (b.n_events, sorted(b.table_ids), _ts(b.first_ts), _ts(b.last_ts), pos.file, pos.pos,
                          pos.gtid, self.source, b.batch_id)
                if b.opened_in_db:
                    self.conn.execute(
                        """UPDATE batches SET status = 'closed', n_events = %s, table_ids = %s,
                               first_event_at = %s, last_event_at = %s, end_file = %s, end_pos = %s,
                               end_gtid = %s, written_at = clock_timestamp()
                           WHERE source = %s AND batch_id = %s""", params)
                else:
                    self.conn.execute(
                        """INSERT INTO batches (n_events, table_ids, first_event_at, last_event_at, end_file,
                               end_pos, end_gtid, source, batch_id, kind, status)
                           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'rows', 'closed')""", params)
            self._save_position(pos, b.last_ts, last_read_at)
        written = not b.empty
        if written:
            self.batch = PendingBatch(self._take_id())
        return written

    def write_ddl(self, ddl: Ddl, last_read_at: float) -> int | None:
        """A DDL statement is a batch of its own, so replay applies it between the rows around it.

        Returns the batch id, or None when a statement inside a transaction (CREATE TABLE
        ... SELECT) was stored already: its position is not a boundary, so after a restart
        it is read again, and its place in the stream identifies it."""
        if ddl.in_txn:
            if self.batch.n_events:
                raise RuntimeError("a statement inside a transaction must start its batch")
            row = self.conn.execute(
                """SELECT batch_id FROM batches WHERE source = %s AND kind = 'ddl' AND end_file = %s
                      AND end_pos = %s""", (self.source, ddl.pos.file, ddl.pos.pos)).fetchone()
            self.conn.commit()
            if row is not None:
                return None
        bid = self.batch.batch_id
        with self.conn.transaction():
            self.conn.execute(
                """INSERT INTO batches (source, batch_id, kind, status, end_file, end_pos, end_gtid,
                       n_events, first_event_at, last_event_at, ddl, ddl_db)
                   VALUES (%s, %s, 'ddl', 'closed', %s, %s, %s, 1, %s, %s, %s, %s)""",
                (self.source, bid, ddl.pos.file, ddl.pos.pos, ddl.pos.gtid, _ts(ddl.ts), _ts(ddl.ts),
                 ddl.statement, ddl.db),
            )
            if ddl.in_txn:
                self.conn.execute("UPDATE sources SET next_batch_id = %s WHERE name = %s",
                                  (self._next_id, self.source))
            else:
                self._save_position(ddl.pos, ddl.ts, last_read_at)
        self.batch = PendingBatch(self._take_id())
        if ddl.in_txn and self.in_txn:
            self._txn_mark = self._mark()
            self._savepoints = {}
        return bid

    # -- XA ------------------------------------------------------------------------------
    def xa_prepare(self, xid: str, pos: Position, last_read_at: float) -> None:
        """Store the open transaction (the whole batch: an XA transaction starts one) as prepared."""
        b = self.batch
        with self.conn.transaction():
            # the same XID stored already: its PREPARE is read a second time (`start --from` an
            # earlier position); this reading replaces it
            for (stale,) in self.conn.execute(
                    "DELETE FROM batches WHERE source = %s AND status = 'prepared' AND xa_xid = %s RETURNING batch_id",
                    (self.source, xid)).fetchall():
                self.conn.execute(sql.SQL("DELETE FROM {} WHERE batch_id = %s").format(self._log), (stale,))
            self._copy(b.lines)
            self.conn.execute(sql.SQL("UPDATE {} SET batch_id = %s WHERE batch_id = %s").format(self._log),
                              (-b.batch_id, b.batch_id))
            self.conn.execute("DELETE FROM batches WHERE source = %s AND batch_id IN (%s, %s)",
                              (self.source, b.batch_id, -b.batch_id))
            self.conn.execute(
                """INSERT INTO batches (source, batch_id, kind, status, xa_xid, n_events, table_ids,
                       first_event_at, last_event_at, end_file, end_pos, end_gtid)
                   VALUES (%s, %s, 'rows', 'prepared', %s, %s, %s, %s, %s, %s, %s, %s)""",
                (self.source, -b.batch_id, xid, b.n_events, sorted(b.table_ids), _ts(b.first_ts),
                 _ts(b.last_ts), pos.file, pos.pos, pos.gtid))
            self._save_position(pos, b.last_ts, last_read_at)
        self.end_txn()
        self.batch = PendingBatch(self._take_id())

    def xa_end(self, xid: str, commit: bool, pos: Position, ts: float, last_read_at: float) -> bool:
        """XA COMMIT: the prepared batch becomes the current batch id, closed, to be replayed
        in its commit place.  XA ROLLBACK: it is deleted.  The batch so far must be flushed.
        Returns False when no prepared transaction with that XID is stored."""
        b = self.batch
        if b.n_events:
            raise RuntimeError("XA COMMIT/ROLLBACK needs the batch so far flushed")
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT batch_id FROM batches WHERE source = %s AND status = 'prepared' AND xa_xid = %s",
                (self.source, xid)).fetchone()
            if row is not None:
                old = int(row[0])
                if commit:
                    self.conn.execute(sql.SQL("UPDATE {} SET batch_id = %s WHERE batch_id = %s").format(self._log),
                                      (b.batch_id, old))
                    self.conn.execute(
                        """UPDATE batches SET batch_id = %s, status = 'closed', xa_xid = NULL, end_file = %s,
                               end_pos = %s, end_gtid = %s, last_event_at = %s, written_at = clock_timestamp()
                            WHERE source = %s AND batch_id = %s""",
                        (b.batch_id, pos.file, pos.pos, pos.gtid, _ts(ts), self.source, old))
                else:
                    self.conn.execute(sql.SQL("DELETE FROM {} WHERE batch_id = %s").format(self._log), (old,))
                    self.conn.execute("DELETE FROM batches WHERE source = %s AND batch_id = %s", (self.source, old))
            self._save_position(pos, ts, last_read_at)
        if row is not None and commit:
            self.batch = PendingBatch(self._take_id())
        return row is not None

    def save_heartbeat(self, head: Position, at: float, *, caught_up: bool = False) -> None:
        """Record the source's binlog head.  ``caught_up``: no transaction is open and every
        change read so far is flushed, so the head (where the server's dump thread stands,
        past checkpoint and rotate events) is a boundary and becomes the read position."""
        with self.conn.transaction():
            self.conn.execute(
                """UPDATE sources SET last_read_at = %s, head_file = %s, head_pos = %s WHERE name = %s""",
                (_ts(at), head.file, head.pos, self.source),
            )
            if caught_up and self.batch.empty and not self.in_txn:
                self.conn.execute(
                    """UPDATE sources SET read_file = %s, read_pos = %s, read_gtid = coalesce(%s, read_gtid)
                        WHERE name = %s""", (head.file, head.pos, head.gtid, self.source))

    def _save_position(self, pos: Position, last_event_ts: float | None, last_read_at: float) -> None:
        self.conn.execute(
            """UPDATE sources SET read_file = %s, read_pos = %s, read_gtid = %s, next_batch_id = %s,
                   last_event_at = coalesce(%s, last_event_at), last_read_at = %s
               WHERE name = %s""",
            (pos.file, pos.pos, pos.gtid, self._next_id,
             _ts(last_event_ts), _ts(last_read_at), self.source),
        )


def discard_open_batches(conn: psycopg.Connection, schema: str, source: str) -> int:
    """Remove what a crashed writer left of incomplete transactions. Returns how many batches."""
    with conn.transaction():
        rows = conn.execute(
            "DELETE FROM batches WHERE source = %s AND status = 'open' RETURNING batch_id", (source,)
        ).fetchall()
        ids = [r[0] for r in rows]
        if ids:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE batch_id = ANY(%s)").format(
                    sql.Identifier(schema, log_table_name(source))),
                (ids,),
            )
    if ids:
        log.info("source %s: discarded %d incomplete batch(es) left by an interrupted writer", source, len(ids))
    return len(ids)


def _ts(epoch: float | None) -> Any:
    if epoch is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)


__all__ = ["LogWriter", "TableCodec", "discard_open_batches", "ensure_log_table", "log_table_name", "Op"]
