"""`source add` and `replica init`: register a source, create its tables, copy a snapshot."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
import pymysql
from psycopg import sql

from pgbaton.cdc.store import ensure_log_table, log_table_name
from pgbaton.config import Config, MySQLSourceConfig
from pgbaton.errors import PgbatonError, SourceError
from pgbaton.mysql import introspect, names, pgddl, typemap
from pgbaton.mysql.model import MyTable
from pgbaton.mysql.readers import ClientReader, PyMySQLReader, SnapshotReader, client_program
from pgbaton.mysql.snapshot import copy_table, open_snapshot
from pgbaton.replica import catalog as cat
from pgbaton.replica import spatial
from pgbaton.replica.progress import CopyProgress

log = logging.getLogger(__name__)

REQUIRED_SETTINGS = {
    "log_bin": ("1", "ON"),
    "binlog_format": ("ROW",),
    "binlog_row_image": ("FULL",),
}


def mysql_connect(src: MySQLSourceConfig, *, binary: bool = False, **extra: Any) -> pymysql.connections.Connection:
    args = src.pymysql_args()
    try:
        return pymysql.connect(**args, charset="utf8mb4", use_unicode=not binary, autocommit=True,
                               connect_timeout=10, **extra)
    except pymysql.err.MySQLError as exc:
        raise SourceError(f"cannot connect to the source at {src.host}:{src.port} as {src.user}: "
                          f"{exc.args[-1] if exc.args else exc}") from None


# what the replica needs, and the names servers use for it in SHOW GRANTS (MariaDB 10.5+
# says BINLOG MONITOR and may say REPLICATION REPLICA; MySQL 8 says REPLICATION CLIENT)
_GLOBAL_GRANTS = {
    "REPLICATION SLAVE": ("REPLICATION SLAVE", "REPLICATION REPLICA"),
    "BINLOG MONITOR": ("BINLOG MONITOR", "REPLICATION CLIENT"),
    "RELOAD": ("RELOAD",),
}


def _missing_grants(cur: Any, dbs: list[str], user: str) -> tuple[list[str], bool]:
    """The privileges the source user lacks, each with the GRANT to add (SHOW GRANTS of
    the current user), and whether roles are granted (then the list may be incomplete)."""
    try:
        cur.execute("SHOW GRANTS")
        lines = [str(r[0]) for r in cur.fetchall()]
    except pymysql.err.MySQLError:
        return [], True
    up = [ln.upper() for ln in lines]
    on_all = [ln.split(" ON ")[0] for ln in up if " ON *.* " in ln]
    via_roles = any(ln.startswith(("GRANT `", "GRANT '")) and " ON " not in ln for ln in up)   # a role
    if any("ALL PRIVILEGES" in g for g in on_all):
        return [], via_roles
    out = []
    for priv, spellings in _GLOBAL_GRANTS.items():
        if not any(sp in g for g in on_all for sp in spellings):
            extra = " (MySQL 8: REPLICATION CLIENT)" if priv == "BINLOG MONITOR" else ""
            out.append(f"user {user} lacks {priv}: GRANT {priv} ON *.* TO '{user}'@'<host>'{extra}")
    for db in dbs:
        quoted = f" ON `{db.upper()}`.* "
        if not any("SELECT" in g for g in on_all) and not any(
                quoted in ln and ("SELECT" in ln.split(" ON ")[0] or "ALL PRIVILEGES" in ln) for ln in up):
            out.append(f"user {user} lacks SELECT on {db}: GRANT SELECT ON `{db}`.* TO '{user}'@'<host>'")
    return out, via_roles


def check_source(src: MySQLSourceConfig) -> list[str]:
    """Verify the server settings pgbaton relies on; returns warnings, raises on blockers."""
    conn = mysql_connect(src)
    problems: list[str] = []
    warnings: list[str] = []
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@version")
            version = str(cur.fetchone()[0])  # type: ignore[index]
            for var, allowed in REQUIRED_SETTINGS.items():
                cur.execute(f"SELECT @@{var}")
                value = str(cur.fetchone()[0]).upper()  # type: ignore[index]
                if value not in allowed:
                    problems.append(f"{var} is {value}, needs {' or '.join(allowed)} (set it in the server config)")
            try:
                cur.execute("SELECT @@binlog_row_metadata")
                value = str(cur.fetchone()[0]).upper()  # type: ignore[index]
                if value != "FULL":
                    problems.append(f"binlog_row_metadata is {value}, needs FULL "
                                    "(SET GLOBAL binlog_row_metadata = FULL and in the server config)")
            except pymysql.err.MySQLError:
                warnings.append(f"server {version} has no binlog_row_metadata; column names come from "
                                "information_schema")
            missing, via_roles = _missing_grants(cur, list(src.databases), src.user)
            (warnings if via_roles else problems).extend(missing)
            cur.execute("SHOW DATABASES")
            present = {r[0] for r in cur.fetchall()}
            for db in src.databases:
                if db not in present:
                    problems.append(f"database {db!r} (sources.*.databases) does not exist on the source "
                                    "or the user cannot see it")
    finally:
        conn.close()
    if problems:
        raise SourceError("the source cannot be replicated:\n  " + "\n  ".join(problems))
    return warnings


def snapshot_reader_factory(src: MySQLSourceConfig) -> Callable[[], SnapshotReader]:
    """The fast client-program reader when the program is installed, else PyMySQL."""
    program = client_program() if src.copy_via_client else None
    if program is not None:
        return lambda: ClientReader(src, program)
    return lambda: PyMySQLReader(mysql_connect(src, binary=True), src.copy_chunk_rows)


def add_source(cfg: Config, name: str) -> list[str]:
    """Register a configured source in the catalog and create its log table (idempotent)."""
    src = cfg.source(name)
    warnings = check_source(src)
    conn = cat.catalog_connection(cfg)
    try:
        conn.execute("INSERT INTO sources (name, kind) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                     (name, src.type))
        ensure_log_table(conn, cfg.target.catalog_schema, name)
        conn.commit()
    finally:
        conn.close()
    return warnings


@dataclass
class InitResult:
    tables: int
    rows: int
    bytes: int
    seconds: float
    copy_seconds: float
    index_seconds: float
    position: str
    warnings: list[str] = field(default_factory=list)
    per_table: list[dict[str, Any]] = field(default_factory=list)
    cascading_foreign_keys: list[str] = field(default_factory=list)


def init_replica(cfg: Config, name: str, *, force: bool = False, show_progress: bool | None = None) -> InitResult:
    """Create the source's tables on the target and copy one consistent snapshot into them."""
    started = time.monotonic()
    src = cfg.source(name)
    conn = cat.catalog_connection(cfg, purpose=f"pgbaton-init-{name}")
    lock = cat.catalog_connection(cfg, purpose=f"pgbaton-lock-{name}", autocommit=True)
    try:
        if not cat.try_lock(lock, name):
            raise PgbatonError(f"source {name}: a replica or another init is running; stop it first "
                               f"(`pgbaton replica stop --source {name}`)")
        row = cat.source_row(conn, name)
        if row.state not in ("new", "initializing") and not force:
            raise PgbatonError(f"source {name} is already initialized (state {row.state}); "
                               "`replica init --force` drops its tables and copies them again")
        return _init(cfg, name, src, conn, started, show_progress)
    finally:
        conn.close()
        lock.close()


