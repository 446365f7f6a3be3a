"""The two directions of a migration and what both share: one logical stream per database.

A *leg* is a direction of the switchover: clients leave ``old`` for ``new``; the stream that
carries ``old`` -> ``new`` (``stream``) is retired and the one ``new`` -> ``old`` (``back``)
is set up in its place.  The forward leg is ``switchover``, the backward one ``switchback``.
Every helper here works on any direction: publisher, subscriber and suffix are parameters.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgbaton.config import ClusterConfig, MigrationConfig
from pgbaton.errors import PgbatonError
from pgbaton.migrate import sqlfiles
from pgbaton.migrate.lifecycle import Command, Event, State
from pgbaton.migrate.model import DbProgress, DbStatus
from pgbaton.migrate.names import object_name, sync_slot_pattern
from pgbaton.migrate.probe import connect, slot_exists, subscription_row
from pgbaton.migrate.steps import db_state

log = logging.getLogger(__name__)
Ident = sql.Identifier
FWD, REV = "fwd", "rev"
# migration states (catalog ``migration.state``; all of them in ``lifecycle``)
STREAMING, SWITCHED, SWITCHED_BACK = State.streaming, State.switched, State.switched_back


@dataclass(frozen=True)
class Side:
    cluster: ClusterConfig
    name: str  # "source" or "target": for messages and password lookup


@dataclass(frozen=True)
class Leg:
    """One direction of the switchover."""

    old: Side            # where the clients are before
    new: Side            # where they are after
    stream: str          # suffix of the stream old -> new, retired
    back: str            # suffix of the stream new -> old, created
    state_after: State   # the migration's state once done
    record_prefix: str   # switchover_step keys of this leg
    command: str         # the CLI verb, for messages
    verb: Command
    begin: Event         # the transitions of the catalog: the switch begins, is done, is undone
    done: Event
    undo: Event
    during: State        # the state while it is under way


def forward(cfg: MigrationConfig) -> Leg:
    return Leg(Side(cfg.source, "source"), Side(cfg.target, "target"), FWD, REV, SWITCHED, "", "switchover",
               Command.switchover, Event.begin_switchover, Event.switched_over, Event.undo_switchover,
               State.switching_over)


def backward(cfg: MigrationConfig) -> Leg:
    return Leg(Side(cfg.target, "target"), Side(cfg.source, "source"), REV, FWD, SWITCHED_BACK, "back:",
               "switchback", Command.switchback, Event.begin_switchback, Event.switched_back,
               Event.undo_switchback, State.switching_back)


def publisher(cfg: MigrationConfig, direction: str) -> Side:
    return Side(cfg.source, "source") if direction == FWD else Side(cfg.target, "target")


def subscriber(cfg: MigrationConfig, direction: str) -> Side:
    return Side(cfg.target, "target") if direction == FWD else Side(cfg.source, "source")


def rw(side: Side, db: str | None = None) -> psycopg.Connection:
    """A session of pgbaton's own that may write although the databases are frozen."""
    conn = connect(side.cluster, side.name, db)
    conn.execute("SET default_transaction_read_only = off")
    return conn


def major(side: Side) -> int:
    with connect(side.cluster, side.name) as c:
        row = c.execute("SELECT current_setting('server_version_num')::int").fetchone()
    return int(row[0]) // 10000 if row else 0


# -- creating and dropping a stream ----------------------------------------------------------------
def create_publisher_end(pub: Side, db: str, obj: str, conn: psycopg.Connection | None = None) -> None:
    """Publication ``FOR ALL TABLES`` and a pgoutput slot (each only if missing); on ``conn``, a
    read-write session of ``db`` on ``pub``, when given."""
    if conn is None:
        with rw(pub, db) as p:
            return create_publisher_end(pub, db, obj, p)
    if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (obj,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(Ident(obj)))
    if not slot_exists(conn, obj):
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (obj,))
    return None


def end_workers(conn: psycopg.Connection, subid: int, what: str, timeout: float) -> None:
    """After ``ALTER SUBSCRIPTION ... DISABLE`` committed: until no worker of the subscription runs.

    PostgreSQL 16+ wakes the workers at the commit of the change; PostgreSQL 15 does not, and an
    apply worker with nothing to receive notices it only at the end of its wait (up to a second).
    So the workers still there are ended (``pg_terminate_backend``): the launcher does not start
    them again for a disabled subscription, and what they applied is committed with its origin
    position (the next start resumes exactly there, as after a crash).
    """
    deadline = time.monotonic() + timeout
    while True:
        pids = [int(r[0]) for r in conn.execute(
            "SELECT pid FROM pg_stat_subscription WHERE subid = %s AND pid IS NOT NULL", (subid,)).fetchall()]
        if not pids:
            return
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        if time.monotonic() > deadline:
            raise PgbatonError(f"{what} did not stop within {timeout:.0f} s")
        time.sleep(0.005)


