"""Connections to PostgreSQL: one place that turns libpq failures into clear errors."""

from __future__ import annotations

import psycopg
from psycopg import sql

from pgbaton.config import TargetConfig
from pgbaton.errors import TargetUnavailable


def connect(target: TargetConfig, *, autocommit: bool = False, application_name: str = "pgbaton") -> psycopg.Connection:
    """Open a connection to the target; the error never shows the password."""
    try:
        return psycopg.connect(target.conninfo(application_name), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise TargetUnavailable(
            f"cannot connect to the target PostgreSQL at {target.host}:{target.port} "
            f"database {target.dbname} as {target.user}: {detail}"
        ) from None


def qualified(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
