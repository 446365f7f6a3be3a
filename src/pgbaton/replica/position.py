"""`replica start --from POSITION`: follow a source from a given binlog position, for a
target whose tables were loaded some other way (a dump, another tool, an earlier replica).

The tables the configuration selects must exist in the target with the names `replica init`
would use; they are registered as replicating (rows already registered keep their state)
and the reader starts at the position.  Changes stored but not yet replayed are discarded:
the stream is read again from the new position.
"""

from __future__ import annotations

import logging
import re

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pgbaton.cdc.model import Position
from pgbaton.cdc.store import ensure_log_table, log_table_name
from pgbaton.config import Config, MySQLSourceConfig
from pgbaton.errors import PgbatonError, SourceError
from pgbaton.mysql import introspect
from pgbaton.mysql.snapshot import binlog_head
from pgbaton.replica import catalog as cat
from pgbaton.replica.init import mysql_connect

log = logging.getLogger(__name__)

_FILE_POS = re.compile(r"^(?P<file>[^:\s]+):(?P<pos>\d+)$")
_MARIADB_GTID = re.compile(r"^\d+-\d+-\d+(,\d+-\d+-\d+)*$")
_MYSQL_GTID = re.compile(r"^[0-9a-fA-F-]{36}:[\d:-]+(,\s*[0-9a-fA-F-]{36}:[\d:-]+)*$")


def parse_position(text: str, src: MySQLSourceConfig) -> Position:
    """``file:pos`` or a GTID position; a GTID needs ``use_gtid: true``. The file of a GTID
    position and the GTID of a file position are looked up on the source."""
    text = text.strip()
    m = _FILE_POS.match(text)
    my = mysql_connect(src)
    try:
        if m:
            gtid = None
            if src.use_gtid and src.type == "mariadb":
                with my.cursor() as cur:
                    cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (m["file"], int(m["pos"])))
                    row = cur.fetchone()
                gtid = str(row[0]) if row and row[0] else None
            return Position(m["file"], int(m["pos"]), gtid)
        if _MARIADB_GTID.match(text) or _MYSQL_GTID.match(text):
            if not src.use_gtid:
                raise PgbatonError(f"--from {text}: a GTID position needs use_gtid: true for this source")
            head = binlog_head(my)
            return Position(head.file, 4, text)
    finally:
        my.close()
    raise PgbatonError(f"--from {text!r}: expected FILE:POS (e.g. binlog.000012:4711) or a GTID position "
                       "(MariaDB 0-1-123, MySQL uuid:1-42)")


def start_from(cfg: Config, source: str, position: str) -> Position:
    """Register the existing target tables and set the reader's start position. Safe to rerun."""
    src = cfg.source(source)
    pos = parse_position(position, src)
    schema = cfg.target.catalog_schema
    conn = cat.catalog_connection(cfg, purpose=f"pgbaton-from-{source}")
    lock = cat.catalog_connection(cfg, purpose=f"pgbaton-lock-{source}", autocommit=True)
    try:
        if not cat.try_lock(lock, source):
            raise PgbatonError(f"source {source}: a replica or init is running; stop it first")
        cat.source_row(conn, source)
        my = mysql_connect(src)
        try:
            tables = introspect.introspect(my, list(src.databases), src.tables.wants)
        finally:
            my.close()
        tables = [t.named() for t in tables]
        missing = [f"{src.databases[t.db]}.{t.target}" for t in tables
                   if not _exists(conn, src.databases[t.db], t.target)]
        if missing:
            raise SourceError(f"source {source}: the target has no table {', '.join(missing)}; load them first "
                              "(or use `replica init`)")
        conn.commit()
        with conn.transaction():
            ensure_log_table(conn, schema, source)
            for t in tables:
                conn.execute(
                    """INSERT INTO tables (source, src_db, src_table, dst_schema, dst_table, pk_cols, definition,
                                           state) VALUES (%s, %s, %s, %s, %s, %s, %s, 'replicating')
                       ON CONFLICT (source, src_db, src_table) DO NOTHING""",
                    (source, t.db, t.name, src.databases[t.db], t.target, list(t.pg_pk_columns),
                     Jsonb(t.to_json())))
            dropped = conn.execute("DELETE FROM batches WHERE source = %s AND status IN ('open', 'closed') "
                                   "RETURNING batch_id", (source,)).fetchall()
            if dropped:
                conn.execute(sql.SQL("DELETE FROM {} WHERE batch_id = ANY(%s)").format(
                    sql.Identifier(schema, log_table_name(source))), ([r[0] for r in dropped],))
            cat.set_state(conn, source, "initialized", read_file=pos.file, read_pos=pos.pos, read_gtid=pos.gtid,
                          snapshot_file=pos.file, snapshot_pos=pos.pos, snapshot_gtid=pos.gtid)
    finally:
        conn.close()
        lock.close()
    log.info("source %s: %d table(s) registered; the replica starts at %s", source, len(tables), pos)
    return pos


def _exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                       (sql.Identifier(schema, table).as_string(conn),)).fetchone()
    return bool(row and row[0])