LEGACY_APPLY_ROLE = "pgbaton_apply"  # the role earlier builds made for streams into frozen databases; dropped


def is_frozen(conn: psycopg.Connection, db: str) -> bool:
    """Is ``db`` frozen by a switch (``default_transaction_read_only = on`` for the database)?"""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                       "WHERE d.datname = %s AND s.setrole = 0 "
                       "AND 'default_transaction_read_only=on' = ANY(s.setconfig))", (db,)).fetchone()
    return bool(row and row[0])


_EXEMPT = "default_transaction_read_only=off"


def _exempt_dbs(conn: psycopg.Connection, dbs: list[str]) -> set[str]:
    """Those of ``dbs`` where the connecting user has ``default_transaction_read_only = off``."""
    return {str(r[0]) for r in conn.execute(
        "SELECT d.datname FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
        "JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = current_user AND d.datname = ANY(%s) "
        "AND %s = ANY(s.setconfig)", (dbs, _EXEMPT)).fetchall()}


def apply_may_write(sub: Side, db: str, conn: psycopg.Connection | None = None, *, on: bool = True) -> None:
    """Let the apply workers of streams into ``db``, frozen read-only by a switch, run DDL there.

    Rows are applied below the read-only check, DDL is not.  Every subscription belongs to the
    user pgbaton connects as, and its worker reads that user's per-database settings when it
    starts: ``default_transaction_read_only = off`` for this user in this database overrides the
    database's ``on``.  pgbaton creates no role for this (one of its own would need LOGIN:
    PostgreSQL starts no apply worker for a role without it).  The price: other sessions of the
    same user in the frozen database are read-write by default too, so clients should not share
    it (``migrate check`` warns when they do).  ``reconcile_apply_exemption`` keeps the setting
    exactly where a stream into a frozen database needs it.  ``conn``: a session of pgbaton's on
    ``sub`` to use (autocommit), else one is opened.  ``on=False``: the setting reset.
    """
    stmt = sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET default_transaction_read_only = off" if on else
                   "ALTER ROLE CURRENT_USER IN DATABASE {} RESET default_transaction_read_only").format(Ident(db))
    if conn is not None:
        conn.execute(stmt)
        return
    with rw(sub) as c:
        if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is not None:
            c.execute(stmt)


def reconcile_apply_exemption(side: Side, dbs: list[str]) -> list[str]:
    """The connecting user's read-write setting exactly in those of ``dbs`` that are frozen and
    hold a subscription of pgbaton (set where missing, reset elsewhere); and the role
    ``pgbaton_apply`` of earlier versions, where it is left, handed over and dropped."""
    done: list[str] = []
    with rw(side) as c:
        user = str(c.execute("SELECT current_user").fetchone()[0])  # type: ignore[index]
        present = [str(r[0]) for r in c.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)",
                                                 (dbs,)).fetchall()]
        with_sub = {str(r[0]) for r in c.execute(
            "SELECT d.datname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
            "WHERE d.datname = ANY(%s) AND s.subname LIKE 'pgbaton\\_%%'", (present,)).fetchall()}
        needed = {db for db in with_sub if is_frozen(c, db)}
        exempt = _exempt_dbs(c, present)
        for db in sorted(needed - exempt):
            apply_may_write(side, db, c)
            # a worker that started before reads the setting only when it starts again
            c.execute("SELECT pg_terminate_backend(w.pid) FROM pg_stat_subscription w JOIN pg_subscription s "
                      "ON s.oid = w.subid JOIN pg_database d ON d.oid = s.subdbid "
                      "WHERE d.datname = %s AND s.subname LIKE 'pgbaton\\_%%' AND w.pid IS NOT NULL", (db,))
            done.append(f"{side.name}: {db}: read-write setting of {user} for the stream into the frozen database")
        for db in sorted(exempt - needed):
            apply_may_write(side, db, c, on=False)
            done.append(f"{side.name}: {db}: read-write setting of {user}")
        legacy = c.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (LEGACY_APPLY_ROLE,)).fetchone()
    if legacy is not None:
        done += _drop_legacy_role(side, present, int(legacy[0]))
    return done


