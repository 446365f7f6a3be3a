"""The ``.sql`` files of this package, loaded by name."""

from __future__ import annotations

from functools import cache
from importlib import resources

from psycopg import sql


@cache
def text(name: str) -> str:
    return (resources.files("pgbaton.migrate") / "sql" / f"{name}.sql").read_text(encoding="utf-8")


def query(name: str) -> sql.SQL:
    """A query file used as is (it may hold %(param)s placeholders)."""
    return sql.SQL(text(name))  # type: ignore[arg-type]


def with_schema(name: str, schema: str) -> sql.Composed:
    """A file whose ``{schema}`` placeholders become the quoted catalog schema."""
    return sql.SQL(text(name)).format(schema=sql.Identifier(schema))  # type: ignore[arg-type]
