"""Read table definitions from a MySQL/MariaDB information_schema.

One query per information_schema table (TABLES, COLUMNS, STATISTICS and, on
MariaDB, CHECK_CONSTRAINTS to recognise JSON columns), whatever the number of
tables.  The result is the ``MyTable`` model the rest of pgbaton works from.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import pymysql
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from pgbaton.mysql.model import MyColumn, MyIndex, MyTable

log = logging.getLogger(__name__)

_TABLES_SQL = """
SELECT TABLE_SCHEMA, TABLE_NAME, ENGINE, AUTO_INCREMENT, TABLE_COMMENT
  FROM information_schema.TABLES
 WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA IN ({marks})
 ORDER BY TABLE_SCHEMA, TABLE_NAME"""

_COLUMNS_SQL = """
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, DATA_TYPE, COLUMN_TYPE,
       IS_NULLABLE, COLUMN_DEFAULT, EXTRA, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION,
       NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME, COLLATION_NAME,
       GENERATION_EXPRESSION, COLUMN_COMMENT
  FROM information_schema.COLUMNS
 WHERE TABLE_SCHEMA IN ({marks})
 ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"""

_STATISTICS_SQL = """
SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART,
       INDEX_TYPE
  FROM information_schema.STATISTICS
 WHERE TABLE_SCHEMA IN ({marks})
 ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"""

_CHECKS_SQL = """
SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE, CONSTRAINT_NAME, LEVEL
  FROM information_schema.CHECK_CONSTRAINTS
 WHERE CONSTRAINT_SCHEMA IN ({marks})"""

_FOREIGN_KEYS_SQL = """
SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME
  FROM information_schema.KEY_COLUMN_USAGE k
 WHERE k.TABLE_SCHEMA IN ({marks}) AND k.REFERENCED_TABLE_NAME IS NOT NULL
 ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION"""

# the SRID declared for a geometry column: MariaDB's REF_SYSTEM_ID (not checked by the
# server), MySQL 8's SRID attribute (checked; NULL when the column has none)
_SRIDS_SQL = {
    True: """
SELECT G_TABLE_SCHEMA, G_TABLE_NAME, G_GEOMETRY_COLUMN, SRID
  FROM information_schema.GEOMETRY_COLUMNS
 WHERE G_TABLE_SCHEMA IN ({marks}) AND SRID <> 0""",
    False: """
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, SRS_ID
  FROM information_schema.COLUMNS
 WHERE TABLE_SCHEMA IN ({marks}) AND SRS_ID IS NOT NULL""",
}

# keys of MyTable.extra that replicated DDL keeps up to date (see mysql/ddl/alter.py)
FOREIGN_KEYS = "foreign_keys"      # names of the table's foreign key constraints
FK_INDEXES = "fk_indexes"          # indexes InnoDB created by itself for a foreign key
CHECKS = "checks"                  # table-level CHECK constraints: name -> column it makes JSON, or ""

Key = tuple[str, str]


def _text(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, bytes | bytearray) else str(v)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _query(conn: pymysql.connections.Connection, sql: str, databases: Sequence[str]) -> list[tuple[Any, ...]]:
    marks = ", ".join(["%s"] * len(databases))
    with conn.cursor() as cur:
        cur.execute(sql.format(marks=marks), tuple(databases))
        return list(cur.fetchall())


def _is_mariadb(conn: pymysql.connections.Connection) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        row = cur.fetchone()
    return row is not None and "mariadb" in _text(row[0]).lower()


def _mysql_default(default: str | None, data_type: str, extra: str) -> str | None:
    """MySQL 8 reports string defaults unquoted and expressions with DEFAULT_GENERATED;
    bring them into MariaDB's form (quoted strings, NULL as a word) that typemap reads."""
    if default is None:
        return "NULL"
    if "default_generated" in extra.lower() or default.lower().startswith("b'"):
        return default
    numeric = data_type in ("tinyint", "smallint", "mediumint", "int", "bigint", "decimal",
                            "float", "double", "year")
    return default if numeric else "'" + default.replace("\\", "\\\\").replace("'", "''") + "'"


def json_check_column(clause: str) -> str | None:
    """The column a CHECK clause makes JSON: exactly ``json_valid(col)``, else None.

    MariaDB's JSON type is LONGTEXT with such a check; ``replica init`` and replicated
    DDL both decide with this function whether a LONGTEXT column is JSON."""
    try:
        node = sqlglot.parse_one(clause, read="mysql")
    except (SqlglotError, ValueError):
        return None
    while isinstance(node, exp.Paren):
        node = node.this
    if (isinstance(node, exp.Anonymous) and str(node.this).lower() == "json_valid"
            and len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Column)
            and not node.expressions[0].table):
        return str(node.expressions[0].name)
    return None


def is_json_column(data_type: str, has_json_check: bool) -> bool:
    return data_type == "longtext" and has_json_check