@dataclass
class _Objects:
    views: list[tuple[str, str, str]] = field(default_factory=list)
    others: list[tuple[str, str, str]] = field(default_factory=list)


def _discover(src: MySQLSourceConfig, objects: _Objects | None = None) -> list[MyTable]:
    conn = mysql_connect(src)
    try:
        found = introspect.introspect(conn, list(src.databases), src.tables.wants)
        if objects is not None:
            objects.views = introspect.views(conn, list(src.databases))
            objects.others = introspect.not_carried(conn, list(src.databases))
        with conn.cursor() as cur:
            cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
                        "WHERE TABLE_SCHEMA IN %s", (list(src.databases),))
            estimates = {(r[0], r[1]): int(r[2] or 0) for r in cur.fetchall()}
    finally:
        conn.close()
    return [replace(t, extra={**t.extra, "rows_estimate": estimates.get((t.db, t.name), 0)}).named() for t in found]


def _init(cfg: Config, name: str, src: MySQLSourceConfig, conn: psycopg.Connection, started: float,
          show_progress: bool | None) -> InitResult:
    objects = _Objects()
    tables = _discover(src, objects)
    warnings = [w for t in tables for w in introspect.warnings_for(t)]
    warnings.extend(_not_carried_warnings(objects.others))
    if not tables:
        # following DDL from an empty database is a common start: tables created later are replicated
        warnings.append(f"source {name}: no tables yet in databases {', '.join(src.databases)}; "
                        "tables created from now on are replicated")
    warnings.extend(spatial.postgis_notes(conn, tables))
    for w in warnings:
        log.warning("%s", w)
    postgis = cat.has_postgis(conn)
    conn.commit()
    ids = _create_tables(conn, cfg, name, src, tables, postgis)
    copy_started = time.monotonic()
    point, results = _copy_all(src, cfg.target.conninfo(f"pgbaton-copy-{name}"), tables, ids, postgis,
                               show_progress)
    copy_seconds = time.monotonic() - copy_started
    warnings.extend(create_views(conn, src, objects.views, name))
    with conn.transaction():
        conn.execute("UPDATE tables SET state = 'replicating' WHERE source = %s", (name,))
        cat.set_state(conn, name, "initialized", read_file=point.pos.file, read_pos=point.pos.pos,
                      read_gtid=point.pos.gtid, snapshot_file=point.pos.file, snapshot_pos=point.pos.pos,
                      snapshot_gtid=point.pos.gtid, snapshot_at=_ts(point.at), last_event_at=_ts(point.at),
                      last_read_at=_ts(time.time()))
        for r in results:
            conn.execute("UPDATE tables SET rows_copied = %s WHERE id = %s", (r["rows"], r["id"]))
        # the foreign keys whose cascades InnoDB does not log: replay reproduces them
        from pgbaton.replica import fkeys

        cascading = [fk.label() for fk in fkeys.refresh(cfg, name, conn) if fk.cascades]
    index_seconds = sum(r["index_seconds"] for r in results)
    return InitResult(
        tables=len(tables), rows=sum(r["rows"] for r in results), bytes=sum(r["bytes"] for r in results),
        seconds=time.monotonic() - started, copy_seconds=copy_seconds, index_seconds=index_seconds,
        position=str(point.pos), warnings=warnings, per_table=results, cascading_foreign_keys=cascading,
    )


