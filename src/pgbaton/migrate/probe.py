"""Observe both clusters: the read-only half of every command."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from pgbaton.config import ClusterConfig, MigrationConfig
from pgbaton.errors import PgbatonError
from pgbaton.migrate import sqlfiles
from pgbaton.migrate.catalog import Catalog
from pgbaton.migrate.model import ClusterFacts, DbProgress, PreflightFacts, SourceDbFacts, TargetDbFacts
from pgbaton.migrate.names import object_name, sync_slot_pattern
from pgbaton.migrate.pace import Capacity, Limit

NO_CAPTURE = "-c pgbaton.ddl_capture=off"
# every step records its progress in the catalog and a rerun trusts it: what a step did on a server
# must be on disk before it is recorded done, also where the server commits asynchronously (a
# kill -9 of the source right after open_reverse lost its CREATE SUBSCRIPTION, recorded done: the
# rerun finished the switch with no stream back; found by tests/migrate/test_server_kill.py)
DURABLE = "-c synchronous_commit=on"


def connect(cluster: ClusterConfig, side: str, dbname: str | None = None, *,
            autocommit: bool = True) -> psycopg.Connection:
    """Open a connection; errors name the side and never show the password."""
    try:
        # pgbaton's own DDL (replica identities, installing the capture) is never queued for the other side
        return psycopg.connect(cluster.conninfo(dbname, "pgbaton-migrate", what=side), autocommit=autocommit,
                               options=f"{NO_CAPTURE} {DURABLE}")
    except psycopg.OperationalError as exc:
        detail = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise PgbatonError(f"cannot connect to the {side} PostgreSQL at {cluster.host}:{cluster.port} "
                           f"database {dbname or cluster.dbname} as {cluster.user}: {detail}") from None


def cluster_facts(conn: psycopg.Connection) -> ClusterFacts:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(sqlfiles.query("cluster_facts")).fetchone()
        if row is None:
            raise PgbatonError("cannot read the role of the current user")
        exts = frozenset(r["name"] for r in cur.execute("SELECT name FROM pg_available_extensions").fetchall())
    return ClusterFacts(**row, available_extensions=exts)


def database_exists(conn: psycopg.Connection, dbname: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None


@dataclass(frozen=True)
class TableInfo:
    name: str
    unlogged: bool
    replident: str
    needs_identity: bool
    identity_index: str | None = None  # a unique NOT NULL index to use as the replica identity


def user_tables(conn: psycopg.Connection) -> list[TableInfo]:
    with conn.cursor(row_factory=dict_row) as cur:
        return [TableInfo(r["table_name"], r["unlogged"], r["replident"], r["needs_identity"], r["identity_index"])
                for r in cur.execute(sqlfiles.query("user_tables")).fetchall()]


def source_db_facts(cfg: MigrationConfig, dbname: str) -> SourceDbFacts:
    with connect(cfg.source, "source") as conn:
        if not database_exists(conn, dbname):
            return SourceDbFacts(dbname, exists=False)
    with connect(cfg.source, "source", dbname) as conn:
        tables = user_tables(conn)
        lo = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
        exts = [r[0] for r in conn.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall()]
    return SourceDbFacts(
        dbname, True, len(tables),
        tables_without_key=tuple(t.name for t in tables if t.needs_identity and not t.identity_index),
        tables_with_unique_index=tuple(f"{t.name} ({t.identity_index})" for t in tables
                                       if t.needs_identity and t.identity_index),
        unlogged_tables=tuple(t.name for t in tables if t.unlogged),
        large_objects=int(lo[0]) if lo else 0, extensions=tuple(exts))


def target_db_facts(cfg: MigrationConfig, dbname: str, created: bool) -> TargetDbFacts:
    with connect(cfg.target, "target") as conn:
        if not database_exists(conn, dbname):
            return TargetDbFacts(dbname, exists=False)
    with connect(cfg.target, "target", dbname) as conn:
        return TargetDbFacts(dbname, True, len(user_tables(conn)), created_by_pgbaton=created)


def preflight_facts(cfg: MigrationConfig, name: str) -> PreflightFacts:
    with connect(cfg.source, "source") as s, connect(cfg.target, "target") as t:
        source, target = cluster_facts(s), cluster_facts(t)
        records = Catalog(t, cfg.options.catalog_schema, name).databases()
    return PreflightFacts(
        source, target,
        tuple(source_db_facts(cfg, db) for db in cfg.databases),
        tuple(target_db_facts(cfg, db, db in records and records[db].created_db) for db in cfg.databases))


def capacity(cfg: MigrationConfig, name: str) -> Capacity:
    """The limits the initial copies share (``pace``), each with what others than this migration use."""
    objs = [object_name(name, db) for db in cfg.databases]
    with connect(cfg.target, "target") as t:
        subids = [int(r[0]) for r in t.execute("SELECT oid FROM pg_subscription WHERE subname = ANY(%s)",
                                               (objs,)).fetchall()]
        sync = [sync_slot_pattern(i) for i in subids]
        row = t.execute(
            "SELECT current_setting('max_logical_replication_workers')::int, "
            "current_setting('max_active_replication_origins', true)::int, "
            "current_setting('max_sync_workers_per_subscription')::int, "
            "(SELECT count(*) FILTER (WHERE subid <> ALL(%s)) FROM pg_stat_subscription WHERE pid IS NOT NULL)::int",
            (subids,)).fetchone()
    with connect(cfg.source, "source") as s:
        srow = s.execute(
            "SELECT current_setting('max_replication_slots')::int, "
            "(SELECT count(*) FROM pg_replication_slots WHERE NOT (slot_name = ANY(%(objs)s) "
            "   OR slot_name LIKE ANY(%(sync)s)))::int, "
            "current_setting('max_wal_senders')::int, "
            "(SELECT count(*) FROM pg_stat_replication WHERE NOT (coalesce(application_name, '') = ANY(%(objs)s) "
            "   OR coalesce(application_name, '') LIKE ANY(%(sync)s)))::int",
            {"objs": objs, "sync": sync}).fetchone()
    assert row is not None and srow is not None
    limits = [Limit("source.max_replication_slots", srow[0], srow[1]),
              Limit("source.max_wal_senders", srow[2], srow[3]),
              Limit("target.max_logical_replication_workers", row[0], row[3])]
    if row[1] is not None:  # PostgreSQL 18+: each of those workers holds an origin
        limits.append(Limit("target.max_active_replication_origins", row[1], row[3]))
    return Capacity(tuple(limits), row[2])


def slot_exists(src: psycopg.Connection, slot: str) -> bool:
    return src.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone() is not None


def subscription_row(tgt_db: psycopg.Connection, name: str) -> dict[str, object] | None:
    with tgt_db.cursor(row_factory=dict_row) as cur:
        return cur.execute(sqlfiles.query("subscription_tables"), {"name": name}).fetchone()


def db_progress(cfg: MigrationConfig, name: str, dbname: str, catalog: Catalog) -> DbProgress:
    """Everything that exists for one database of the migration, on both sides and in the catalog."""
    obj = object_name(name, dbname)
    rec = catalog.databases().get(dbname)
    with connect(cfg.target, "target") as t:
        tgt_exists = database_exists(t, dbname)
    with connect(cfg.source, "source", dbname) as s:
        full = cfg.options.no_primary_key.value == "replica_identity_full"
        need = tuple(t.name for t in user_tables(s) if t.needs_identity and (t.identity_index or full))
        pub = s.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (obj,)).fetchone() is not None
        slot = slot_exists(s, obj)
    sub: dict[str, object] | None = None
    if tgt_exists:
        with connect(cfg.target, "target", dbname) as tdb:
            sub = subscription_row(tdb, obj)
    return DbProgress(
        dbname, tgt_exists, bool(rec and rec.created_db), bool(rec and rec.schema_copied), need, pub, slot,
        sub is not None, bool(sub and sub["enabled"]), bool(rec and rec.subscribed),
        int(sub["total"]) if sub else 0, int(sub["synced"]) if sub else 0,  # type: ignore[call-overload]
        bool(sub and sub["worker_running"]), queued=bool(rec and rec.queued))
