"""Generation expressions of MySQL columns in PostgreSQL, where the value is certain to
be the same.

A generated column added to a table with rows gets its values without any row event;
the replica computes them for the existing rows with this translation.  The replica
keeps generated columns as plain columns (the binlog carries their values for every
later row), so the translation is used once, to fill them.  sqlglot reads the MySQL
expression; only a small set of operations whose result PostgreSQL computes exactly as
MySQL does is accepted (integer arithmetic, string concatenation, COALESCE/IFNULL over
integer and text columns).  Anything else returns None, and the table is re-copied.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlglot
from psycopg import sql
from sqlglot import exp
from sqlglot.errors import SqlglotError

from pgbaton.mysql.model import MyColumn
from pgbaton.mysql.typemap import INT_TYPES, TEXT_TYPES

_INT = "int"
_TEXT = "text"


def _family(col: MyColumn) -> str | None:
    t = col.data_type.lower()
    if t in INT_TYPES:
        return _INT
    if t in TEXT_TYPES:
        return _TEXT
    return None


def to_postgres(expression: str, columns: Mapping[str, MyColumn], target: MyColumn) -> sql.Composable | None:
    """A PostgreSQL expression equal to ``expression`` for every row, or None."""
    want = _family(target)
    if want is None:
        return None
    try:
        tree = sqlglot.parse_one(expression, read="mysql")
    except (SqlglotError, ValueError, RecursionError):
        return None
    if not isinstance(tree, exp.Expression):
        return None
    by_name = {k.lower(): c for k, c in columns.items()}
    out = _node(tree, by_name)
    if out is None or out[1] != want:
        return None
    return out[0]


def _node(node: exp.Expression, cols: Mapping[str, MyColumn]) -> tuple[sql.Composable, str] | None:
    if isinstance(node, exp.Paren):
        inner = _node(node.this, cols)
        return None if inner is None else (sql.SQL("({})").format(inner[0]), inner[1])
    if isinstance(node, exp.Column):
        if node.table:
            return None
        col = cols.get(str(node.name).lower())
        fam = _family(col) if col is not None else None
        if col is None or fam is None:
            return None
        return sql.Identifier(col.target), fam
    if isinstance(node, exp.Literal):
        if node.is_string:
            return sql.Literal(str(node.this)), _TEXT
        text = str(node.this)
        if text.isdigit() and int(text) < 2 ** 63:
            return sql.SQL("{}::bigint").format(sql.Literal(int(text))), _INT
        return None
    if isinstance(node, exp.Neg):
        inner = _node(node.this, cols)
        if inner is None or inner[1] != _INT:
            return None
        return sql.SQL("(-{})").format(inner[0]), _INT
    if isinstance(node, exp.Add | exp.Sub | exp.Mul):
        left, right = _node(node.this, cols), _node(node.expression, cols)
        if left is None or right is None or left[1] != _INT or right[1] != _INT:
            return None
        op = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*"}[type(node)]
        # MySQL computes integer arithmetic in 64 bits: so does bigint (both fail on overflow)
        return sql.SQL("({}::bigint " + op + " {}::bigint)").format(left[0], right[0]), _INT
    if isinstance(node, exp.Concat):
        parts = [_node(e, cols) for e in node.expressions]
        if not parts or any(p is None for p in parts):
            return None
        # MySQL's CONCAT is NULL when any argument is: PostgreSQL's || behaves so, concat() does not
        return sql.SQL("(") + sql.SQL(" || ").join(
            sql.SQL("{}::text").format(p[0]) for p in parts if p is not None) + sql.SQL(")"), _TEXT
    if isinstance(node, exp.Coalesce):
        parts = [_node(e, cols) for e in [node.this, *node.expressions]]
        if any(p is None for p in parts):
            return None
        fams = {p[1] for p in parts if p is not None}
        if len(fams) != 1:
            return None
        return sql.SQL("COALESCE({})").format(sql.SQL(", ").join(p[0] for p in parts if p is not None)), fams.pop()
    return None
