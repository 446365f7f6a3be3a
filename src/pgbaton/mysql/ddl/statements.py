"""What a parsed DDL statement says, before it meets the tracked definitions."""

from __future__ import annotations

from dataclasses import dataclass, field

from pgbaton.mysql.model import MyColumn

Name = tuple[str | None, str]          # (database or None for the default one, table)


@dataclass(frozen=True)
class IndexSpec:
    name: str | None                   # None: MySQL names it after its first column
    columns: tuple[tuple[str, int | None], ...]
    unique: bool = False
    primary: bool = False
    kind: str = "BTREE"
    if_not_exists: bool = False
    expression: bool = False           # has functional parts: not representable
    check: str | None = None           # kind CHECK: the condition's text


@dataclass(frozen=True)
class ColumnSpec:
    column: MyColumn                   # position 0: set when placed in a table
    primary: bool = False              # inline PRIMARY KEY
    unique: bool = False               # inline UNIQUE
    references: bool = False           # inline REFERENCES: a foreign key on this column
    first: bool = False
    after: str | None = None
    has_default: bool = False          # a DEFAULT clause was written


# -- ALTER TABLE clauses -------------------------------------------------------------------

@dataclass(frozen=True)
class AddColumn:
    spec: ColumnSpec
    if_not_exists: bool = False


@dataclass(frozen=True)
class ChangeColumn:
    old: str                           # the column's current name
    spec: ColumnSpec                   # the complete new definition
    if_exists: bool = False


@dataclass(frozen=True)
class DropColumn:
    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class RenameColumn:
    old: str
    new: str


@dataclass(frozen=True)
class SetDefault:
    column: str
    default: str | None                # None: DROP DEFAULT


@dataclass(frozen=True)
class AddIndex:
    index: IndexSpec


@dataclass(frozen=True)
class DropIndex:
    name: str                          # 'PRIMARY' for DROP PRIMARY KEY
    if_exists: bool = False
    constraint: bool = False           # DROP CONSTRAINT: may also be a check or foreign key


@dataclass(frozen=True)
class DropConstraint:
    """DROP FOREIGN KEY / DROP CHECK name."""
    name: str
    kinds: tuple[str, ...]             # 'foreign', 'check'
    if_exists: bool = False


@dataclass(frozen=True)
class RowsChanged:
    """A clause that changes existing rows without row events: the table is copied again."""
    what: str
    other: Name | None = None          # a second table whose rows change too (EXCHANGE / CONVERT)


@dataclass(frozen=True)
class RenameIndex:
    old: str
    new: str


@dataclass(frozen=True)
class RenameTo:
    new: Name


@dataclass(frozen=True)
class TableOptions:
    options: tuple[tuple[str, str], ...]   # (upper-case option name, value)


@dataclass(frozen=True)
class ConvertCharset:
    charset: str
    collation: str | None = None


@dataclass(frozen=True)
class Ignored:
    """A clause with no effect on the replica (ALGORITHM=, FORCE, foreign keys...)."""
    what: str


@dataclass(frozen=True)
class Unsupported:
    """A clause that changes the table in a way pgbaton cannot follow."""
    what: str


Clause = (AddColumn | ChangeColumn | DropColumn | RenameColumn | SetDefault | AddIndex | DropIndex
          | DropConstraint | RowsChanged | RenameIndex | RenameTo | TableOptions | ConvertCharset | Ignored
          | Unsupported)


# -- statements ----------------------------------------------------------------------------

@dataclass(frozen=True)
class CreateTable:
    name: Name
    columns: tuple[ColumnSpec, ...]
    indexes: tuple[IndexSpec, ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    if_not_exists: bool = False
    or_replace: bool = False
    temporary: bool = False
    notes: tuple[str, ...] = ()        # parts that were passed over (checks, foreign keys)


@dataclass(frozen=True)
class CreateTableLike:
    name: Name
    like: Name
    if_not_exists: bool = False
    or_replace: bool = False
    temporary: bool = False


@dataclass(frozen=True)
class AlterTable:
    name: Name
    clauses: tuple[Clause, ...]
    if_exists: bool = False
    ignore: bool = False  # ALTER IGNORE TABLE (MariaDB): duplicates deleted, bad values cut, no row events


@dataclass(frozen=True)
class DropTables:
    names: tuple[Name, ...]
    if_exists: bool = False
    temporary: bool = False


@dataclass(frozen=True)
class RenameTables:
    pairs: tuple[tuple[Name, Name], ...]


@dataclass(frozen=True)
class TruncateTable:
    name: Name


@dataclass(frozen=True)
class DropDatabase:
    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class CreateView:
    """CREATE [OR REPLACE] VIEW / ALTER VIEW."""
    name: Name
    columns: tuple[str, ...]
    select: str                        # the MySQL query text
    or_replace: bool = False
    if_not_exists: bool = False


@dataclass(frozen=True)
class DropViews:
    names: tuple[Name, ...]
    if_exists: bool = False


@dataclass(frozen=True)
class PassOver:
    """A statement that does not change replicated tables (views, grants, FLUSH...)."""
    what: str
    tables: tuple[Name, ...] = field(default=())


Statement = (CreateTable | CreateTableLike | AlterTable | DropTables | RenameTables | TruncateTable
             | DropDatabase | CreateView | DropViews | PassOver)
