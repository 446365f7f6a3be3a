"""Reproduce on the target the foreign key actions InnoDB applies without logging them.

A row deleted from (or a key changed in) a parent table of a cascading foreign key
changes child rows inside InnoDB, and the binlog carries only the parent's change.
Replay therefore applies a group of batches that touches such a parent *in order*:
the changes between two parent deletes/updates are applied set-based as usual, each
parent change (a "cascade point") is applied on its own, and right after it the
foreign key actions follow, recursively (several levels, self-references), with the
rows they change read back from the target.  A row event written with
``foreign_key_checks=0`` is not a cascade point: the source cascaded nothing.

Only groups that touch a cascading parent take this path; every other group keeps
the set-based speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pgbaton.errors import ReplayError
from pgbaton.mysql.model import MyTable

CASCADING = ("CASCADE", "SET NULL")

# MySQL stops cascading after 15 levels (and fails the statement); a deeper chain here
# means the catalog's foreign keys do not match the source
MAX_DEPTH = 20


@dataclass(frozen=True)
class CascadeKey:
    name: str
    child_id: int
    child_cols: tuple[str, ...]
    parent_id: int
    parent_cols: tuple[str, ...]
    on_delete: str
    on_update: str


def load(conn: psycopg.Connection, source: str) -> list[CascadeKey]:
    """The cascading foreign keys between tables the catalog knows, with the PostgreSQL
    column names (the catalog keeps the source's)."""
    rows = conn.execute(
        """SELECT f.name, c.id, f.child_cols, p.id, f.parent_cols, f.on_delete, f.on_update,
                  c.definition, p.definition
             FROM foreign_keys AS f
             JOIN tables AS c ON c.source = f.source AND c.src_db = f.child_db AND c.src_table = f.child_table
             JOIN tables AS p ON p.source = f.source AND p.src_db = f.parent_db AND p.src_table = f.parent_table
            WHERE f.source = %s AND (f.on_delete IN ('CASCADE', 'SET NULL') OR f.on_update IN ('CASCADE', 'SET NULL'))
            ORDER BY c.id, f.name""", (source,)).fetchall()
    out = []
    for r in rows:
        child, parent = MyTable.from_json(r[7]), MyTable.from_json(r[8])
        out.append(CascadeKey(r[0], r[1], tuple(child.pg(c) for c in r[2]), r[3],
                              tuple(parent.pg(c) for c in r[4]), r[5], r[6]))
    return out


class Cascader:
    """Applies the foreign key actions of parent rows deleted or re-keyed on the target.

    ``target(id)`` gives (schema, table) of a table id that replay applies now, or None
    when the table is skipped (disabled, copying, or its snapshot already holds the change).
    """

    def __init__(self, conn: psycopg.Connection, keys: list[CascadeKey], target: Any) -> None:
        self.conn = conn
        self.keys = keys
        self.target = target

    def _ident(self, tid: int) -> sql.Identifier | None:
        t = self.target(tid)
        return None if t is None else sql.Identifier(*t)

    def _match(self, key: CascadeKey, alias: str) -> sql.Composed:
        return sql.SQL(" AND ").join(
            sql.SQL("c.{} = {}.{}").format(sql.Identifier(cc), sql.Identifier(alias), sql.Identifier(pc))
            for cc, pc in zip(key.child_cols, key.parent_cols, strict=True))

    def deleted(self, parent_id: int, olds: list[Any], depth: int = 0) -> None:
        """Parent rows ``olds`` (jsonb images of the target's rows) were deleted."""
        if not olds:
            return
        if depth > MAX_DEPTH:
            raise ReplayError(f"foreign key cascade deeper than {MAX_DEPTH} levels")
        parent = self._ident(parent_id)
        for key in self.keys:
            if key.parent_id != parent_id or key.on_delete not in ("CASCADE", "SET NULL") or parent is None:
                continue
            child = self._ident(key.child_id)
            if child is None:
                continue
            arr = Jsonb(olds)
            if key.on_delete == "CASCADE":
                rows = self.conn.execute(
                    sql.SQL("DELETE FROM {child} AS c USING jsonb_populate_recordset(NULL::{parent}, %s) AS k "
                            "WHERE {match} RETURNING to_jsonb(c.*)").format(
                        child=child, parent=parent, match=self._match(key, "k")), (arr,)).fetchall()
                self.deleted(key.child_id, [r[0] for r in rows], depth + 1)
            else:
                pairs = self._set_null(key, child, parent, arr)
                self.updated(key.child_id, pairs, depth + 1)

    def _set_null(self, key: CascadeKey, child: sql.Identifier, parent: sql.Identifier,
                  arr: Any) -> list[tuple[Any, Any]]:
        sets = sql.SQL(", ").join(sql.SQL("{} = NULL").format(sql.Identifier(c)) for c in key.child_cols)
        rows = self.conn.execute(
            sql.SQL("WITH m AS (SELECT DISTINCT c.ctid AS rid, to_jsonb(c.*) AS o FROM {child} AS c, "
                    "jsonb_populate_recordset(NULL::{parent}, %s) AS k WHERE {match}) "
                    "UPDATE {child} AS c SET {sets} FROM m WHERE c.ctid = m.rid RETURNING m.o, to_jsonb(c.*)").format(
                child=child, parent=parent, match=self._match(key, "k"), sets=sets), (arr,)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def updated(self, parent_id: int, pairs: list[tuple[Any, Any]], depth: int = 0) -> None:
        """Parent rows changed from old to new image, in this order (a chain of key moves
        is followed step by step)."""
        if not pairs:
            return
        if depth > MAX_DEPTH:
            raise ReplayError(f"foreign key cascade deeper than {MAX_DEPTH} levels")
        parent = self._ident(parent_id)
        for key in self.keys:
            if key.parent_id != parent_id or key.on_update not in ("CASCADE", "SET NULL") or parent is None:
                continue
            child = self._ident(key.child_id)
            if child is None:
                continue
            for old, new in pairs:
                before = [old.get(c) for c in key.parent_cols]
                after = [new.get(c) for c in key.parent_cols]
                if before == after or any(v is None for v in before):
                    continue
                if key.on_update == "CASCADE":
                    sets = sql.SQL(", ").join(sql.SQL("{} = n.{}").format(sql.Identifier(cc), sql.Identifier(pc))
                                              for cc, pc in zip(key.child_cols, key.parent_cols, strict=True))
                    rows = self.conn.execute(
                        sql.SQL("WITH m AS (SELECT c.ctid AS rid, to_jsonb(c.*) AS o FROM {child} AS c, "
                                "jsonb_populate_record(NULL::{parent}, %s) AS k WHERE {match}) "
                                "UPDATE {child} AS c SET {sets} FROM m, jsonb_populate_record(NULL::{parent}, %s) AS n "
                                "WHERE c.ctid = m.rid RETURNING m.o, to_jsonb(c.*)").format(
                            child=child, parent=parent, match=self._match(key, "k"), sets=sets),
                        (Jsonb(old), Jsonb(new))).fetchall()
                    child_pairs = [(r[0], r[1]) for r in rows]
                else:
                    child_pairs = self._set_null(key, child, parent, Jsonb([old]))
                self.updated(key.child_id, child_pairs, depth + 1)