def _checks(conn: pymysql.connections.Connection, databases: Sequence[str]
            ) -> tuple[set[tuple[str, str, str]], dict[Key, dict[str, str]]]:
    """(columns made JSON by a check, table-level checks per table: name -> JSON column or "")."""
    found: set[tuple[str, str, str]] = set()
    table_checks: dict[Key, dict[str, str]] = defaultdict(dict)
    for db, table, clause, name, level in _query(conn, _CHECKS_SQL, databases):
        col = json_check_column(_text(clause))
        if col is not None:
            found.add((_text(db), _text(table), col))
        if _text(level or "").lower() == "table":
            table_checks[(_text(db), _text(table))][_text(name)] = col or ""
    return found, table_checks


def _foreign_keys(conn: pymysql.connections.Connection, databases: Sequence[str]) -> dict[Key, dict[str, list[str]]]:
    out: dict[Key, dict[str, list[str]]] = defaultdict(dict)
    for db, table, name, column in _query(conn, _FOREIGN_KEYS_SQL, databases):
        out[(_text(db), _text(table))].setdefault(_text(name), []).append(_text(column))
    return out


def fk_generated_indexes(indexes: Sequence[MyIndex], fks: dict[str, list[str]]) -> list[str]:
    """Which indexes InnoDB most likely made for a foreign key itself.

    The server keeps that flag to itself; an index on exactly the key's columns, named
    after the constraint or after its first column (``p``, ``p_2``...), is taken as one."""
    out: list[str] = []
    for name, cols in fks.items():
        low = [c.lower() for c in cols]
        for idx in indexes:
            if idx.primary or idx.unique or [c.lower() for c, _ in idx.columns] != low:
                continue
            first = cols[0].lower()
            iname = idx.name.lower()
            if iname == name.lower() or iname == first or (
                    iname.startswith(first + "_") and iname[len(first) + 1:].isdigit()):
                if idx.name not in out:
                    out.append(idx.name)
                break
    return out


def _srids(conn: pymysql.connections.Connection, databases: Sequence[str], mariadb: bool
           ) -> dict[tuple[str, str, str], int]:
    return {(_text(db), _text(t), _text(c)): int(srid)
            for db, t, c, srid in _query(conn, _SRIDS_SQL[mariadb], databases)}


def _read_columns(conn: pymysql.connections.Connection, databases: Sequence[str], mariadb: bool,
                  json_cols: set[tuple[str, str, str]]) -> dict[Key, list[MyColumn]]:
    out: dict[Key, list[MyColumn]] = defaultdict(list)
    srids = _srids(conn, databases, mariadb)
    for row in _query(conn, _COLUMNS_SQL, databases):
        (db, table, name, pos, data_type, column_type, nullable, default, extra, char_len,
         num_prec, num_scale, dt_prec, charset, collation, gen_expr, comment) = row
        db, table, name = _text(db), _text(table), _text(name)
        data_type = _text(data_type).lower()
        extra = _text(extra or "")
        default_text = None if default is None else _text(default)
        if not mariadb:
            default_text = _mysql_default(default_text, data_type, extra)
        if is_json_column(data_type, (db, table, name) in json_cols):
            data_type = "json"
        out[(db, table)].append(MyColumn(
            name=name, position=int(pos), data_type=data_type, column_type=_text(column_type),
            nullable=_text(nullable).upper() == "YES", default=default_text, extra=extra,
            char_max_length=_opt_int(char_len), numeric_precision=_opt_int(num_prec),
            numeric_scale=_opt_int(num_scale), datetime_precision=_opt_int(dt_prec),
            srid=srids.get((db, table, name)), charset=None if charset is None else _text(charset),
            collation=None if collation is None else _text(collation),
            generation_expression=_text(gen_expr) if gen_expr else None, comment=_text(comment or ""),
        ))
    return out


def _read_indexes(conn: pymysql.connections.Connection, databases: Sequence[str]) -> dict[Key, list[MyIndex]]:
    parts: dict[tuple[str, str, str], list[tuple[str, int | None]]] = defaultdict(list)
    meta: dict[tuple[str, str, str], tuple[bool, str]] = {}
    for db, table, index, non_unique, _seq, column, sub_part, index_type in _query(conn, _STATISTICS_SQL, databases):
        key = (_text(db), _text(table), _text(index))
        if column is None:           # a functional index part (MySQL 8): not representable
            meta[key] = (False, "EXPRESSION")
            continue
        parts[key].append((_text(column), _opt_int(sub_part)))
        meta.setdefault(key, (not int(non_unique), _text(index_type or "BTREE").upper()))
    out: dict[Key, list[MyIndex]] = defaultdict(list)
    for key, cols in parts.items():
        unique, kind = meta[key]
        if kind == "EXPRESSION":
            log.warning("index %s on %s.%s has expression parts: not replicated", key[2], key[0], key[1])
            continue
        if kind == "SPATIAL":
            # MariaDB reports SUB_PART 32 for every spatial key part: not a prefix the user asked for
            cols = [(c, None) for c, _ in cols]
        primary = key[2] == "PRIMARY"
        out[(key[0], key[1])].append(MyIndex(
            name=key[2], columns=tuple(cols), unique=unique or primary, primary=primary, kind=kind,
        ))
    return out


