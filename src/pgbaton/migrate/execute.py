"""Carry out what ``steps`` decided: ``start`` and ``abort`` against the two clusters."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from pgbaton.config import Config, MigrationConfig
from pgbaton.errors import PgbatonError
from pgbaton.migrate import ddl, pace, plan, schema
from pgbaton.migrate.catalog import Catalog
from pgbaton.migrate.lifecycle import Command, Event, State, admit
from pgbaton.migrate.model import Step
from pgbaton.migrate.names import object_name, sync_slot_pattern
from pgbaton.migrate.probe import (
    capacity,
    connect,
    database_exists,
    db_progress,
    preflight_facts,
    subscription_row,
    user_tables,
)
from pgbaton.migrate.steps import next_steps
from pgbaton.migrate.streams import Side, drop_slots_on, reconcile_apply_exemption

log = logging.getLogger(__name__)
Ident = sql.Identifier


@dataclass
class StartResult:
    steps: dict[str, list[str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(self.steps.values())


def start(config: Config, name: str, *, skip_check: bool = False) -> StartResult:
    """Set every database up to stream (idempotent: a rerun does only what is missing)."""
    cfg = config.migration(name)
    with connect(cfg.target, "target") as tconn:
        catalog = Catalog(tconn, cfg.options.catalog_schema, name)
        if catalog.exists():
            catalog.ensure()
        catalog.hold("start")
        state = catalog.state()
        admission = admit(Command.start, state, name)
        if not admission.act:
            raise PgbatonError(admission.message)
        first = state is State.not_started
        if first and not skip_check:
            verdicts = plan.preflight(preflight_facts(cfg, name), cfg.options.no_primary_key)
            if not plan.may_start(verdicts):
                failed = "; ".join(f"{v.database + ': ' if v.database else ''}{v.item}: {v.detail}"
                                   for v in verdicts if v.status.value == "fail")
                raise PgbatonError(f"migration {name}: preflight failed ({failed}); see `migrate check`")
        catalog.ensure()
        catalog.begin(cfg.databases)
        if first and cfg.options.copy_roles:
            schema.copy_roles(cfg)
        result = set_up(cfg, name, catalog)
        catalog.transition(Event.set_up)
    return result


@dataclass
class _Copies:
    """The initial copies ``set_up`` may still begin in this pass (``pace``)."""

    free: int

    def take(self) -> bool:
        if self.free <= 0:
            return False
        self.free -= 1
        return True


def _copies(cfg: MigrationConfig, name: str, catalog: Catalog) -> _Copies:
    allowed = pace.copies_at_once(capacity(cfg, name), len(cfg.databases))
    copying = 0
    for db in cfg.databases:
        if database_exists(catalog.conn, db):
            with connect(cfg.target, "target", db) as t:
                row = subscription_row(t, object_name(name, db))
            if row and row["enabled"] and int(row["synced"]) < int(row["total"]):  # type: ignore[call-overload]
                copying += 1
    return _Copies(pace.to_release(allowed, copying, len(cfg.databases)))


def set_up(cfg: MigrationConfig, name: str, catalog: Catalog) -> StartResult:
    """What ``start`` does for every database, without the state change (``migrate run`` repairs
    the forward stream with it in ``switched_back`` too); the caller holds the migration's lock.

    Initial copies are paced (``pace``): a database whose copy does not fit yet gets its
    subscription disabled (``queued``); a later pass enables it once others have finished."""
    result = StartResult()
    copies = _copies(cfg, name, catalog)
    for db in cfg.databases:
        # the capture comes before the schema copy: DDL from then on is either in the dump or queued
        ddl_source = _ensure_capture(cfg, Side(cfg.source, "source"), db)
        progress = db_progress(cfg, name, db, catalog)
        steps = next_steps(progress)
        result.steps[db] = [s.value for s in steps]
        for step in steps:
            if step is Step.create_subscription and not copies.take():
                log.info("migration %s, database %s: create_subscription, queued (other copies first)", name, db)
                _create_subscription(cfg, name, db, catalog, enabled=False)
                result.steps[db].append("queued")
                continue
            if step is Step.enable_subscription and progress.queued:
                if not copies.take():
                    result.steps[db].remove(step.value)  # still waiting: nothing done
                    continue
                log.info("migration %s, database %s: its turn to copy", name, db)
                _enable_subscription(cfg, name, db, catalog)
                catalog.mark(db, queued=False)
                continue
            log.info("migration %s, database %s: %s", name, db, step.value)
            _STEPS[step](cfg, name, db, catalog)
        if ddl_source and database_exists(catalog.conn, db) and catalog.databases()[db].schema_copied:
            if ddl.install(Side(cfg.target, "target"), db, cfg.options.unreplicable_ddl):
                result.steps[db].append("install_ddl_capture_target")
        if ddl_source == "installed":
            result.steps[db].insert(0, "install_ddl_capture_source")
    return result


def release_queued(config: Config, name: str) -> list[str]:
    """Begin the initial copies that ``start`` queued, as far as there is room now (``set_up``
    does it; this is for a waiter without `migrate run`).  Nothing while another command holds
    the migration (a `migrate run` pass does the same)."""
    cfg = config.migration(name)
    with connect(cfg.target, "target") as tconn:
        catalog = Catalog(tconn, cfg.options.catalog_schema, name)
        if not catalog.exists() or not catalog.lock():
            return []
        try:
            if catalog.state() not in (State.started, State.streaming) or catalog.switch_steps():
                return []
            res = set_up(cfg, name, catalog)
        finally:
            catalog.unlock()
    return [f"{db}: {step}" for db, taken in res.steps.items() for step in taken]


def _ensure_capture(cfg: MigrationConfig, side: Side, db: str) -> str | None:
    """Install the DDL capture when configured: "installed", "present", or None when off / no database."""
    if not cfg.options.ddl_replication:
        return None
    with connect(side.cluster, side.name) as c:
        if not database_exists(c, db):
            return None
    return "installed" if ddl.install(side, db, cfg.options.unreplicable_ddl) else "present"


def _set_replica_identity(cfg: MigrationConfig, name: str, db: str, catalog: Catalog) -> None:
    with connect(cfg.source, "source", db) as s:
        full = cfg.options.no_primary_key.value == "replica_identity_full"
        for t in user_tables(s):
            if t.needs_identity and (t.identity_index or full):
                catalog.record_identity(db, t.name, t.replident)  # recorded first: abort restores it
                ident = sql.SQL("USING INDEX {}").format(sql.SQL(t.identity_index)) if t.identity_index \
                    else sql.SQL("FULL")
                s.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY {}").format(sql.SQL(t.name), ident))


def _drop_target_db(cfg: MigrationConfig, name: str, db: str, catalog: Catalog) -> None:
    with connect(cfg.target, "target") as t:
        t.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(Ident(db)))


def _create_target_db(cfg: MigrationConfig, name: str, db: str, catalog: Catalog) -> None:
    with connect(cfg.source, "source") as s:
        row = s.execute("SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database "
                        "WHERE datname = %s", (db,)).fetchone()
    if row is None:
        raise PgbatonError(f"database {db} does not exist on the source")
    catalog.mark(db, created_db=True)  # intent first: a crash after CREATE still lets abort drop it
    with connect(cfg.target, "target") as t:
        if not database_exists(t, db):
            t.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}")
                      .format(Ident(db), sql.Literal(row[0]), sql.Literal(row[1]), sql.Literal(row[2])))


def _copy_schema(cfg: MigrationConfig, name: str, db: str, catalog: Catalog) -> None:
    if not cfg.options.ddl_replication:
        schema.copy_schema(cfg, db)
    else:
        # dump from a snapshot whose queue entries are known: those are in the dump, not to be run again
        with connect(cfg.source, "source", db) as s:
            s.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            row = s.execute("SELECT pg_export_snapshot()").fetchone()
            assert row is not None
            in_dump = ddl.queue_rows(s)
            schema.copy_schema(cfg, db, snapshot=str(row[0]))
            s.execute("COMMIT")
        target = Side(cfg.target, "target")
        ddl.install(target, db, cfg.options.unreplicable_ddl)
        with connect(cfg.target, "target", db) as t:
            ddl.store(t, in_dump, run=False)
    catalog.mark(db, schema_copied=True)


def _create_publication(cfg: MigrationConfig, name: str, db: str, catalog: Catalog) -> None:
    with connect(cfg.source, "source", db) as s:
        s.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(Ident(object_name(name, db))))


def _create_slot(cfg: MigrationConfig, name: str, db: str, catalog: Catalog) -> None:
    with connect(cfg.source, "source", db) as s:
        s.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (object_name(name, db),))


def _create_subscription(cfg: MigrationConfig, name: str, db: str, catalog: Catalog, *,
                         copy: bool = True, enabled: bool = True) -> None:
    obj = object_name(name, db)
    source = cfg.source.conninfo(db, obj, for_peer=True, what="source")
    src, tgt = Side(cfg.source, "source"), Side(cfg.target, "target")
    for attempt in range(3):
        if copy and cfg.options.ddl_replication:
            # DDL since the schema copy: a table it created must exist before CREATE SUBSCRIPTION lists it
            ddl.catch_up(src, tgt, db)
        try:
            with connect(cfg.target, "target", db) as t:
                # one statement outside any transaction block (autocommit)
                if not enabled:
                    catalog.mark(db, queued=True)  # first: a disabled subscription is then known as queued
                t.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (create_slot = false, "
                                  "slot_name = {}, copy_data = {}, synchronous_commit = 'on', enabled = {})")
                          .format(Ident(obj), sql.Literal(source), Ident(obj), sql.Literal(obj), sql.Literal(copy),
                                  sql.Literal(enabled)))
            break
        except psycopg.errors.UndefinedTable:
            if attempt == 2 or not cfg.options.ddl_replication:
                raise
            log.info("migration %s, database %s: a table was created meanwhile; catching up DDL", name, db)
    catalog.mark(db, subscribed=True)


def _reattach_subscription(cfg: MigrationConfig, name: str, db: str, catalog: Catalog) -> None:
    log.warning("migration %s, database %s: subscription missing; resuming from the slot without a copy", name, db)
    _create_subscription(cfg, name, db, catalog, copy=False)


def _refuse_lost_slot(cfg: MigrationConfig, name: str, db: str, catalog: Catalog) -> None:
    raise PgbatonError(f"migration {name}, database {db}: the subscription and the slot {object_name(name, db)} "
                       "are gone after the initial copy, so changes were lost; run `migrate abort` and start again")


def _enable_subscription(cfg: MigrationConfig, name: str, db: str, catalog: Catalog) -> None:
    with connect(cfg.target, "target", db) as t:
        t.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(Ident(object_name(name, db))))


_STEPS = {
    Step.set_replica_identity: _set_replica_identity,
    Step.drop_partial_target_db: _drop_target_db,
    Step.create_target_db: _create_target_db,
    Step.copy_schema: _copy_schema,
    Step.create_publication: _create_publication,
    Step.create_slot: _create_slot,
    Step.create_subscription: _create_subscription,
    Step.reattach_subscription: _reattach_subscription,
    Step.enable_subscription: _enable_subscription,
    Step.refuse_lost_slot: _refuse_lost_slot,
}


# -- abort ----------------------------------------------------------------------------------
def abort(config: Config, name: str, *, timeout: float = 30.0) -> list[str]:
    """Back to the state before ``start``: slots first, then publications, subscriptions, databases."""
    cfg = config.migration(name)
    done: list[str] = []
    with connect(cfg.target, "target") as tconn:
        catalog = Catalog(tconn, cfg.options.catalog_schema, name)
        if catalog.exists():
            catalog.ensure()
        catalog.hold("abort")
        admission = admit(Command.abort, catalog.state(), name)
        if not admission.act:
            raise PgbatonError(admission.message)
        records = catalog.databases()
        for db in cfg.databases:
            obj = object_name(name, db)
            subid = _disable_subscription(cfg, db, obj) if database_exists(tconn, db) else None
            with connect(cfg.source, "source") as s:
                done += _drop_slots(s, obj, subid, timeout)
            if database_exists(tconn, db):
                done += _drop_subscription(cfg, db, obj)
            with connect(cfg.source, "source", db) as s:
                if s.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (obj,)).fetchone():
                    s.execute(sql.SQL("DROP PUBLICATION {}").format(Ident(obj)))
                    done.append(f"{db}: publication {obj}")
                for table, previous in catalog.identities(db):
                    ident = sql.SQL("NOTHING" if previous == "n" else "DEFAULT")
                    s.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY {}").format(sql.SQL(table), ident))
                    done.append(f"{db}: replica identity of {table} restored")
            done += ddl.uninstall(Side(cfg.source, "source"), db)
            rec = records.get(db)
            if rec and rec.created_db and database_exists(tconn, db):
                tconn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(Ident(db)))
                done.append(f"{db}: target database")
            else:
                done += ddl.uninstall(Side(cfg.target, "target"), db)
        for side in (Side(cfg.source, "source"), Side(cfg.target, "target")):
            done += reconcile_apply_exemption(side, cfg.databases)
        catalog.forget(Event.abort)
    return done


def _disable_subscription(cfg: MigrationConfig, db: str, obj: str) -> int | None:
    with connect(cfg.target, "target", db) as t:
        row = t.execute("SELECT oid FROM pg_subscription WHERE subname = %s AND subdbid = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())", (obj,)).fetchone()
        if row is None:
            return None
        t.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(Ident(obj)))
        return int(row[0])


def _drop_slots(src: psycopg.Connection, obj: str, subid: int | None, timeout: float, *,
                poll: float = 0.1) -> list[str]:
    """Drop the subscription's slot and its table-sync slots, ending walsenders still using them."""
    pattern = sync_slot_pattern(subid) if subid is not None else obj
    return drop_slots_on(src, obj, pattern, timeout, poll=poll)


def _drop_subscription(cfg: MigrationConfig, db: str, obj: str) -> list[str]:
    with connect(cfg.target, "target", db) as t:
        if t.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", (obj,)).fetchone() is None:
            return []
        # the slot is gone already: detach it so that DROP SUBSCRIPTION does not look for it
        t.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(Ident(obj)))
        t.execute(sql.SQL("DROP SUBSCRIPTION {}").format(Ident(obj)))
    return [f"{db}: subscription {obj}"]
