"""Read a MySQL/MariaDB binlog and turn it into normalized change records.

The reader runs in a thread of its own and hands records to the writer through a
bounded queue, so that reading the network and storing changes overlap and memory
stays bounded.  It resumes from a file/position (or a MariaDB GTID position).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from pymysqlreplication import BinLogStreamReader, binlogstream
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XAPrepareEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from pgbaton.cdc.model import Begin, Heartbeat, Image, Item, Op, Position, ReaderFailed, RollbackTo, Rows, Savepoint
from pgbaton.mysql import fastrows, tablemap
from pgbaton.mysql.framing import NO_FOREIGN_KEY_CHECKS, Framer

log = logging.getLogger(__name__)


def _own_reconnects() -> None:
    """mysql-replication reconnects by itself after a lost connection (errors 2006/2013),
    from the position the stream was *opened* with in GTID mode, so everything read since
    is sent again.  pgbaton owns reconnecting instead: a lost connection ends the stream
    with an error, and the replica starts again from its stored, committed position."""
    codes = getattr(binlogstream, "MYSQL_EXPECTED_ERROR_CODES", None)
    if not isinstance(codes, list):
        raise ImportError("mysql-replication changed: MYSQL_EXPECTED_ERROR_CODES is gone; "
                          "pgbaton cannot turn off its automatic reconnect")
    binlogstream.MYSQL_EXPECTED_ERROR_CODES = []


_own_reconnects()


class StreamEnded(Exception):
    """The server ended the binlog stream (dump thread killed, server shutting down)."""


class GtidTracker:
    """The MariaDB GTID position: the last sequence per replication domain."""

    def __init__(self, initial: str | None) -> None:
        self._domains: dict[int, str] = {}
        for part in (initial or "").split(","):
            part = part.strip()
            if part:
                self._domains[int(part.split("-", 1)[0])] = part

    def see(self, gtid: str) -> None:
        self._domains[int(gtid.split("-", 1)[0])] = gtid

    def position(self) -> str | None:
        if not self._domains:
            return None
        return ",".join(self._domains[d] for d in sorted(self._domains))


class BinlogReader:
    """Iterates over normalized records starting after ``start``.

    ``wanted(db, table)`` filters row events; DDL is passed for every database
    in ``databases`` (the statement's default database or a qualified name
    decides later).
    """

    def __init__(
        self,
        connection: dict[str, Any],
        server_id: int,
        start: Position,
        databases: set[str],
        wanted: Callable[[str, str], bool],
        *,
        heartbeat: float = 1.0,
        use_gtid: bool = False,
        is_mariadb: bool = True,
    ) -> None:
        self._connection = dict(connection)
        self._server_id = server_id
        self._start = start
        self._databases = databases
        self._wanted = wanted
        self._heartbeat = heartbeat
        self._use_gtid = use_gtid and bool(start.gtid)
        self._is_mariadb = is_mariadb
        self._stream: BinLogStreamReader | None = None

    def _open(self) -> BinLogStreamReader:
        tablemap.install()
        fastrows.install()
        kwargs: dict[str, Any] = {}
        if self._use_gtid:
            kwargs["auto_position"] = self._start.gtid
        else:
            kwargs.update(log_file=self._start.file, log_pos=self._start.pos, resume_stream=True)
        # the server sends a heartbeat every `heartbeat` seconds while idle: a connection
        # silent for much longer is dead (a network cut that sent no reset)
        settings = {**self._connection, "read_timeout": max(10, int(self._heartbeat * 5) + 1)}
        return BinLogStreamReader(
            connection_settings=settings,
            server_id=self._server_id,
            blocking=True,
            only_events=[
                MariadbGtidEvent, GtidEvent, QueryEvent, XidEvent, XAPrepareEvent, RotateEvent,
                HeartbeatLogEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent,
            ],
            slave_heartbeat=self._heartbeat,
            # mysql-replication's MariaDB dump request ignores file/position (it always
            # starts at the first binlog); the MySQL-style request resumes correctly on
            # MariaDB too, which still sends its GTID events.
            is_mariadb=self._is_mariadb and self._use_gtid,
            only_schemas=sorted(self._databases),
            enable_logging=False,
            **kwargs,
        )

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def events(self) -> Iterator[Item]:
        """Normalized records; every position in a Commit, Rollback, XA or standalone Ddl
        record is a transaction boundary.  Raises StreamEnded when the server ends the stream."""
        stream = self._stream = self._open()
        gtids = GtidTracker(self._start.gtid)
        framer = Framer()
        file = self._start.file
        for ev in stream:
            file = stream.log_file or file
            if isinstance(ev, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
                if not self._wanted(ev.schema, ev.table):
                    continue
                yield from framer.rows(_rows(ev))
                continue
            if isinstance(ev, HeartbeatLogEvent):
                yield Heartbeat(Position(ev.ident or file, stream.log_pos, gtids.position()), time.time())
                continue
            if isinstance(ev, RotateEvent):
                continue
            ts = float(ev.timestamp)
            if isinstance(ev, MariadbGtidEvent):
                gtids.see(ev.gtid)
                yield from framer.gtid(ev.gtid, int(ev.flags))
            elif isinstance(ev, GtidEvent):
                gtids.see(ev.gtid)
                yield from framer.gtid(ev.gtid, None)
            elif isinstance(ev, XidEvent):
                yield from framer.xid(Position(file, stream.log_pos, gtids.position()), ts)
            elif isinstance(ev, XAPrepareEvent):
                yield from framer.xa_prepare_event(str(ev.xid), bool(ev.one_phase),
                                                   Position(file, stream.log_pos, gtids.position()), ts)
            elif isinstance(ev, QueryEvent):
                schema = ev.schema.decode("utf-8", "replace") if isinstance(ev.schema, bytes) else ev.schema
                yield from framer.query(ev.query, schema or None, Position(file, stream.log_pos, gtids.position()),
                                        ts)
        raise StreamEnded("the server ended the binlog stream")


def _rows(ev: Any) -> Rows:
    images: list[tuple[Image | None, Image | None]]
    fk_checks = not (int(getattr(ev, "flags", 0) or 0) & NO_FOREIGN_KEY_CHECKS)
    if isinstance(ev, WriteRowsEvent):
        images = [(None, (r["values"], r["none_sources"])) for r in ev.rows]
        return Rows(ev.schema, ev.table, Op.INSERT, images, float(ev.timestamp), fk_checks)
    if isinstance(ev, DeleteRowsEvent):
        images = [((r["values"], r["none_sources"]), None) for r in ev.rows]
        return Rows(ev.schema, ev.table, Op.DELETE, images, float(ev.timestamp), fk_checks)
    images = [((r["before_values"], r["before_none_sources"]), (r["after_values"], r["after_none_sources"]))
              for r in ev.rows]
    return Rows(ev.schema, ev.table, Op.UPDATE, images, float(ev.timestamp), fk_checks)


class ReaderThread(threading.Thread):
    """Runs a BinlogReader and puts its records into a bounded queue.

    Records travel in lists, one source transaction (or a slice of a large one)
    per list, which keeps the queue's locking off the per-row path.  A list is
    handed over at every transaction end, so nothing waits in it while the
    source is idle.
    """

    def __init__(self, reader: BinlogReader, out: queue.Queue[list[Item]], stop: threading.Event,
                 slice_items: int = 256) -> None:
        super().__init__(name="binlog-reader", daemon=True)
        self._reader = reader
        self._out = out
        self._halt = stop
        self._slice = slice_items

    def _put(self, items: list[Item]) -> bool:
        while not self._halt.is_set():
            try:
                self._out.put(items, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        pending: list[Item] = []
        try:
            for item in self._reader.events():
                pending.append(item)
                if isinstance(item, Rows | Begin | Savepoint | RollbackTo) and len(pending) < self._slice:
                    continue
                if self._halt.is_set() or not self._put(pending):
                    break
                pending = []
        except Exception as exc:  # reported to the writer, which stops the replica cleanly
            log.debug("binlog reader failed", exc_info=True)
            self._put([ReaderFailed(f"binlog reader stopped: {exc}", exc)])
        finally:
            self._reader.close()