def _not_carried_warnings(others: list[tuple[str, str, str]]) -> list[str]:
    out = []
    for kind in ("trigger", "procedure", "function", "package", "package body", "event"):
        names = [f"{d}.{n}" for k, d, n in others if k == kind]
        if names:
            out.append(f"{kind}s not carried to PostgreSQL (MySQL code; write them again there if needed): "
                       + ", ".join(names))
    return out


def create_views(conn: psycopg.Connection, src: MySQLSourceConfig, views: list[tuple[str, str, str]],
                 source: str | None = None) -> list[str]:
    """Create the source's views, translated by sqlglot, each after the views it reads;
    returns a warning for each view that is not carried, with the reason."""
    from pgbaton.mysql.ddl.views import translate_view, view_order

    maps = cat.column_maps(conn, source) if source else {}
    conn.commit()
    out: list[str] = []
    for db, name, select in view_order(views):
        where = f"{db}.{name}"
        if not select:
            out.append(f"view {where} not carried: its definition is not visible (grant SHOW VIEW)")
            continue
        view = translate_view(select, db, src.databases, maps)
        if view.select is None:
            out.append(f"view {where} not carried: {view.reason}")
            continue
        ident = sql.Identifier(src.databases[db], names.natural_table(name))
        try:
            with conn.transaction():
                conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(ident))
                conn.execute(sql.SQL("CREATE VIEW {} AS {}").format(ident, sql.SQL(view.select)))
        except psycopg.Error as exc:
            out.append(f"view {where} not carried: PostgreSQL refuses the translation: "
                       f"{str(exc).strip().splitlines()[0][:300]}")
    for w in out:
        log.warning("%s", w)
    return out


