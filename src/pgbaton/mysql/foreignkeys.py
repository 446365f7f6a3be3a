"""The source's foreign keys and their actions, for replaying the cascades InnoDB never logs.

InnoDB applies ``ON DELETE / ON UPDATE CASCADE`` and ``SET NULL`` inside the storage
engine: the child rows it changes are not written to the binlog.  The replica reads
the foreign keys of the replicated databases (here), keeps them in the catalog, and
replay reproduces the actions (``cdc/cascade.py``).

Read from ``information_schema.KEY_COLUMN_USAGE`` (visible with SELECT) joined with
``REFERENTIAL_CONSTRAINTS`` for the actions.  MariaDB hides the latter from a user
without table-level privileges beyond SELECT on some versions; then the actions are
taken from ``SHOW CREATE TABLE``, parsed with sqlglot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

log = logging.getLogger(__name__)

ACTIONS = ("CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION")
CASCADING = ("CASCADE", "SET NULL")


@dataclass(frozen=True)
class ForeignKey:
    name: str
    child_db: str
    child_table: str
    child_cols: tuple[str, ...]
    parent_db: str
    parent_table: str
    parent_cols: tuple[str, ...]
    on_delete: str
    on_update: str

    @property
    def cascades(self) -> bool:
        return self.on_delete in CASCADING or self.on_update in CASCADING

    def label(self) -> str:
        return (f"{self.child_db}.{self.child_table}.{self.name} -> {self.parent_db}.{self.parent_table} "
                f"(ON DELETE {self.on_delete} ON UPDATE {self.on_update})")


_QUERY = """
SELECT k.CONSTRAINT_NAME, k.TABLE_SCHEMA, k.TABLE_NAME, k.COLUMN_NAME,
       k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME,
       r.DELETE_RULE, r.UPDATE_RULE
  FROM information_schema.KEY_COLUMN_USAGE AS k
  LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS AS r
         ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
        AND r.TABLE_NAME = k.TABLE_NAME
 WHERE k.REFERENCED_TABLE_NAME IS NOT NULL AND k.TABLE_SCHEMA IN ({})
 ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION
"""


def read_foreign_keys(conn: Any, databases: list[str]) -> list[ForeignKey]:
    """Every foreign key whose child table is in ``databases`` (a PyMySQL connection)."""
    if not databases:
        return []
    with conn.cursor() as cur:
        cur.execute(_QUERY.format(", ".join(["%s"] * len(databases))), list(databases))
        rows = cur.fetchall()
    grouped: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name, db, table, col, pdb, ptable, pcol, on_delete, on_update in rows:
        g = grouped.setdefault((db, table, name), {"cols": [], "pcols": [], "parent": (pdb, ptable),
                                                   "rules": (on_delete, on_update)})
        g["cols"].append(col)
        g["pcols"].append(pcol)
    hidden = {(db, table) for (db, table, _), g in grouped.items() if g["rules"][0] is None}
    shown: dict[tuple[str, str, str], tuple[str, str]] = {}
    for db, table in sorted(hidden):
        shown.update(_rules_from_ddl(conn, db, table))
    out = []
    for (db, table, name), g in grouped.items():
        on_delete, on_update = g["rules"]
        if on_delete is None:
            on_delete, on_update = shown.get((db, table, name), ("RESTRICT", "RESTRICT"))
            if (db, table, name) not in shown:
                log.warning("foreign key %s.%s.%s: its actions are not visible to this user; taken as RESTRICT",
                            db, table, name)
        out.append(ForeignKey(name, db, table, tuple(g["cols"]), g["parent"][0], g["parent"][1],
                              tuple(g["pcols"]), str(on_delete).upper(), str(on_update).upper()))
    return out


def _rules_from_ddl(conn: Any, db: str, table: str) -> dict[tuple[str, str, str], tuple[str, str]]:
    with conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE `{db.replace('`', '``')}`.`{table.replace('`', '``')}`")
        row = cur.fetchone()
    if row is None:
        return {}
    return {(db, table, name): rules for name, rules in fk_actions(str(row[1])).items()}


def fk_actions(create_table: str) -> dict[str, tuple[str, str]]:
    """Constraint name -> (ON DELETE, ON UPDATE) from a CREATE TABLE statement."""
    out: dict[str, tuple[str, str]] = {}
    tree = sqlglot.parse_one(create_table, read="mysql")
    for fk in tree.find_all(exp.ForeignKey):
        parent = fk.parent
        name = parent.name if isinstance(parent, exp.Constraint) else ""
        on_delete = on_update = "RESTRICT"
        ref = fk.args.get("reference")
        for opt in (ref.args.get("options") or []) if ref is not None else []:
            text = (opt if isinstance(opt, str) else opt.sql(dialect="mysql")).upper()
            for action in ACTIONS:
                if text == f"ON DELETE {action}":
                    on_delete = action
                elif text == f"ON UPDATE {action}":
                    on_update = action
        out[name] = (on_delete, on_update)
    return out
