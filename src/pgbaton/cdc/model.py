"""The normalized change model shared by every source format.

A source reader turns its own event stream into these records; the log store and
replay know only these.  Row values are still the reader's native Python values
here: the store converts them with the per-column converters of the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# A row image: column values, and for values that are None why they are (the
# reader's own notion, e.g. a zero date or an empty SET rather than SQL NULL).
Image = tuple[dict[str, Any], dict[str, str]]


class Op(StrEnum):
    INSERT = "I"
    UPDATE = "U"
    DELETE = "D"


@dataclass(frozen=True, slots=True)
class Position:
    """A place in the source's change stream, resumable by the reader."""

    file: str
    pos: int
    gtid: str | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}" + (f" (gtid {self.gtid})" if self.gtid else "")


def position_key(file: str, pos: int) -> tuple[str, int, int]:
    """Sort key of a binlog position: files are ordered by their numeric suffix, then the offset."""
    base, _, suffix = file.rpartition(".")
    if suffix.isdigit():
        return (base, int(suffix), int(pos))
    return (file, 0, int(pos))


@dataclass(slots=True)
class Rows:
    """Row changes of one table from one source event (inside a transaction)."""

    db: str
    table: str
    op: Op
    # (before, after): before is None for inserts, after is None for deletes
    images: list[tuple[Image | None, Image | None]]
    ts: float
    # False when the source session ran with foreign_key_checks=0 (the rows event's
    # flags say so): then the source cascaded nothing, and neither must replay
    fk_checks: bool = True


@dataclass(frozen=True, slots=True)
class Commit:
    """End of a source transaction; ``pos`` is where reading resumes after it."""

    pos: Position
    ts: float


@dataclass(frozen=True, slots=True)
class Begin:
    """A source transaction starts; only a Commit, Rollback or XA event ends it."""

    gtid: str | None = None
    xa: bool = False        # an XA transaction (ends with XA PREPARE)


@dataclass(frozen=True, slots=True)
class Savepoint:
    """``SAVEPOINT name`` inside the open transaction."""

    name: str


@dataclass(frozen=True, slots=True)
class RollbackTo:
    """``ROLLBACK TO name``: the row changes since that savepoint never happened."""

    name: str


@dataclass(frozen=True, slots=True)
class Rollback:
    """The open transaction ended with ROLLBACK: none of its row changes happened."""

    pos: Position
    ts: float


@dataclass(frozen=True, slots=True)
class XaPrepare:
    """``XA PREPARE``: the open transaction's changes wait, durably, for XA COMMIT or ROLLBACK."""

    xid: str
    pos: Position
    ts: float


@dataclass(frozen=True, slots=True)
class XaEnd:
    """``XA COMMIT`` (commit=True) or ``XA ROLLBACK`` of a transaction prepared earlier."""

    xid: str
    commit: bool
    pos: Position
    ts: float


@dataclass(frozen=True, slots=True)
class Ddl:
    """A schema change statement, applied between the row changes around it."""

    db: str | None
    statement: str
    pos: Position
    ts: float
    # the statement opens a transaction that goes on with rows (CREATE TABLE ... SELECT):
    # ``pos`` is not a transaction boundary and must not be saved as the read position
    in_txn: bool = False


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The source is alive and its stream head is at ``head``; nothing new to read."""

    head: Position
    received_at: float


@dataclass(frozen=True, slots=True)
class ReaderFailed:
    """The reader thread stopped with an error."""

    message: str
    exc: BaseException | None = field(default=None, compare=False)


Item = Rows | Commit | Ddl | Heartbeat | ReaderFailed | Begin | Savepoint | RollbackTo | Rollback | XaPrepare | XaEnd
