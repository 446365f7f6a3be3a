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
SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE
  FROM information_schema.CHECK_CONSTRAINTS
 WHERE CONSTRAINT_SCHEMA IN ({marks})"""

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


def _json_columns(conn: pymysql.connections.Connection, databases: Sequence[str]) -> set[tuple[str, str, str]]:
    """MariaDB's JSON is LONGTEXT with a column CHECK (json_valid(`col`))."""
    found: set[tuple[str, str, str]] = set()
    for db, table, clause in _query(conn, _CHECKS_SQL, databases):
        text = "".join(_text(clause).split()).lower()
        if text.startswith("json_valid(`") and text.endswith("`)"):
            name = _text(clause).strip()[len("json_valid(`"):-2].replace("``", "`")
            found.add((_text(db), _text(table), name))
    return found


def _read_columns(conn: pymysql.connections.Connection, databases: Sequence[str], mariadb: bool,
                  json_cols: set[tuple[str, str, str]]) -> dict[Key, list[MyColumn]]:
    out: dict[Key, list[MyColumn]] = defaultdict(list)
    for row in _query(conn, _COLUMNS_SQL, databases):
        (db, table, name, pos, data_type, column_type, nullable, default, extra, char_len,
         num_prec, num_scale, dt_prec, charset, collation, gen_expr, comment) = row
        db, table, name = _text(db), _text(table), _text(name)
        data_type = _text(data_type).lower()
        extra = _text(extra or "")
        default_text = None if default is None else _text(default)
        if not mariadb:
            default_text = _mysql_default(default_text, data_type, extra)
        if (db, table, name) in json_cols and data_type == "longtext":
            data_type = "json"
        out[(db, table)].append(MyColumn(
            name=name, position=int(pos), data_type=data_type, column_type=_text(column_type),
            nullable=_text(nullable).upper() == "YES", default=default_text, extra=extra,
            char_max_length=_opt_int(char_len), numeric_precision=_opt_int(num_prec),
            numeric_scale=_opt_int(num_scale), datetime_precision=_opt_int(dt_prec),
            charset=None if charset is None else _text(charset),
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
    json_cols = _json_columns(conn, databases) if mariadb else set()
    columns = _read_columns(conn, databases, mariadb, json_cols)
    indexes = _read_indexes(conn, databases)
    result = []
    for db, name, row in tables:
        result.append(MyTable(
            db=db, name=name, columns=tuple(columns.get((db, name), ())),
            indexes=tuple(sorted(indexes.get((db, name), ()), key=lambda i: (not i.primary, i.name))),
            auto_increment=_opt_int(row[3]), engine=None if row[2] is None else _text(row[2]),
            comment=_text(row[4] or ""),
        ))
    log.info("read %d tables from %s", len(result), ", ".join(databases))
    return result


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
        if idx.kind == "SPATIAL":
            out.append(f"{where}: SPATIAL index {idx.name} needs PostGIS (GiST); skipped without it")
    for col in table.columns:
        if col.generated:
            out.append(f"{where}.{col.name}: {col.generated} generated column is copied as a plain column "
                       "holding the source's computed values")
    return out