def _drop_legacy_role(side: Side, dbs: list[str], oid: int) -> list[str]:
    """Subscriptions of ``pgbaton_apply`` go to the connecting user (their workers restarted to run
    as it), then what the role owns in ``dbs``, then the role goes (unless it owns more elsewhere)."""
    done: list[str] = []
    for db in dbs:
        with rw(side, db) as d:
            subs = d.execute("SELECT s.subname, (SELECT array_agg(w.pid) FROM pg_stat_subscription w "
                             "WHERE w.subid = s.oid AND w.pid IS NOT NULL) FROM pg_subscription s "
                             "WHERE s.subowner = %s AND s.subdbid = (SELECT oid FROM pg_database "
                             "WHERE datname = current_database())", (oid,)).fetchall()
            for sub, pids in subs:
                d.execute(sql.SQL("ALTER SUBSCRIPTION {} OWNER TO CURRENT_USER").format(Ident(str(sub))))
                if pids:
                    d.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
                done.append(f"{side.name}: {db}: subscription {sub} handed to the connecting user")
            d.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(Ident(LEGACY_APPLY_ROLE)))
    with rw(side) as c:
        for db in dbs:
            c.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(Ident(LEGACY_APPLY_ROLE), Ident(db)))
        try:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(Ident(LEGACY_APPLY_ROLE)))
        except psycopg.errors.DependentObjectsStillExist as exc:
            log.warning("%s: role %s kept: %s", side.name, LEGACY_APPLY_ROLE, str(exc).strip().splitlines()[0])
            return done
    done.append(f"{side.name}: role {LEGACY_APPLY_ROLE}")
    return done


def create_subscriber_end(pub: Side, sub: Side, db: str, obj: str, *, origin_none: bool,
                          frozen: bool | None = None) -> None:
    """A subscription without copy on the existing slot (only if missing; enabled if disabled).

    It belongs to the connecting user.  Into a frozen database that user's read-write setting
    there is made first (``apply_may_write``: the worker reads it when it starts).
    ``frozen``: a switch that knows and handles the setting itself (``_open_back`` makes it;
    after a rollback ``reconcile_apply_exemption`` does); nothing is made here then.
    """
    if frozen is None:
        with rw(sub) as c:
            frozen = is_frozen(c, db)
        if frozen:
            apply_may_write(sub, db)
    with rw(sub, db) as s:
        row = s.execute("SELECT subenabled FROM pg_subscription WHERE subname = %s", (obj,)).fetchone()
        if row is not None and row[0]:
            return
        if row is None:
            # origin = none (PostgreSQL 16+) keeps changes that came in by replication from echoing back
            origin = sql.SQL(", origin = 'none'") if origin_none else sql.SQL("")
            conninfo = pub.cluster.conninfo(db, obj, for_peer=True, what=pub.name)
            s.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (create_slot = false, "
                              "slot_name = {}, copy_data = false, synchronous_commit = 'on'{})")
                      .format(Ident(obj), sql.Literal(conninfo), Ident(obj), sql.Literal(obj), origin))
            return
        s.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(Ident(obj)))


def disable_subscription(sub: Side, db: str, obj: str) -> int | None:
    """Disable it; its oid (for the table-sync slot names), or None when there is none."""
    with rw(sub) as c:
        if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is None:
            return None
    with rw(sub, db) as s:
        row = s.execute("SELECT oid, subenabled FROM pg_subscription WHERE subname = %s AND subdbid = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())", (obj,)).fetchone()
        if row is None:
            return None
        if row[1]:
            s.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(Ident(obj)))
        return int(row[0])


def drop_slots(pub: Side, obj: str, subid: int | None, timeout: float, *, poll: float = 0.01) -> list[str]:
    """Drop the slot ``obj`` and the subscription's table-sync slots, ending walsenders holding them."""
    pattern = sync_slot_pattern(subid) if subid is not None else obj
    with rw(pub) as p:
        return drop_slots_on(p, obj, pattern, timeout, poll=poll, label=f"{pub.name}: ")


def drop_slots_on(conn: psycopg.Connection, obj: str, pattern: str, timeout: float, *, poll: float,
                  label: str = "") -> list[str]:
    """On the publishing connection: drop slot ``obj`` and slots LIKE ``pattern``, ending walsenders
    that still hold them; returns what was dropped."""
    dropped: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        rows = conn.execute("SELECT slot_name, active_pid FROM pg_replication_slots "
                            "WHERE slot_name = %s OR slot_name LIKE %s", (obj, pattern)).fetchall()
        if not rows:
            return dropped
        for slot, pid in rows:
            try:
                if pid is not None:
                    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    continue
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                dropped.append(f"{label}slot {slot}")
            except psycopg.errors.ObjectInUse:
                pass  # a walsender took it again; the next pass ends it
        if time.monotonic() > deadline:
            raise PgbatonError(f"could not drop replication slots {[r[0] for r in rows]} within {timeout:.0f} s")
        time.sleep(poll)


