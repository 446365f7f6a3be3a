"""MySQL query rules that PostgreSQL spells differently, applied to a view's parsed
SELECT (a sqlglot tree) before sqlglot writes it for PostgreSQL.  Pure.

- **Truth of a value.**  MySQL takes any number as a condition (``IF(c.active, ..)``,
  ``WHERE flag``, ``ON a.x``): non-zero is true.  PostgreSQL wants a boolean, so a
  condition that is not a predicate becomes ``(value) <> 0``, which is NULL for NULL,
  as in MySQL.
- **Columns beside GROUP BY.**  MySQL accepts columns that the grouped key determines
  through a join (``GROUP BY s.store_id`` with ``c.city`` of the store's city);
  PostgreSQL only through the primary key of the same table.  A column of a table that
  no GROUP BY expression names becomes ``min(column)`` in the SELECT list, HAVING and
  ORDER BY: one value per group, the same one when the key determines it (when it does
  not, MySQL's own choice is arbitrary).
- **GROUP_CONCAT(DISTINCT x ORDER BY k)** with ``x`` starting with ``k`` (sakila's
  ``actor_info``: ``CONCAT(c.name, ': ', ...)`` ordered by ``c.name``): PostgreSQL
  requires DISTINCT's ORDER BY to be the argument, so it is ordered by ``x``, which
  orders the same unless one key is a prefix of another.  Other orders are left as they
  are and PostgreSQL refuses them (the view is listed as not carried).
"""

from __future__ import annotations

from typing import TypeVar

from sqlglot import exp

_BOOLEAN = (exp.Predicate, exp.Connector, exp.Not, exp.Boolean, exp.Null)


Tree = TypeVar("Tree", bound=exp.Expr)


def adapt(tree: Tree) -> Tree:
    """The tree with the three rewrites above (changed in place and returned)."""
    for select in list(tree.find_all(exp.Select)):
        _group_columns(select)
    for node in list(tree.find_all(exp.If, exp.Where, exp.Having, exp.Join)):
        _conditions(node)
    for gc in list(tree.find_all(exp.GroupConcat)):
        _distinct_order(gc)
    return tree


# -- truth ---------------------------------------------------------------------------------

def _truth(node: exp.Expression) -> exp.Expression:
    inner = node
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if isinstance(inner, exp.Connector):
        inner.set("this", _truth(inner.this))
        inner.set("expression", _truth(inner.expression))
        return node
    if isinstance(inner, exp.Not):
        inner.set("this", _truth(inner.this))
        return node
    if isinstance(inner, _BOOLEAN):
        return node
    return exp.NEQ(this=exp.paren(node.copy(), copy=False), expression=exp.Literal.number(0))


def _conditions(node: exp.Expression) -> None:
    if isinstance(node, exp.If):
        case = node.parent
        if isinstance(case, exp.Case) and case.this is not None:     # CASE x WHEN value: not a condition
            return
        node.set("this", _truth(node.this))
    elif isinstance(node, exp.Join):
        on = node.args.get("on")
        if on is not None:
            node.set("on", _truth(on))
    elif node.this is not None:                                      # WHERE, HAVING
        node.set("this", _truth(node.this))


# -- grouping ------------------------------------------------------------------------------

def _qualifier(col: exp.Column) -> str:
    return col.table.lower() if col.table else ""


def _group_columns(select: exp.Select) -> None:
    group = select.args.get("group")
    if group is None or not group.expressions or any(isinstance(e, exp.Literal) for e in group.expressions):
        return
    keys = {e.sql(dialect="mysql").lower() for e in group.expressions}
    covered = {_qualifier(c) for e in group.expressions for c in e.find_all(exp.Column)}
    aliases = {str(e.alias).lower() for e in select.expressions if isinstance(e, exp.Alias)}

    def fix(node: exp.Expression, in_select: bool) -> exp.Expression:
        if node.sql(dialect="mysql").lower() in keys or isinstance(node, exp.AggFunc | exp.Subquery | exp.Select):
            return node
        if isinstance(node, exp.Column):
            if not node.table and (not in_select and node.name.lower() in aliases or "" in covered):
                return node
            if _qualifier(node) in covered:
                return node
            return exp.Min(this=node.copy())
        for key, value in list(node.args.items()):
            if isinstance(value, exp.Expression):
                node.set(key, fix(value, in_select))
            elif isinstance(value, list):
                node.set(key, [fix(v, in_select) if isinstance(v, exp.Expression) else v for v in value])
        return node

    select.set("expressions", [fix(e, True) for e in select.expressions])
    for part in ("having", "order"):
        value = select.args.get(part)
        if value is not None:
            select.set(part, fix(value, False))


# -- GROUP_CONCAT(DISTINCT .. ORDER BY ..) -------------------------------------------------

def _leading(value: exp.Expression) -> exp.Expression:
    while isinstance(value, exp.Concat | exp.DPipe):
        value = value.expressions[0] if isinstance(value, exp.Concat) else value.this
    return value


def _distinct_order(gc: exp.GroupConcat) -> None:
    order = gc.this
    if not isinstance(order, exp.Order) or not isinstance(order.this, exp.Distinct):
        return
    args = order.this.expressions
    keys = order.expressions
    if len(args) != 1 or len(keys) != 1 or not isinstance(keys[0], exp.Ordered):
        return
    arg, key = args[0], keys[0]
    if arg == key.this or _leading(arg) != key.this:
        return
    key.set("this", arg.copy())
