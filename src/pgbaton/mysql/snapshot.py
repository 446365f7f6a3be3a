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
from typing import Any, TypeVar

import psycopg
import pymysql
from psycopg import sql

from pgbaton.cdc.model import Position
from pgbaton.errors import SourceError
from pgbaton.mysql import typemap
from pgbaton.mysql.model import MyTable
from pgbaton.mysql.readers import SnapshotReader

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


R = TypeVar("R", bound=SnapshotReader)


def open_snapshot(connect: Callable[[], pymysql.connections.Connection], open_reader: Callable[[], R], workers: int,
                  lock_wait_timeout: int = 60) -> tuple[SnapshotPoint, list[R]]:
    """Open ``workers`` readers that share one snapshot; return its binlog position.

    ``connect`` gives the control connection that holds the global read lock for
    the moment the readers start their transactions and the position is read.
    """
    ctl = connect()
    readers: list[R] = []
    try:
        with ctl.cursor() as cur:
            cur.execute(f"SET SESSION lock_wait_timeout = {int(lock_wait_timeout)}")
            try:
                cur.execute("FLUSH TABLES WITH READ LOCK")
            except pymysql.err.OperationalError as exc:
                if exc.args and exc.args[0] in (1227, 1045):  # access denied: no RELOAD privilege
                    raise SourceError(
                        f"the source user {ctl.user!r} may not run FLUSH TABLES WITH READ LOCK: grant it RELOAD "
                        "(the lock is held for milliseconds while the copy workers open their snapshots)"
                    ) from None
                raise SourceError(f"cannot take the snapshot lock on the source: {exc.args[-1]}") from None
        for _ in range(workers):
            readers.append(_begin(open_reader))
        point = SnapshotPoint(binlog_head(ctl), time.time())
        with ctl.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        return point, readers
    except BaseException:
        for r in readers:
            r.close()
        raise
    finally:
        ctl.close()


def _begin(open_reader: Callable[[], R]) -> R:
    reader = open_reader()
    try:
        reader.begin(typemap.SNAPSHOT_SESSION_SQL)
    except BaseException:
        reader.close()
        raise
    return reader


def select_for_copy(table: MyTable, opts: typemap.TypeOptions) -> str:
    exprs = ", ".join(typemap.snapshot_expr(c, opts) for c in table.columns)
    return f"SELECT CONCAT_WS(CHAR(9), {exprs}) FROM {mysql_ident(table.db)}.{mysql_ident(table.name)}"


def copy_table(reader: SnapshotReader, pg: psycopg.Connection, table: MyTable, dst_schema: str,
               dst_table: str, opts: typemap.TypeOptions, columns: Sequence[str],
               progress: Callable[[int, int], None]) -> tuple[int, int]:
    """Stream one table from the snapshot into the target with COPY. Returns (rows, bytes)."""
    query = select_for_copy(table, opts)
    target = sql.Identifier(dst_schema, dst_table)
    with pg.transaction():
        pg.execute(sql.SQL("TRUNCATE {}").format(target))
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FREEZE)").format(
            target, sql.SQL(", ").join(sql.Identifier(c) for c in columns))
        with pg.cursor().copy(copy_sql) as cp:
            return reader.stream(query, cp.write, progress)