def drop_subscription(sub: Side, db: str, obj: str) -> list[str]:
    """Detach from the slot (dropped already, or to be dropped by the caller) and drop."""
    with rw(sub) as c:
        if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is None:
            return []
    with rw(sub, db) as s:
        if s.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", (obj,)).fetchone() is None:
            return []
        s.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(Ident(obj)))
        s.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(Ident(obj)))
        s.execute(sql.SQL("DROP SUBSCRIPTION {}").format(Ident(obj)))
    return [f"{sub.name}: {db}: subscription {obj}"]


def drop_publication(pub: Side, db: str, obj: str) -> list[str]:
    with rw(pub) as c:
        if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is None:
            return []
    with rw(pub, db) as p:
        if p.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (obj,)).fetchone() is None:
            return []
        p.execute(sql.SQL("DROP PUBLICATION {}").format(Ident(obj)))
    return [f"{pub.name}: {db}: publication {obj}"]


def retire(cfg: MigrationConfig, name: str, db: str, direction: str, timeout: float) -> list[str]:
    """The whole stream of one database in one direction: slots first, then subscription, publication.

    Four connections (a switch runs this inside the clients' pause): the subscriber's and the
    publisher's maintenance databases, and ``db`` on each side where it exists.
    """
    pub, sub = publisher(cfg, direction), subscriber(cfg, direction)
    obj = object_name(name, db, direction)
    done: list[str] = []
    with rw(sub) as sc:
        on_sub = sc.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is not None
    subid: int | None = None
    sconn = rw(sub, db) if on_sub else None
    try:
        if sconn is not None:
            row = sconn.execute("SELECT oid, subenabled FROM pg_subscription WHERE subname = %s AND subdbid = "
                                "(SELECT oid FROM pg_database WHERE datname = current_database())",
                                (obj,)).fetchone()
            if row is not None:
                subid = int(row[0])
                if row[1]:
                    sconn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(Ident(obj)))
        with rw(pub) as pc:
            on_pub = pc.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is not None
            pattern = sync_slot_pattern(subid) if subid is not None else obj
            done += drop_slots_on(pc, obj, pattern, timeout, poll=0.01, label=f"{pub.name}: ")
        if sconn is not None and subid is not None:
            sconn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(Ident(obj)))
            sconn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(Ident(obj)))
            done.append(f"{sub.name}: {db}: subscription {obj}")
    finally:
        if sconn is not None:
            sconn.close()
    if on_pub:
        with rw(pub, db) as p:
            if p.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (obj,)).fetchone() is not None:
                p.execute(sql.SQL("DROP PUBLICATION {}").format(Ident(obj)))
                done.append(f"{pub.name}: {db}: publication {obj}")
    return done


# -- status of a stream ------------------------------------------------------------------------------
def stream_status(cfg: MigrationConfig, name: str, db: str, direction: str) -> DbStatus:
    """State, tables, lag of one database's stream in ``direction``.

    Lag is measured on the publisher: its current WAL position against the slot's
    ``confirmed_flush_lsn`` (what the subscriber applied and flushed: it commits synchronously).
    """
    pub, sub = publisher(cfg, direction), subscriber(cfg, direction)
    obj = object_name(name, db, direction)
    with connect(pub.cluster, pub.name, db) as p, p.cursor(row_factory=dict_row) as cur:
        has_pub = cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (obj,)).fetchone() is not None
        lag = cur.execute(sqlfiles.query("slot_lag"), {"slot": obj}).fetchone()
    with connect(sub.cluster, sub.name, db) as s:
        row = subscription_row(s, obj)
        stats = s.execute("SELECT apply_error_count, sync_error_count FROM pg_stat_subscription_stats "
                          "WHERE subname = %s", (obj,)).fetchone() if row else None
    progress = DbProgress(db, True, False, True, (), has_pub, lag is not None, row is not None,
                          bool(row and row["enabled"]), row is not None,
                          int(row["total"]) if row else 0, int(row["synced"]) if row else 0,  # type: ignore[call-overload]
                          bool(row and row["worker_running"]))
    lag_bytes = int(lag["lag_bytes"]) if lag and lag["lag_bytes"] is not None else None
    seconds = lag["replay_lag_seconds"] if lag else None
    if seconds is None and lag_bytes == 0:
        seconds = 0.0  # caught up: nothing in flight
    errors = [f"{stats[0]} apply error(s), {stats[1]} table sync error(s): see the {sub.name}'s server log"] \
        if stats and (stats[0] or stats[1]) else []
    return DbStatus(db, db_state(progress), progress.tables_synced, progress.tables_total, lag_bytes,
                    float(seconds) if seconds is not None else None,
                    str(lag["source_lsn"]) if lag else None,
                    str(lag["confirmed_flush_lsn"]) if lag and lag["confirmed_flush_lsn"] else None,
                    errors, direction="reverse" if direction == REV else "forward")
