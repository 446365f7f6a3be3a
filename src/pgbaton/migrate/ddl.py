"""In-band DDL replication: install and remove the capture on a database, and the few steps
that must happen outside the stream (see ``sql/ddl_install.sql`` for how it works).

Outside the stream there are only three moments:
- the schema copy: queue entries the dump already reflects are stored on the target, not run;
- before a subscription exists: entries captured since the dump are run on the target directly;
- a table created by replicated DDL is added to the subscription (``REFRESH PUBLICATION`` cannot
  run inside the apply worker); its rows are copied then, so none is lost.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

from pgbaton.migrate import sqlfiles
from pgbaton.migrate.probe import connect, database_exists
from pgbaton.migrate.streams import Side, rw

log = logging.getLogger(__name__)

SCHEMA = "pgbaton_ddl"
EVENT_TRIGGERS = ("pgbaton_ddl_end", "pgbaton_ddl_drop")
VERSION = "pgbaton ddl capture v2"
Ident = sql.Identifier


def _script(policy: str) -> str:
    if policy not in ("error", "warn"):
        raise ValueError(f"unreplicable_ddl policy {policy!r}")
    return sqlfiles.text("ddl_install").replace("__POLICY__", policy)


def is_installed(conn: psycopg.Connection, policy: str) -> bool:
    """Schema of this version with this policy, both event triggers enabled, the apply trigger REPLICA."""
    row = conn.execute(
        "SELECT obj_description(n.oid, 'pg_namespace') = %s, "
        "       (SELECT count(*) FROM pg_event_trigger WHERE evtname = ANY(%s) AND evtenabled = 'O'), "
        "       (SELECT tgenabled FROM pg_trigger WHERE tgname = 'apply_ddl' "
        "         AND tgrelid = to_regclass('pgbaton_ddl.queue')) = 'R', "
        "       to_regprocedure('pgbaton_ddl.unreplicable_policy()') IS NOT NULL "
        "FROM pg_namespace n WHERE n.nspname = %s",
        (f"{VERSION}", list(EVENT_TRIGGERS), SCHEMA)).fetchone()
    if row is None or not (row[0] and row[1] == len(EVENT_TRIGGERS) and row[2] and row[3]):
        return False
    current = conn.execute("SELECT pgbaton_ddl.unreplicable_policy()").fetchone()
    return bool(current and current[0] == policy)


def install(side: Side, db: str, policy: str) -> bool:
    """Install or repair the capture in ``db`` of ``side``; True when something was (re)created."""
    with rw(side, db) as c:
        if is_installed(c, policy):
            return False
        with c.transaction():
            c.execute("SELECT pg_advisory_xact_lock(hashtext('pgbaton_ddl_install'))")
            c.execute(_script(policy))  # type: ignore[arg-type]  # a trusted file of this package
            c.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(Ident(SCHEMA), sql.Literal(VERSION)))
    log.info("%s: %s: DDL capture installed", side.name, db)
    return True


def uninstall(side: Side, db: str) -> list[str]:
    """Remove the event triggers, then the schema with the queue; what was removed."""
    with connect(side.cluster, side.name) as c:
        if not database_exists(c, db):
            return []
    done: list[str] = []
    with rw(side, db) as c:
        for name in EVENT_TRIGGERS:
            if c.execute("SELECT 1 FROM pg_event_trigger WHERE evtname = %s", (name,)).fetchone():
                c.execute(sql.SQL("DROP EVENT TRIGGER {}").format(Ident(name)))
                done.append(f"{side.name}: {db}: event trigger {name}")
        if c.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,)).fetchone():
            c.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(Ident(SCHEMA)))
            done.append(f"{side.name}: {db}: schema {SCHEMA} (DDL queue)")
    return done


def queue_rows(conn: psycopg.Connection) -> list[str]:
    """Every queue entry visible to ``conn``'s snapshot, each as the text of its row."""
    if not _has_queue(conn):
        return []
    return [str(r[0]) for r in conn.execute("SELECT q FROM pgbaton_ddl.queue q ORDER BY q.at, q.id").fetchall()]


def store(conn: psycopg.Connection, rows: list[str], *, run: bool) -> int:
    """Put queue entries of another node into this node's queue; with ``run`` they are run too
    (as the apply worker does), else only kept (they came with the schema copy).  Entries
    present already are passed over.  How many were new."""
    if not rows:
        return 0
    n = 0
    with conn.transaction():
        # replica: the apply trigger fires, as in the apply worker; origin: it does not
        conn.execute(f"SET LOCAL session_replication_role = {'replica' if run else 'origin'}")
        for row in rows:
            cur = conn.execute("INSERT INTO pgbaton_ddl.queue SELECT (%s::pgbaton_ddl.queue).* "
                               "ON CONFLICT DO NOTHING", (row,))
            n += cur.rowcount
    return n


def catch_up(pub: Side, sub: Side, db: str) -> int:
    """Run on ``sub`` the queue entries of ``pub`` it does not hold yet, in queue order.

    Only for the moment before a subscription exists: afterwards the stream carries them.
    """
    with rw(pub, db) as p:
        rows = queue_rows(p)
    with rw(sub, db) as s:
        n = store(s, rows, run=True)
    if n:
        log.info("%s: %s: %d DDL command(s) captured before the subscription run directly", sub.name, db, n)
    return n


def refresh_new_tables(pub: Side, sub: Side, db: str, obj: str) -> list[str]:
    """Add tables the publication has and the subscription lacks (created by replicated DDL).

    Waits (returns nothing) while one of them does not exist on the subscriber yet.
    """
    with connect(pub.cluster, pub.name, db) as p:
        published = {str(r[0]) for r in p.execute(
            "SELECT format('%%I.%%I', schemaname, tablename) FROM pg_publication_tables WHERE pubname = %s",
            (obj,)).fetchall()}
    if not published:
        return []
    with rw(sub, db) as s:
        sub_row = s.execute("SELECT oid, subenabled FROM pg_subscription WHERE subname = %s", (obj,)).fetchone()
        if sub_row is None or not sub_row[1]:
            return []
        subscribed = {str(r[0]) for r in s.execute(
            "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_subscription_rel r "
            "JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE r.srsubid = %s", (sub_row[0],)).fetchall()}
        missing = sorted(published - subscribed)
        if not missing:
            return []
        absent = [t for t in missing
                  if s.execute("SELECT to_regclass(%s) IS NULL", (t,)).fetchone() == (True,)]
        if absent:
            log.debug("%s: %s: waiting for replicated DDL to create %s", sub.name, db, ", ".join(absent))
            return []
        s.execute(sql.SQL("ALTER SUBSCRIPTION {} REFRESH PUBLICATION WITH (copy_data = true)").format(Ident(obj)))
    log.info("%s: %s: new table(s) added to subscription %s: %s", sub.name, db, obj, ", ".join(missing))
    return missing


def _has_queue(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('pgbaton_ddl.queue') IS NOT NULL").fetchone()
    return bool(row and row[0])
