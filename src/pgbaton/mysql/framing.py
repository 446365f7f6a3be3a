"""Transaction framing of a MySQL/MariaDB binlog: which events open, end or undo a transaction.

Pure: the reader feeds it one decoded event at a time and gets back normalized
records.  No I/O here, so every shape of event group is unit-tested without a server.

What the servers write (seen on MariaDB 10.11 with a ROW binlog):

- an InnoDB transaction: GTID (not standalone), rows..., XID.  MySQL writes a
  ``BEGIN`` query after its GTID event; MariaDB folds BEGIN into the GTID event.
- a non-transactional table (MyISAM, Aria) written on its own or inside a
  transaction: a group of its own, GTID, rows..., ``COMMIT`` query.
- ``SAVEPOINT s`` is written as a query inside the group.  ``ROLLBACK TO s`` is
  written (as a query, after the undone rows) only when the cache could not simply
  be cut back; the rows between the two must then be dropped.
- DDL: GTID with the standalone flag, then the statement.  ``CREATE TABLE ... SELECT``:
  GTID (DDL flag, not standalone), the statement, rows, XID.
- XA: ``XA PREPARE`` writes GTID (prepared-XA flag), rows, ``XA END xid``, an
  XA_PREPARE event.  Later, in a standalone group of its own, ``XA COMMIT xid`` or
  ``XA ROLLBACK xid``.  ``XA COMMIT ... ONE PHASE`` is written like a plain transaction.
- ``ROLLBACK`` as a query ends a group whose changes are all undone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from pgbaton.cdc.model import (
    Begin,
    Commit,
    Ddl,
    Item,
    Position,
    Rollback,
    RollbackTo,
    Rows,
    Savepoint,
    XaEnd,
    XaPrepare,
)

# MariaDB GTID event flags (sql/log_event.h)
FL_STANDALONE = 1
FL_TRANSACTIONAL = 4
FL_DDL = 32
FL_PREPARED_XA = 64
FL_COMPLETED_XA = 128

# rows event flags
NO_FOREIGN_KEY_CHECKS = 2


class QueryKind(StrEnum):
    BEGIN = "begin"
    COMMIT = "commit"
    ROLLBACK = "rollback"
    SAVEPOINT = "savepoint"
    ROLLBACK_TO = "rollback_to"
    RELEASE = "release"
    XA_START = "xa_start"
    XA_END = "xa_end"
    XA_PREPARE = "xa_prepare"
    XA_COMMIT = "xa_commit"
    XA_ROLLBACK = "xa_rollback"
    XA_OTHER = "xa_other"
    STATEMENT = "statement"     # anything else: DDL


_COMMENT = re.compile(r"^(?:\s+|/\*(?!!).*?\*/|#[^\n]*\n|--\s[^\n]*\n)*", re.S)
_WORDS = re.compile(r"[A-Za-z_]+")


def _ident(text: str) -> str:
    """A savepoint name as written: `quoted`, "quoted" or bare."""
    text = text.strip().rstrip(";").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "`\"'":
        return text[1:-1].replace(text[0] * 2, text[0])
    return text


def _xid(rest: str) -> str:
    """The XID of an XA statement, normalized so that END, PREPARE, COMMIT and ROLLBACK agree."""
    rest = rest.strip().rstrip(";").strip()
    rest = re.sub(r"\s+ONE\s+PHASE$", "", rest, flags=re.I)
    return re.sub(r"\s*,\s*", ",", rest)


def classify(query: str) -> tuple[QueryKind, str]:
    """What a query event does to the transaction around it, and its argument (a name, an XID)."""
    text = _COMMENT.sub("", query, count=1)
    words = _WORDS.findall(text[:64])
    head = [w.upper() for w in words[:3]]
    if not head:
        return QueryKind.STATEMENT, ""
    first = head[0]
    if first in ("BEGIN", "START") and (first == "BEGIN" and len(head) == 1 or head[:2] == ["START", "TRANSACTION"]):
        return QueryKind.BEGIN, ""
    if first == "COMMIT" and len(words) <= 2:
        return QueryKind.COMMIT, ""
    if first == "SAVEPOINT":
        return QueryKind.SAVEPOINT, _ident(text[len("SAVEPOINT"):])
    if first == "RELEASE":
        return QueryKind.RELEASE, ""
    if first == "ROLLBACK":
        m = re.match(r"ROLLBACK\s+(?:WORK\s+)?TO\s+(?:SAVEPOINT\s+)?(.*)$", text.strip(), re.I | re.S)
        if m:
            return QueryKind.ROLLBACK_TO, _ident(m.group(1))
        return QueryKind.ROLLBACK, ""
    if first == "XA" and len(head) >= 2:
        m = re.match(r"XA\s+(\w+)\s*(.*)$", text.strip(), re.I | re.S)
        verb, rest = (m.group(1).upper(), m.group(2)) if m else (head[1], "")
        kinds = {"START": QueryKind.XA_START, "BEGIN": QueryKind.XA_START, "END": QueryKind.XA_END,
                 "PREPARE": QueryKind.XA_PREPARE, "COMMIT": QueryKind.XA_COMMIT,
                 "ROLLBACK": QueryKind.XA_ROLLBACK}
        kind = kinds.get(verb, QueryKind.XA_OTHER)
        if kind == QueryKind.XA_START:
            rest = re.sub(r"\s+(JOIN|RESUME)$", "", rest.strip(), flags=re.I)
        if kind == QueryKind.XA_END:
            rest = re.sub(r"\s+(SUSPEND(\s+FOR\s+MIGRATE)?)$", "", rest.strip(), flags=re.I)
        one_phase = bool(re.search(r"\bONE\s+PHASE\s*;?\s*$", rest, re.I))
        if kind == QueryKind.XA_COMMIT and one_phase:
            return QueryKind.COMMIT, _xid(rest)
        return kind, _xid(rest)
    return QueryKind.STATEMENT, ""


class FramingError(Exception):
    """The stream holds an event the framing cannot place (reported, never guessed)."""


@dataclass
class _Group:
    open: bool = False          # inside a transaction (its end is still to come)
    standalone: bool = False    # MariaDB: the group is one statement (DDL, XA COMMIT/ROLLBACK)
    ddl_group: bool = False     # a DDL statement that goes on with rows (CREATE TABLE ... SELECT)
    xid: str | None = None      # the XA transaction this group prepares


class Framer:
    """Turns decoded binlog events into normalized records with exact transaction boundaries.

    Every Commit, Rollback, XaPrepare, XaEnd and (standalone) Ddl it returns ends a
    transaction: its position is a place where reading may resume.  Nothing else is.
    """

    def __init__(self) -> None:
        self.group = _Group()

    @property
    def in_transaction(self) -> bool:
        return self.group.open

    def gtid(self, gtid: str, flags: int | None) -> list[Item]:
        """A GTID event starts a group. ``flags`` is MariaDB's (None for MySQL)."""
        if self.group.open:
            raise FramingError(f"GTID {gtid} starts a new group inside an unfinished transaction")
        if flags is None:          # MySQL: BEGIN (or a DDL statement) follows
            self.group = _Group(open=False)
            return []
        if flags & FL_STANDALONE:
            self.group = _Group(open=False, standalone=True)
            return []
        xa = bool(flags & FL_PREPARED_XA)
        self.group = _Group(open=True, ddl_group=bool(flags & FL_DDL) and not flags & FL_TRANSACTIONAL)
        return [Begin(gtid, xa=xa)]

    def rows(self, rows: Rows) -> list[Item]:
        out: list[Item] = []
        if not self.group.open:
            # rows outside BEGIN .. COMMIT: only seen on a stream opened in the middle of a group
            self.group = _Group(open=True)
            out.append(Begin(None))
        out.append(rows)
        return out

    def xid(self, pos: Position, ts: float) -> list[Item]:
        self.group = _Group()
        return [Commit(pos, ts)]

    def xa_prepare_event(self, xid: str, one_phase: bool, pos: Position, ts: float) -> list[Item]:
        g, self.group = self.group, _Group()
        if one_phase:
            return [Commit(pos, ts)]
        return [XaPrepare(g.xid or xid, pos, ts)]

    def query(self, text: str, db: str | None, pos: Position, ts: float) -> list[Item]:
        kind, arg = classify(text)
        g = self.group
        if kind == QueryKind.BEGIN:
            self.group = _Group(open=True)
            return [Begin(None)]
        if kind == QueryKind.COMMIT:
            self.group = _Group()
            return [Commit(pos, ts)]
        if kind == QueryKind.ROLLBACK:
            self.group = _Group()
            return [Rollback(pos, ts)]
        if kind == QueryKind.SAVEPOINT:
            return [Savepoint(arg)] if g.open else []
        if kind == QueryKind.ROLLBACK_TO:
            return [RollbackTo(arg)] if g.open else []
        if kind in (QueryKind.RELEASE, QueryKind.XA_OTHER):
            return []
        if kind == QueryKind.XA_START:
            self.group = _Group(open=True, xid=arg)
            return [Begin(None, xa=True)]
        if kind == QueryKind.XA_END:
            g.xid = arg
            return []
        if kind == QueryKind.XA_PREPARE:    # as a query (some MySQL versions): the group ends here
            self.group = _Group()
            return [XaPrepare(g.xid or arg, pos, ts)]
        if kind in (QueryKind.XA_COMMIT, QueryKind.XA_ROLLBACK):
            self.group = _Group()
            return [XaEnd(arg, kind == QueryKind.XA_COMMIT, pos, ts)]
        # a DDL statement
        if g.open:
            # CREATE TABLE ... SELECT (or another statement the server logged inside its
            # group): applied in its place, the transaction goes on
            return [Ddl(db, text.strip(), pos, ts, in_txn=True)]
        self.group = _Group()
        return [Ddl(db, text.strip(), pos, ts)]
