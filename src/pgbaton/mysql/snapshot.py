"""A consistent snapshot of a MySQL/MariaDB source, copied with COPY.

All copy workers start their transactions WITH CONSISTENT SNAPSHOT while a
global read lock is held for a moment, and the binlog coordinates are read under
that same lock: every worker sees the data exactly at that binlog position.
Without the RELOAD privilege (no FLUSH TABLES WITH READ LOCK) pgbaton falls back
to one worker and MariaDB's binlog_snapshot_file/position status variables.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pymysql
from psycopg import sql

from pgbaton.cdc.model import Position
from pgbaton.errors import SourceError
from pgbaton.mysql import typemap
from pgbaton.mysql.model import MyTable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotPoint:
    pos: Position
    at: float


def mysql_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _one(conn: pymysql.connections.Connection, query: str) -> tuple[Any, ...] | None:
    with conn.cursor() as cur:
        cur.execute(query)
        row = cur.fetchone()
    return tuple(row) if row is not None else None


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes | bytearray) else str(v)


def binlog_head(conn: pymysql.connections.Connection) -> Position:
    """The source's current binlog file/position and GTID position."""
    row = None
    for query in ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"):
        try:
            row = _one(conn, query)
            break
        except pymysql.err.ProgrammingError:
            continue
    if not row:
        raise SourceError("the source has no binary log (SHOW MASTER STATUS is empty): enable log_bin")
    gtid = None
    for query in ("SELECT @@gtid_binlog_pos", "SELECT @@gtid_executed"):
        try:
            got = _one(conn, query)
        except pymysql.err.MySQLError:
            continue
        if got and got[0]:
            gtid = _text(got[0]).replace("\n", "")
            break
    return Position(_text(row[0]), int(row[1]), gtid)


def open_snapshot(connect: Callable[[], pymysql.connections.Connection], workers: int,
                  lock_wait_timeout: int = 60) -> tuple[SnapshotPoint, list[pymysql.connections.Connection]]:
    """Open ``workers`` connections that share one snapshot; return its binlog position."""
    ctl = connect()
    conns: list[pymysql.connections.Connection] = []
    try:
        with ctl.cursor() as cur:
            cur.execute(f"SET SESSION lock_wait_timeout = {int(lock_wait_timeout)}")
            try:
                cur.execute("FLUSH TABLES WITH READ LOCK")
                locked = True
            except pymysql.err.OperationalError as exc:
                if exc.args and exc.args[0] in (1227, 1045):  # access denied: no RELOAD privilege
                    log.warning("no RELOAD privilege for FLUSH TABLES WITH READ LOCK: copying with one worker")
                    locked = False
                else:
                    raise SourceError(f"cannot take the snapshot lock on the source: {exc.args[-1]}") from None
        if locked:
            for _ in range(workers):
                conns.append(_snapshot_connection(connect))
            point = SnapshotPoint(binlog_head(ctl), time.time())
            with ctl.cursor() as cur:
                cur.execute("UNLOCK TABLES")
        else:
            c = _snapshot_connection(connect)
            conns.append(c)
            status = dict(_status_vars(c, "binlog_snapshot_%"))
            if "binlog_snapshot_file" not in status:
                raise SourceError("without the RELOAD privilege pgbaton needs MariaDB's binlog_snapshot_file "
                                  "status variable; grant RELOAD to the replication user")
            gtid = binlog_head(ctl).gtid
            point = SnapshotPoint(Position(status["binlog_snapshot_file"],
                                           int(status["binlog_snapshot_position"]), gtid), time.time())
            log.warning("GTID of a lock-free snapshot is approximate; replication resumes by file/position")
        return point, conns
    except BaseException:
        for c in conns:
            c.close()
        raise
    finally:
        ctl.close()


def _status_vars(conn: pymysql.connections.Connection, like: str) -> list[tuple[str, str]]:
    with conn.cursor() as cur:
        cur.execute("SHOW STATUS LIKE %s", (like,))
        return [(_text(a).lower(), _text(b)) for a, b in cur.fetchall()]


def _snapshot_connection(connect: Callable[[], pymysql.connections.Connection]) -> pymysql.connections.Connection:
    c = connect()
    with c.cursor() as cur:
        for stmt in typemap.SNAPSHOT_SESSION_SQL:
            cur.execute(stmt)
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    return c


def select_for_copy(table: MyTable, opts: typemap.TypeOptions) -> str:
    exprs = ", ".join(typemap.snapshot_expr(c, opts) for c in table.columns)
    return f"SELECT CONCAT_WS(CHAR(9), {exprs}) FROM {mysql_ident(table.db)}.{mysql_ident(table.name)}"


def copy_table(my: pymysql.connections.Connection, pg: psycopg.Connection, table: MyTable, dst_schema: str,
               dst_table: str, opts: typemap.TypeOptions, columns: Sequence[str],
               progress: Callable[[int, int], None], chunk_rows: int = 20000) -> tuple[int, int]:
    """Stream one table from the snapshot into the target with COPY. Returns (rows, bytes)."""
    query = select_for_copy(table, opts)
    target = sql.Identifier(dst_schema, dst_table)
    rows = size = 0
    with pg.transaction():
        pg.execute(sql.SQL("TRUNCATE {}").format(target))
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FREEZE)").format(
            target, sql.SQL(", ").join(sql.Identifier(c) for c in columns))
        with pg.cursor().copy(copy_sql) as cp, my.cursor(pymysql.cursors.SSCursor) as cur:
            cur.execute(query)
            while True:
                chunk = cur.fetchmany(chunk_rows)
                if not chunk:
                    break
                data = b"\n".join(r[0] for r in chunk) + b"\n"
                cp.write(data)
                rows += len(chunk)
                size += len(data)
                progress(len(chunk), len(data))
    return rows, size