def _create_tables(conn: psycopg.Connection, cfg: Config, name: str, src: MySQLSourceConfig,
                   tables: list[MyTable], postgis: bool) -> dict[tuple[str, str], tuple[int, str]]:
    """(Re)create every target table and the catalog rows, in one transaction."""
    schema = cfg.target.catalog_schema
    ids: dict[tuple[str, str], tuple[int, str]] = {}   # (db, table) -> (catalog id, target name)
    with conn.transaction():
        cat.set_state(conn, name, "initializing")
        ensure_log_table(conn, schema, name)
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(schema, log_table_name(name))))
        conn.execute("DELETE FROM batches WHERE source = %s", (name,))
        old = conn.execute("SELECT dst_schema, dst_table FROM tables WHERE source = %s", (name,)).fetchall()
        for s, t in old:     # views reading them go too: init creates them again
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(s, t)))
        conn.execute("DELETE FROM tables WHERE source = %s", (name,))
        for dst in sorted(set(src.databases.values())):
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(dst)))
        chosen: dict[str, set[str]] = {}
        for t in tables:
            dst_schema = src.databases[t.db]
            taken = chosen.setdefault(dst_schema, cat.registered_names(conn, dst_schema))
            dst_table = names.table_name(t.name, taken)
            taken.add(dst_table)
            # only tables pgbaton created are ever dropped: its own were dropped above
            cat.refuse_foreign_relation(conn, dst_schema, dst_table, f"{t.db}.{t.name}",
                                        f"sources.{name}.databases.{t.db}")
            opts = typemap.type_options(src, t.db, t.name, postgis)
            for stmt in pgddl.create_table_sql(t, dst_schema, opts, name=dst_table):
                conn.execute(stmt)
            ids[(t.db, t.name)] = (cat.register_table(conn, name, t, dst_schema, dst_table, "copying"), dst_table)
    return ids


def _copy_all(src: MySQLSourceConfig, conninfo: str, tables: list[MyTable],
              ids: dict[tuple[str, str], tuple[int, str]], postgis: bool,
              show_progress: bool | None) -> tuple[Any, list[dict[str, Any]]]:
    workers = min(src.copy_workers, len(tables))
    point, my_conns = open_snapshot(lambda: mysql_connect(src), snapshot_reader_factory(src), workers)
    log.info("snapshot taken at %s with %d worker(s)", point.pos, len(my_conns))
    todo: queue.Queue[MyTable] = queue.Queue()
    for t in sorted(tables, key=lambda t: -int(t.extra.get("rows_estimate", 0) or 0)):
        todo.put(t)
    expected = sum(int(t.extra.get("rows_estimate", 0) or 0) for t in tables)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    with CopyProgress(expected, len(tables), show=show_progress) as progress:
        def work(my: SnapshotReader) -> None:
            try:
                pg = psycopg.connect(conninfo)
                pg.execute("SET maintenance_work_mem = '256MB'")
                pg.execute("SET synchronous_commit = off")
                pg.commit()
            except BaseException as exc:
                errors.append(exc)
                return
            try:
                while not errors:
                    try:
                        t = todo.get_nowait()
                    except queue.Empty:
                        return
                    results.append(_copy_one(my, pg, src, t, *ids[(t.db, t.name)], postgis, progress))
            except BaseException as exc:
                errors.append(exc)
            finally:
                pg.close()
                my.close()
        threads = [threading.Thread(target=work, args=(m,), name=f"copy-{i}") for i, m in enumerate(my_conns)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    if errors:
        err = errors[0]
        if isinstance(err, PgbatonError):
            raise err
        raise PgbatonError(f"initial copy failed: {err}") from err
    return point, results


def _copy_one(my: SnapshotReader, pg: psycopg.Connection, src: MySQLSourceConfig, t: MyTable,
              table_id: int, dst_table: str, postgis: bool, progress: CopyProgress) -> dict[str, Any]:
    dst_schema = src.databases[t.db]
    opts = typemap.type_options(src, t.db, t.name, postgis)
    t0 = time.monotonic()
    rows, size = copy_table(my, pg, t, dst_schema, dst_table, opts, [c.target for c in t.columns], progress.advance)
    t1 = time.monotonic()
    with pg.transaction():
        for stmt in pgddl.post_load_sql(t, dst_schema, opts, name=dst_table):
            pg.execute(stmt)
    pg.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(dst_schema, dst_table)))
    pg.commit()
    t2 = time.monotonic()
    progress.table_done()
    log.debug("copied %s.%s: %d rows in %.2f s, indexes %.2f s", t.db, t.name, rows, t1 - t0, t2 - t1)
    return {"id": table_id, "table": f"{t.db}.{t.name}", "rows": rows, "bytes": size,
            "copy_seconds": round(t1 - t0, 3), "index_seconds": round(t2 - t1, 3)}


def _ts(epoch: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)
