"""`replica start`: follow the binlog, store changes durably, replay them.

Three threads: the binlog reader (network and decoding), the log writer (this
thread: encoding and COPY into the log table) and the replayer (set-based apply).
Each has its own connection.  A stop request (SIGTERM, SIGINT, `replica stop`)
lets each finish its current unit of work; nothing half-done is recorded.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time

import psycopg

from pgbaton.cdc.model import (
    Begin,
    Commit,
    Ddl,
    Heartbeat,
    Item,
    Position,
    ReaderFailed,
    Rollback,
    RollbackTo,
    Rows,
    Savepoint,
    XaEnd,
    XaPrepare,
)
from pgbaton.cdc.replay import Batch, Replayer, replayer_lock_key
from pgbaton.cdc.store import LogWriter, discard_open_batches, ensure_log_table
from pgbaton.config import Config, MySQLSourceConfig
from pgbaton.errors import PgbatonError, SourceError, SourceUnavailable, is_transient
from pgbaton.mysql.binlog import BinlogReader, ReaderThread
from pgbaton.replica import catalog as cat
from pgbaton.replica import fkeys, spatial
from pgbaton.replica.ddl import apply_ddl_batch

log = logging.getLogger(__name__)


class ReplayThread(threading.Thread):
    def __init__(self, cfg: Config, source: str, stop: threading.Event, wake: threading.Event) -> None:
        super().__init__(name="replay", daemon=True)
        self.cfg = cfg
        self.source = source
        self.stop = stop
        self.wake = wake
        self.error: BaseException | None = None

    def run(self) -> None:
        src = self.cfg.source(self.source)
        try:
            conn = cat.catalog_connection(self.cfg, purpose=f"pgbaton-replay-{self.source}")
        except BaseException as exc:
            self.error = exc
            self.stop.set()
            return
        try:
            if not self._lock(conn):
                return
            replayer = Replayer(conn, self.cfg.target.catalog_schema, self.source, src.on_replay_error,
                                _ddl_handler(self.cfg, self.source))
            last_cleanup = last_vacuum = time.monotonic()
            removed = 0
            failures = 0
            while not self.stop.is_set():
                self.wake.wait(0.5)
                self.wake.clear()
                try:
                    n = replayer.replay_pending()
                    failures = 0
                except psycopg.Error as exc:
                    # a deadlock, a cancel, a full disk: the group was rolled back whole and is
                    # tried again; a lost connection ends the replica, whose supervisor reconnects
                    if not is_transient(exc) or conn.broken or conn.closed or failures >= 5:
                        raise
                    failures += 1
                    conn.rollback()
                    log.warning("source %s: replay failed (%s), trying again in %d s", self.source,
                                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                                failures)
                    self.stop.wait(failures)
                    continue
                if n:
                    log.debug("replayed %d row changes", n)
                if time.monotonic() - last_cleanup > 5:
                    last_cleanup = time.monotonic()
                    removed += replayer.cleanup(src.log_retention_seconds)
                    if removed and src.log_vacuum_seconds and time.monotonic() - last_vacuum >= src.log_vacuum_seconds:
                        replayer.vacuum()
                        last_vacuum, removed = time.monotonic(), 0
            replayer.replay_pending()
        except BaseException as exc:
            self.error = exc
            self.stop.set()
        finally:
            conn.close()

    def _lock(self, conn: psycopg.Connection) -> bool:
        """Wait for the source's replayer lock: a replayer of an earlier run of this replica
        that is still finishing a large group keeps it until it is done."""
        key = replayer_lock_key(self.source)
        note_at = time.monotonic()
        while not self.stop.is_set():
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if row and row[0]:
                conn.commit()
                return True
            if time.monotonic() >= note_at:
                # said again every 30 s, with who holds the lock: a wait that does not end is seen
                holder = cat.advisory_holder(conn, key)
                log.warning("source %s: waiting for the previous replayer to finish (%s)", self.source,
                            f"backend pid {holder[0]}, {holder[1] or 'no application name'}" if holder
                            else "its lock was just released")
                note_at = time.monotonic() + 30
            conn.commit()
            self.stop.wait(0.5)
        return False


def _ddl_handler(cfg: Config, source: str):  # type: ignore[no-untyped-def]
    def handle(conn: psycopg.Connection, batch: Batch) -> None:
        apply_ddl_batch(conn, cfg, source, batch)
        # foreign keys may have come, gone or changed their actions
        fkeys.refresh(cfg, source, conn)
    return handle


def _connection_settings(src: MySQLSourceConfig) -> dict[str, object]:
    args = src.pymysql_args()
    settings: dict[str, object] = {"host": args["host"], "port": args["port"], "user": args["user"],
                                   "password": args.get("password", "")}
    if "read_default_file" in args:
        settings["read_default_file"] = args["read_default_file"]
    return settings


class Replica:
    """One running replica of one source."""

    def __init__(self, cfg: Config, source: str) -> None:
        self.cfg = cfg
        self.name = source
        self.src = cfg.source(source)
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.tables_version = 0
        self.last_tables_check = time.monotonic()
        # restarts of the supervisor not yet counted in the catalog (it may have been down)
        self.restarts_to_record = 0

    def request_stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    def run(self) -> None:
        cfg, name = self.cfg, self.name
        schema = cfg.target.catalog_schema
        lock_conn = cat.catalog_connection(cfg, purpose=f"pgbaton-lock-{name}", autocommit=True)
        try:
            conn = cat.catalog_connection(cfg, purpose=f"pgbaton-writer-{name}")
        except BaseException:
            lock_conn.close()
            raise
        initialized = False
        try:
            if not cat.try_lock(lock_conn, name):
                raise PgbatonError(f"source {name}: another replica or init is running for it "
                                   f"(backend pid {cat.lock_holder(lock_conn, name)})")
            row = cat.source_row(conn, name)
            if row.state in ("new", "initializing") or row.read_file is None:
                raise SourceError(f"source {name} has not been initialized: run `pgbaton replica init --source {name}`")
            initialized = True
            ensure_log_table(conn, schema, name)
            discard_open_batches(conn, schema, name)
            fkeys.refresh(cfg, name, conn)
            cat.set_state(conn, name, "running", reader_pid=os.getpid(), reader_host=socket.gethostname())
            if self.restarts_to_record:
                conn.execute("UPDATE sources SET restarts = restarts + %s WHERE name = %s",
                             (self.restarts_to_record, name))
            conn.commit()
            self.restarts_to_record = 0
            self._loop(conn, Position(row.read_file, int(row.read_pos or 4), row.read_gtid), row.next_batch_id)
        finally:
            try:
                # (a source not initialized keeps its state: `replica init` takes it as it is)
                if initialized and not conn.closed:
                    conn.rollback()
                    cat.set_state(conn, name, "stopped", reader_pid=None)
                    conn.commit()
            except psycopg.Error:
                log.warning("could not record the stop of source %s in the catalog", name)
            conn.close()
            lock_conn.close()

    def _loop(self, conn: psycopg.Connection, start: Position, next_batch: int) -> None:
        cfg, name, src = self.cfg, self.name, self.src
        replay = ReplayThread(cfg, name, self.stop_event, self.wake)
        rthread: ReaderThread | None = None
        replay.start()
        # Whatever fails from here on (the target gone again while this run starts, the
        # source unreachable) stops the threads started so far: a replayer left running
        # would keep the source's replayer lock, and the supervisor's next run would wait
        # for it, and a reader left running would compete for the binlog with its server id.
        try:
            # the writer encodes rows with the table definitions as of its place in the
            # stream: let the replayer apply any DDL still pending before reading on
            self._wait_replayed(conn, replay, None)
            writer = LogWriter(conn, cfg.target.catalog_schema, name, {}, next_batch)
            self._reload_codecs(conn, writer)
            reader = BinlogReader(
                _connection_settings(src), src.server_id, start, set(src.databases),
                lambda db, t: True, heartbeat=src.heartbeat_seconds, use_gtid=src.use_gtid,
                is_mariadb=src.type == "mariadb",
            )
            items: queue.Queue[list[Item]] = queue.Queue(maxsize=2000)
            rthread = ReaderThread(reader, items, self.stop_event)
            rthread.start()
            log.info("source %s: replica running from %s, %d tables", name, start, len(writer.codecs))
            # re-copies (self-healing after DDL) that a stopped replica left pending go on now
            from pgbaton.replica import resync

            resync.resume_pending(cfg, name)
            self._consume(writer, items, replay)
        finally:
            self.request_stop()
            if rthread is not None:
                rthread.join(timeout=10)
            replay.join(timeout=60)
        if replay.error is not None:
            raise replay.error
        log.info("source %s: replica stopped", name)

    def _reload_codecs(self, conn: psycopg.Connection, writer: LogWriter) -> None:
        # PostGIS created since these tables were made: their spatial columns are bytea, which
        # the codecs must not fill with EWKB text: they are copied again first (replica/spatial.py)
        recopy = spatial.request_recopies(conn, self.name)
        if recopy:
            conn.commit()
            log.warning("source %s: copied again, PostGIS is in the target database now: %s",
                        self.name, ", ".join(recopy))
            from pgbaton.replica import resync

            resync.schedule(self.cfg, self.name)
        row = conn.execute("SELECT tables_version FROM sources WHERE name = %s", (self.name,)).fetchone()
        version = int(row[0]) if row else 0
        entries = cat.tables(conn, self.name, ("replicating", "copying"))
        postgis = cat.has_postgis(conn)
        writer.codecs = cat.codecs(entries, self.src, postgis)
        conn.execute("UPDATE sources SET writer_tables_version = %s WHERE name = %s", (version, self.name))
        conn.commit()
        self.tables_version = version

    def _check_tables(self, writer: LogWriter, last_commit: Position | None) -> None:
        """Between source transactions: pick up tables that sync_tables or enable/disable changed.
        The batch so far is closed first, so batches written after the reload follow the new rules."""
        self.last_tables_check = time.monotonic()
        conn = writer.conn
        row = conn.execute("SELECT tables_version FROM sources WHERE name = %s", (self.name,)).fetchone()
        conn.commit()
        if row is None or int(row[0]) == self.tables_version:
            return
        if writer.batch.n_events and last_commit is not None:
            writer.flush(last_commit, time.time())
            self.wake.set()
        self._reload_codecs(conn, writer)
        log.info("source %s: table list reloaded (version %d, %d tables)", self.name, self.tables_version,
                 len(writer.codecs))

    def _wait_replayed(self, conn: psycopg.Connection, replay: ReplayThread, batch_id: int | None) -> None:
        """Block until the replayer has applied ``batch_id`` (None: everything pending)."""
        self.wake.set()
        started = note_at = time.monotonic()
        while not self.stop_event.is_set():
            if time.monotonic() - note_at >= 60:
                # (a large DDL statement takes its time; a replayer that never gets to it is seen)
                log.warning("source %s: the writer has waited %.0f s for the replayer to apply %s", self.name,
                            time.monotonic() - started, f"batch {batch_id}" if batch_id is not None
                            else "the batches stored before this start")
                note_at = time.monotonic()
            if batch_id is None:
                row = conn.execute("SELECT count(*) FROM batches WHERE source = %s AND status = 'closed'",
                                   (self.name,)).fetchone()
                done = row is not None and row[0] == 0
            else:
                row = conn.execute("SELECT status FROM batches WHERE source = %s AND batch_id = %s",
                                   (self.name, batch_id)).fetchone()
                done = row is None or row[0] == "replayed"
            conn.commit()
            if done:
                return
            if not replay.is_alive():
                break
            time.sleep(0.01)
        if replay.error is not None:
            raise replay.error

    def _consume(self, writer: LogWriter, items: queue.Queue[list[Item]], replay: ReplayThread) -> None:
        max_rows = self.src.batch_max_rows
        max_age = self.src.batch_max_ms / 1000.0
        last_commit: Position | None = None
        last_summary = time.monotonic()
        written = 0

        def flush_committed(now: float) -> None:
            nonlocal written
            if writer.batch.n_events and last_commit is not None:
                n = writer.batch.n_events
                if writer.flush(last_commit, now):
                    written += n
                    self.wake.set()

        while not self.stop_event.is_set():
            if not writer.in_txn and time.monotonic() - self.last_tables_check >= 0.5:
                self._check_tables(writer, last_commit)
            try:
                chunk = items.get(timeout=0.2)
            except queue.Empty:
                continue
            now = time.time()
            last = len(chunk) - 1
            for i, item in enumerate(chunk):
                if isinstance(item, Rows):
                    writer.add_rows(item)
                    if writer.txn_lines >= max_rows:
                        writer.spill()
                elif isinstance(item, Commit):
                    cut = writer.must_cut(item.pos)
                    writer.commit_seen(item.ts)
                    last_commit = item.pos
                    b = writer.batch
                    idle = i == last and items.empty()
                    if cut or idle or b.n_events >= max_rows or time.monotonic() - b.started >= max_age:
                        n = b.n_events
                        if writer.flush(item.pos, now):
                            written += n
                            self.wake.set()
                elif isinstance(item, Begin):
                    if item.xa:
                        # an XA transaction starts a batch of its own (stored apart when prepared)
                        flush_committed(now)
                    writer.begin()
                elif isinstance(item, Savepoint):
                    writer.savepoint(item.name)
                elif isinstance(item, RollbackTo):
                    if not writer.rollback_to(item.name):
                        log.warning("source %s: ROLLBACK TO unknown savepoint %r ignored", self.name, item.name)
                elif isinstance(item, Rollback):
                    writer.rollback()
                    last_commit = item.pos
                elif isinstance(item, XaPrepare):
                    writer.xa_prepare(item.xid, item.pos, now)
                    last_commit = item.pos
                elif isinstance(item, XaEnd):
                    flush_committed(now)
                    if not writer.xa_end(item.xid, item.commit, item.pos, item.ts, now) and item.commit:
                        self._unknown_xa(writer, item)
                    last_commit = item.pos
                    self.wake.set()
                elif isinstance(item, Ddl):
                    if not item.in_txn:
                        flush_committed(now)
                    elif writer.batch.n_events:
                        # CREATE TABLE ... SELECT: the rows before its transaction go first
                        flush_committed(now)
                    ddl_batch = writer.write_ddl(item, now)
                    if not item.in_txn:
                        last_commit = item.pos
                    # rows after a DDL statement are encoded with the new definitions
                    self._wait_replayed(writer.conn, replay, ddl_batch)
                    self._reload_codecs(writer.conn, writer)
                elif isinstance(item, Heartbeat):
                    if not writer.in_txn:
                        flush_committed(now)
                    writer.save_heartbeat(item.head, item.received_at, caught_up=i == last and items.empty())
                elif isinstance(item, ReaderFailed):
                    raise SourceUnavailable(item.message)
            if time.monotonic() - last_summary >= 10:
                log.info("source %s: %d row changes stored in the last %.0f s", self.name, written,
                         time.monotonic() - last_summary)
                last_summary, written = time.monotonic(), 0

    def _unknown_xa(self, writer: LogWriter, item: XaEnd) -> None:
        """XA COMMIT of a transaction whose PREPARE was before this replica's start: its rows
        are in neither the snapshot nor the log.  Said loudly, recorded in `errors`."""
        message = (f"XA COMMIT {item.xid} at {item.pos}: the transaction was prepared before the replica "
                   "started reading, so its changes are missing; re-sync the tables it wrote "
                   "(`pgbaton replica sync-tables`)")
        log.error("source %s: %s", self.name, message)
        writer.conn.execute("INSERT INTO errors (source, kind, message, position) VALUES (%s, 'reader', %s, %s)",
                            (self.name, message, str(item.pos)))
        writer.conn.commit()
