"""Are all of a stream's tables on the subscriber?  Observe, add the missing ones, wait (bounded).

A table created by replicated DDL exists on the subscriber as soon as its DDL entry is
applied, but its rows arrive only once the table is in the subscription
(``REFRESH PUBLICATION`` starts its initial copy).  A switch retires the stream it leaves:
before that, every published table must be synced (``switchover.table_sync`` decides) or
the switch rolls back.
"""

from __future__ import annotations

import logging
import time

import psycopg
from psycopg import sql

from pgbaton.errors import PgbatonError
from pgbaton.migrate.streams import Side, rw
from pgbaton.migrate.switchover import TableSync, table_sync

log = logging.getLogger(__name__)

_PUBLISHED = "SELECT format('%%I.%%I', schemaname, tablename) FROM pg_publication_tables WHERE pubname = %s"
_SUBSCRIBED = ("SELECT format('%%I.%%I', n.nspname, c.relname), r.srsubstate::text FROM pg_subscription s "
               "JOIN pg_subscription_rel r ON r.srsubid = s.oid JOIN pg_class c ON c.oid = r.srrelid "
               "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE s.subname = %s AND s.subdbid = "
               "(SELECT oid FROM pg_database WHERE datname = current_database())")
_PRESENT = "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL"
_QUEUE = "SELECT node, id FROM pgbaton_ddl.queue"


# the tables a FOR ALL TABLES publication takes (permanent tables outside the system schemas): a
# table created, dropped or made logged changes the count or the sum of their oids
_SIGNATURE = ("SELECT count(*), coalesce(sum(c.oid::int8), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = "
              "c.relnamespace WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p' "
              "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'")


def signature(conn: psycopg.Connection) -> tuple[int, int]:
    """What a publication FOR ALL TABLES of this database could take, in one cheap query: equal
    before and after means no table came or went in between (a rename keeps the subscription's
    table, which is known by its oid)."""
    row = conn.execute(_SIGNATURE).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _queue(conn: psycopg.Connection) -> set[tuple[str, int]]:
    row = conn.execute("SELECT to_regclass('pgbaton_ddl.queue') IS NOT NULL").fetchone()
    if not (row and row[0]):
        return set()
    return {(str(n), int(i)) for n, i in conn.execute(_QUEUE).fetchall()}


Conns = tuple[psycopg.Connection, psycopg.Connection]


def observe(pub: Side, sub: Side, db: str, obj: str, conns: Conns | None = None) -> TableSync:
    """The tables of publication ``obj`` on ``pub`` against subscription ``obj`` on ``sub``
    (on ``conns``, sessions of ``db`` on each side, when given)."""
    if conns is None:
        with rw(pub, db) as p, rw(sub, db) as s:
            return observe(pub, sub, db, obj, (p, s))
    p, s = conns
    published = {str(r[0]) for r in p.execute(_PUBLISHED, (obj,)).fetchall()}
    old_queue = _queue(p)
    subscribed = {str(r[0]): str(r[1]) for r in s.execute(_SUBSCRIBED, (obj,)).fetchall()}
    present = {str(r[0]) for r in s.execute(_PRESENT, (sorted(published),)).fetchall()}
    new_queue = _queue(s)
    return table_sync(published, subscribed, present, old_queue, new_queue)


def refresh(sub: Side, db: str, obj: str, conn: psycopg.Connection | None = None) -> None:
    """Add the published tables the subscription lacks; their rows are copied from now on."""
    if conn is None:
        with rw(sub, db) as s:
            return refresh(sub, db, obj, s)
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} REFRESH PUBLICATION WITH (copy_data = true)")
                 .format(sql.Identifier(obj)))
    return None


def complete(pub: Side, sub: Side, db: str, obj: str, timeout: float, *, poll: float = 0.05,
             conns: Conns | None = None) -> dict[str, object]:
    """Until every table ``pub`` publishes is synced on ``sub`` and every DDL entry applied there;
    what was added.  Raises once ``timeout`` passes, or at once when a table is missing on ``sub``
    (the caller rolls the switch back).  Only for a frozen
    ``pub`` whose stream has applied up to its marker."""
    deadline = time.monotonic() + timeout
    added: list[str] = []
    while True:
        state = observe(pub, sub, db, obj, conns)
        if state.complete:
            if state.ddl_behind:
                log.warning("%s: %s: %d DDL command(s) of the %s never reached it (run there before this stream "
                            "existed)", sub.name, db, state.ddl_behind, pub.name)
            return {"added": added, "ddl_not_carried": state.ddl_behind}
        if state.absent:
            # the old side is frozen and applied up to its marker: every DDL entry before it is applied
            # already, so waiting would not help (DDL replication off, or DDL run on one side only)
            raise PgbatonError(f"database {db}: the {sub.name} lacks tables the {pub.name} has ({state.describe()}): "
                               "create them there, then switch again")
        if state.refresh:
            log.info("%s: %s: tables not in the subscription yet, copying them now: %s", sub.name, db,
                     ", ".join(state.refresh))
            refresh(sub, db, obj, conns[1] if conns else None)
            added += state.refresh
            continue
        if time.monotonic() > deadline:
            raise PgbatonError(f"database {db}: the {sub.name} does not hold every table of the {pub.name} "
                               f"after {timeout:.0f} s ({state.describe()})")
        time.sleep(poll)