def introspect(conn: pymysql.connections.Connection, databases: Sequence[str],
               wants: Callable[[str, str], bool]) -> list[MyTable]:
    """The base tables of ``databases`` that ``wants(db, table)`` accepts."""
    if not databases:
        return []
    mariadb = _is_mariadb(conn)
    if not mariadb:
        with conn.cursor() as cur:     # MySQL 8 caches AUTO_INCREMENT in information_schema
            cur.execute("SET SESSION information_schema_stats_expiry = 0")
    tables = [(_text(r[0]), _text(r[1]), r) for r in _query(conn, _TABLES_SQL, databases)]
    tables = [t for t in tables if wants(t[0], t[1])]
    json_cols, table_checks = _checks(conn, databases) if mariadb else (set(), {})
    columns = _read_columns(conn, databases, mariadb, json_cols)
    indexes = _read_indexes(conn, databases)
    fks = _foreign_keys(conn, databases)
    result = []
    for db, name, row in tables:
        idx = tuple(sorted(indexes.get((db, name), ()), key=lambda i: (not i.primary, i.name)))
        extra: dict[str, Any] = {}
        if fks.get((db, name)):
            extra[FOREIGN_KEYS] = sorted(fks[(db, name)])
            generated = fk_generated_indexes(idx, fks[(db, name)])
            if generated:
                extra[FK_INDEXES] = generated
        if table_checks.get((db, name)):
            extra[CHECKS] = dict(sorted(table_checks[(db, name)].items()))
        result.append(MyTable(
            db=db, name=name, columns=tuple(columns.get((db, name), ())), indexes=idx,
            auto_increment=_opt_int(row[3]), engine=None if row[2] is None else _text(row[2]),
            comment=_text(row[4] or ""), extra=extra,
        ))
    log.info("read %d tables from %s", len(result), ", ".join(databases))
    return result


_VIEWS_SQL = """
SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION
  FROM information_schema.VIEWS
 WHERE TABLE_SCHEMA IN ({marks})
 ORDER BY TABLE_SCHEMA, TABLE_NAME"""

_OBJECTS_SQL = """
SELECT 'trigger', TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN ({marks})
UNION ALL
SELECT lower(ROUTINE_TYPE), ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema.ROUTINES
 WHERE ROUTINE_SCHEMA IN ({marks})
UNION ALL
SELECT 'event', EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA IN ({marks})
ORDER BY 1, 2, 3"""


def views(conn: pymysql.connections.Connection, databases: Sequence[str]) -> list[tuple[str, str, str]]:
    """(database, view, query) of the views in ``databases``; the query is '' when the
    user may not see it (SHOW VIEW privilege)."""
    if not databases:
        return []
    return [(_text(db), _text(name), _text(definition or "")) for db, name, definition
            in _query(conn, _VIEWS_SQL, databases)]


def not_carried(conn: pymysql.connections.Connection, databases: Sequence[str]) -> list[tuple[str, str, str]]:
    """(kind, database, name) of the triggers, procedures, functions and events: pgbaton
    does not carry them (their code is MySQL's); the user is told which there are."""
    if not databases:
        return []
    marks = ", ".join(["%s"] * len(databases))
    with conn.cursor() as cur:
        cur.execute(_OBJECTS_SQL.format(marks=marks), tuple(databases) * 3)
        return [(_text(k), _text(d), _text(n)) for k, d, n in cur.fetchall()]


def warnings_for(table: MyTable) -> list[str]:
    """What the user should know about how this table replicates."""
    out: list[str] = []
    where = f"{table.db}.{table.name}"
    if table.primary_key is None:
        keys = table.pk_columns
        if keys:
            out.append(f"{where}: no primary key; rows are matched on unique NOT NULL index ({', '.join(keys)})")
        else:
            out.append(f"{where}: no primary key or unique NOT NULL index; updates and deletes match "
                       "the whole row (slow on large tables, ambiguous for duplicate rows)")
    for idx in table.indexes:
        if any(p is not None for _, p in idx.columns):
            out.append(f"{where}: index {idx.name} uses prefix lengths; PostgreSQL indexes the whole "
                       "column (varchar) or the prefix expression (text/blob)")
        if idx.kind == "FULLTEXT":
            out.append(f"{where}: FULLTEXT index {idx.name} becomes a GIN index on to_tsvector('simple', ...); "
                       "MATCH ... AGAINST queries must be rewritten")
    for col in table.columns:
        if col.generated:
            out.append(f"{where}.{col.name}: {col.generated} generated column is copied as a plain column "
                       "holding the source's computed values")
    return out
