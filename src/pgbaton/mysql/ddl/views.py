"""MySQL views in PostgreSQL: the SELECT translated by sqlglot (MySQL to PostgreSQL
dialect), every table it reads moved to the schema its database replicates into.

Pure: ``replica init`` and the DDL executor run the result.  A view that reads a
database that is not replicated, or that sqlglot cannot read, gets a reason instead;
one whose translation PostgreSQL refuses is reported by the executor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from pgbaton.mysql import names
from pgbaton.mysql.ddl import viewfix


@dataclass(frozen=True)
class ViewSql:
    select: str | None          # the PostgreSQL SELECT, or None
    reason: str | None = None   # why there is none


ColumnMaps = Mapping[tuple[str, str], Mapping[str, str]]


def translate_view(select: str, view_db: str, schemas: Mapping[str, str],
                   columns: ColumnMaps | None = None) -> ViewSql:
    """``select`` (MySQL, as the view was defined in ``view_db``) for PostgreSQL, where the
    MySQL databases in ``schemas`` are replicated into the schemas they map to.

    ``columns`` gives, per replicated (db, table), the PostgreSQL names of its columns as
    the catalog recorded them (mysql/names.py); a column of a table it does not know is
    mapped by the rules alone."""
    try:
        tree = sqlglot.parse_one(select, read="mysql")
    except (SqlglotError, ValueError, RecursionError) as exc:
        return ViewSql(None, f"sqlglot cannot read the definition: {str(exc).splitlines()[0][:200]}")
    if not isinstance(tree, exp.Query):
        return ViewSql(None, "the definition is not a query")
    columns = columns or {}
    ctes = {str(c.alias_or_name).lower() for c in tree.find_all(exp.CTE)}
    sources: dict[str, tuple[str, str]] = {}        # name or alias in the query -> (db, table)
    for table in tree.find_all(exp.Table):
        db = table.db or view_db
        if not table.db and table.name.lower() in ctes:
            continue
        if db not in schemas:
            return ViewSql(None, f"it reads {db}.{table.name}, a database that is not replicated")
        sources[str(table.alias_or_name).lower()] = (db, table.name)
        table.set("db", exp.to_identifier(schemas[db], quoted=True))
        table.set("catalog", None)
        if names.natural_table(table.name) != table.name:          # the table's PostgreSQL name
            table.set("this", exp.to_identifier(names.natural_table(table.name), quoted=True))
    only = next(iter(sources.values())) if len(sources) == 1 else None

    def column_name(col: exp.Column) -> str:
        qual = col.args.get("table")
        key = sources.get(qual.name.lower()) if isinstance(qual, exp.Identifier) else only
        recorded = columns.get(key) if key is not None else None
        if recorded is not None:
            for mysql_name, pg in recorded.items():
                if mysql_name.lower() == col.name.lower():
                    return pg
        return names.natural_column(col.name)

    for col in tree.find_all(exp.Column):
        ident = col.args.get("this")
        if isinstance(ident, exp.Identifier) and column_name(col) != ident.name:
            col.set("this", exp.to_identifier(column_name(col), quoted=True))
        qual = col.args.get("table")          # a table's name (or an alias: mapped alike)
        if isinstance(qual, exp.Identifier) and names.natural_table(qual.name) != qual.name:
            col.set("table", exp.to_identifier(names.natural_table(qual.name), quoted=True))
    for alias in tree.find_all(exp.TableAlias):
        ident = alias.args.get("this")
        if isinstance(ident, exp.Identifier) and names.natural_table(ident.name) != ident.name:
            alias.set("this", exp.to_identifier(names.natural_table(ident.name), quoted=True))
    # the view's own column names follow the rules of a table's columns, distinct
    if isinstance(tree, exp.Select):
        outs = [e for e in tree.expressions if isinstance(e, exp.Alias)]
        chosen = names.column_names([a.alias for a in outs]) if len({a.alias.lower() for a in outs}) == len(outs) \
            else {}
        for a in outs:
            if chosen.get(a.alias, a.alias) != a.alias:
                a.set("alias", exp.to_identifier(chosen[a.alias], quoted=True))
    for col in tree.find_all(exp.Column):
        part = col.args.get("db")
        if part is not None:
            name = str(part.name)
            if name not in schemas:
                return ViewSql(None, f"it reads {name}.{col.table}, a database that is not replicated")
            col.set("db", exp.to_identifier(schemas[name], quoted=True))
    try:
        # MySQL rules, PostgreSQL spelling
        return ViewSql(viewfix.adapt(tree).sql(dialect="postgres", identify=True))
    except (SqlglotError, ValueError) as exc:
        return ViewSql(None, f"sqlglot cannot write it for PostgreSQL: {str(exc)[:200]}")


def view_order(views: Sequence[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """(db, name, select) in an order where a view comes after the views it reads
    (by name; a cycle cannot exist in MySQL)."""
    names = {(db, name.lower()) for db, name, _ in views}
    reads: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for db, name, select in views:
        deps: set[tuple[str, str]] = set()
        try:
            tree = sqlglot.parse_one(select, read="mysql")
            for t in tree.find_all(exp.Table):
                key = (t.db or db, t.name.lower())
                if key in names and key != (db, name.lower()):
                    deps.add(key)
        except (SqlglotError, ValueError, RecursionError):
            pass
        reads[(db, name.lower())] = deps
    out: list[tuple[str, str, str]] = []
    done: set[tuple[str, str]] = set()
    pending = list(views)
    while pending:
        ready = [v for v in pending if reads[(v[0], v[1].lower())] <= done] or pending[:1]
        for v in ready:
            out.append(v)
            done.add((v[0], v[1].lower()))
            pending.remove(v)
    return out
