"""The source's schema objects that the replica does not have, for ``status --json``.

Views are carried when sqlglot and PostgreSQL accept their translation; triggers,
procedures, functions, packages and events are MySQL code and never carried.  The
listing is read from the source and the target at the time ``status`` asks, not kept
in the catalog: it is never stale after DDL, a ``replica init`` or a view created by
hand on the target, and it needs no state of its own.

For each view of a replicated database that the target schema lacks, the reason is
found the way ``replica init`` and DDL replay would find it: the definition is not
visible, sqlglot cannot translate it (or it reads a database that is not replicated),
or PostgreSQL refuses the translation (tried in a transaction that is rolled back).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import pymysql
from psycopg import sql

from pgbaton.config import MySQLSourceConfig
from pgbaton.mysql import introspect
from pgbaton.mysql.ddl.views import translate_view, view_order

# the keys of the listing, in the order status shows them
KINDS = ("views", "triggers", "procedures", "functions", "packages", "events")


class _RolledBack(Exception):
    """Ends the transaction in which a view's translation is tried."""


def _target_views(conn: psycopg.Connection, schemas: Sequence[str]) -> set[tuple[str, str]]:
    rows = conn.execute("SELECT schemaname, viewname FROM pg_views WHERE schemaname = ANY(%s)",
                        (list(schemas),)).fetchall()
    return {(str(s), str(v)) for s, v in rows}


def _refusal(conn: psycopg.Connection, schema: str, name: str, select: str) -> str | None:
    """PostgreSQL's error for this view's translation, or None when it would take it now."""
    error: str | None = None
    try:
        with conn.transaction():
            conn.execute(sql.SQL("CREATE VIEW {} AS {}").format(
                sql.Identifier(schema, f"pgbaton_try_{name}"[:63]), sql.SQL(select)))
            raise _RolledBack
    except _RolledBack:
        pass
    except psycopg.Error as exc:
        error = str(exc).strip().splitlines()[0][:300]
    return error


def view_reasons(conn: psycopg.Connection, src: MySQLSourceConfig,
                 views: Sequence[tuple[str, str, str]]) -> list[dict[str, str]]:
    """The views of ``views`` (db, name, select) that the target lacks, each with why."""
    present = _target_views(conn, sorted(set(src.databases.values())))
    out: list[dict[str, str]] = []
    for db, name, select in view_order(list(views)):
        schema = src.databases[db]
        if (schema, name) in present:
            continue
        reason: str | None
        if not select:
            reason = "its definition is not visible (grant SHOW VIEW)"
        else:
            view = translate_view(select, db, src.databases)
            if view.select is None:
                reason = view.reason or "not translated"
            else:
                refused = _refusal(conn, schema, name, view.select)
                reason = (f"PostgreSQL refuses the translation: {refused}" if refused else
                          "not on the target yet (its CREATE VIEW is not replayed yet, or failed before "
                          "what it reads existed: see errors)")
        out.append({"name": f"{db}.{name}", "reason": reason})
    conn.commit()
    return out


def listing(conn: psycopg.Connection, my: pymysql.connections.Connection,
            src: MySQLSourceConfig) -> dict[str, Any]:
    """``{"views": [{"name", "reason"}], "triggers": ["db.name", ...], "procedures": ...,
    "functions": ..., "packages": ..., "events": ...}`` for one source."""
    databases = list(src.databases)
    out: dict[str, Any] = {k: [] for k in KINDS}
    try:
        views = introspect.views(my, databases)
        others = introspect.not_carried(my, databases)
    except pymysql.MySQLError as exc:
        return {"error": f"cannot read the source's schema objects: {exc}"}
    out["views"] = view_reasons(conn, src, views)
    for kind, db, name in others:
        key = {"package body": "packages"}.get(kind, kind + "s")
        if key in out and f"{db}.{name}" not in out[key]:
            out[key].append(f"{db}.{name}")
    return out
