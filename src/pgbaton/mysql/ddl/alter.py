"""ALTER TABLE clauses applied to a tracked ``MyTable``: the new definition, pure.

MySQL semantics that the new definition must follow: MODIFY/CHANGE replace the
whole column definition; dropping a column removes it from indexes (an index left
without columns is dropped); primary key columns are NOT NULL; an unnamed index is
named after its first column (``a``, ``a_2``, ...); column and index names compare
case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pgbaton.errors import DDLError
from pgbaton.mysql.ddl import statements as st
from pgbaton.mysql.model import MyColumn, MyIndex, MyTable


@dataclass
class Work:
    """A table being changed clause by clause."""

    table: MyTable
    columns: list[MyColumn]
    indexes: list[MyIndex]
    origins: list[str | None] = field(default_factory=list)      # each column's name before the statement
    added: set[str] = field(default_factory=set)                 # indexes this statement created (lower case)
    index_renames: dict[str, str] = field(default_factory=dict)  # original index name -> current
    notes: list[str] = field(default_factory=list)
    comment: str = ""
    auto_increment: int | None = None

    @classmethod
    def of(cls, table: MyTable) -> Work:
        return cls(table, list(table.columns), list(table.indexes), origins=[c.name for c in table.columns],
                   comment=table.comment, auto_increment=table.auto_increment)

    @property
    def renames(self) -> dict[str, str]:
        """Original column name -> new name, for columns that kept their data."""
        return {o: c.name for o, c in zip(self.origins, self.columns, strict=True) if o is not None and o != c.name}

    def old_col(self, name: str) -> int | None:
        """A column named in CHANGE/RENAME: names refer to the table before the statement
        (so ``CHANGE a b .., CHANGE b a ..`` swaps)."""
        low = name.lower()
        hits = [i for i, c in enumerate(self.columns) if c.name.lower() == low]
        old = [i for i in hits if self.origins[i] is not None and self.origins[i].lower() == low]  # type: ignore[union-attr]
        found = old or hits
        return found[0] if found else None

    # -- lookups ---------------------------------------------------------------------------
    def col_index(self, name: str) -> int | None:
        low = name.lower()
        return next((i for i, c in enumerate(self.columns) if c.name.lower() == low), None)

    def need_col(self, name: str) -> int:
        i = self.col_index(name)
        if i is None:
            raise DDLError(f"column {name!r} does not exist in {self.table.db}.{self.table.name}")
        return i

    def idx_index(self, name: str) -> int | None:
        low = name.lower()
        return next((i for i, x in enumerate(self.indexes) if x.name.lower() == low), None)

    def free_index_name(self, base: str) -> str:
        if self.idx_index(base) is None and base.upper() != "PRIMARY":
            return base
        n = 2
        while self.idx_index(f"{base}_{n}") is not None:
            n += 1
        return f"{base}_{n}"

    # -- result ----------------------------------------------------------------------------
    def result(self, db: str | None = None, name: str | None = None) -> MyTable:
        seen: set[str] = set()
        for c in self.columns:
            if c.name.lower() in seen:
                raise DDLError(f"duplicate column name {c.name!r}")
            seen.add(c.name.lower())
        # indexes that existed before the statement name columns as they were then
        final = {o.lower(): c.name for o, c in zip(self.origins, self.columns, strict=True) if o is not None}
        kept: list[MyIndex] = []
        for idx in self.indexes:
            if idx.name.lower() not in self.added:
                idx = replace(idx, columns=tuple((final[c.lower()], p) for c, p in idx.columns if c.lower() in final))
            if idx.columns:
                kept.append(idx)
        self.indexes = kept
        pk = next((i for i in self.indexes if i.primary), None)
        pk_cols = {c.lower() for c, _ in pk.columns} if pk else set()
        cols = []
        for pos, c in enumerate(self.columns, start=1):
            if c.name.lower() in pk_cols and c.nullable:
                c = replace(c, nullable=False, default=None if c.default == "NULL" else c.default)
            cols.append(replace(c, position=pos))
        indexes = sorted(self.indexes, key=lambda i: not i.primary)
        return replace(self.table, db=db or self.table.db, name=name or self.table.name, columns=tuple(cols),
                       indexes=tuple(indexes), comment=self.comment, auto_increment=self.auto_increment)


def place(work: Work, col: MyColumn, spec: st.ColumnSpec, at: int | None, origin: str | None = None) -> None:
    """Put ``col`` at ``at`` (its old place) or where FIRST / AFTER says, else at the end."""
    if spec.first:
        i = 0
    elif spec.after is not None:
        i = work.need_col(spec.after) + 1
    elif at is not None:
        i = at
    else:
        i = len(work.columns)
    work.columns.insert(i, col)
    work.origins.insert(i, origin)


def add_index(work: Work, spec: st.IndexSpec) -> None:
    if spec.expression:
        work.notes.append(f"index {spec.name or '?'} has expression parts: not replicated")
        return
    for c, _ in spec.columns:
        work.need_col(c)
    cols = tuple((work.columns[work.need_col(c)].name, p) for c, p in spec.columns)
    if spec.primary:
        if any(i.primary for i in work.indexes):
            raise DDLError(f"{work.table.db}.{work.table.name} already has a primary key")
        work.indexes.insert(0, MyIndex("PRIMARY", cols, unique=True, primary=True, kind="BTREE"))
        work.added.add("primary")
        return
    if spec.name is not None and work.idx_index(spec.name) is not None:
        if spec.if_not_exists:
            return
        raise DDLError(f"index {spec.name!r} already exists on {work.table.db}.{work.table.name}")
    name = spec.name or work.free_index_name(cols[0][0])
    work.indexes.append(MyIndex(name, cols, unique=spec.unique, primary=False, kind=spec.kind))
    work.added.add(name.lower())


def add_column(work: Work, clause: st.AddColumn) -> None:
    spec = clause.spec
    if work.col_index(spec.column.name) is not None:
        if clause.if_not_exists:
            return
        raise DDLError(f"column {spec.column.name!r} already exists")
    place(work, spec.column, spec, None)
    _inline_keys(work, spec)


def _inline_keys(work: Work, spec: st.ColumnSpec) -> None:
    name = spec.column.name
    if spec.primary:
        add_index(work, st.IndexSpec("PRIMARY", ((name, None),), unique=True, primary=True))
    if spec.unique:
        add_index(work, st.IndexSpec(None, ((name, None),), unique=True))


def change_column(work: Work, clause: st.ChangeColumn) -> None:
    i = work.old_col(clause.old)
    if i is None:
        if clause.if_exists:
            return
        work.need_col(clause.old)
        return
    work.columns.pop(i)
    origin = work.origins.pop(i)
    new = clause.spec.column
    place(work, new, clause.spec, i, origin)
    _inline_keys(work, clause.spec)


def drop_column(work: Work, clause: st.DropColumn) -> None:
    i = work.col_index(clause.name)
    if i is None:
        if clause.if_exists:
            return
        work.need_col(clause.name)
        return
    name = work.columns.pop(i).name.lower()
    work.origins.pop(i)
    if not work.columns:
        raise DDLError("cannot drop the last column of a table")
    kept = []
    for idx in work.indexes:
        cols = tuple((c, p) for c, p in idx.columns if c.lower() != name)
        if cols:
            kept.append(replace(idx, columns=cols))
    work.indexes = kept


def rename_column(work: Work, clause: st.RenameColumn) -> None:
    i = work.old_col(clause.old)
    if i is None:
        work.need_col(clause.old)
        return
    old = work.columns[i]
    work.columns[i] = replace(old, name=clause.new)


def set_default(work: Work, clause: st.SetDefault) -> None:
    i = work.need_col(clause.column)
    col = work.columns[i]
    default = clause.default
    if default is None:
        default = "NULL" if col.nullable else None
    work.columns[i] = replace(col, default=default)


def drop_index(work: Work, clause: st.DropIndex) -> None:
    if clause.name.upper() == "PRIMARY":
        i = next((k for k, x in enumerate(work.indexes) if x.primary), None)
    else:
        i = work.idx_index(clause.name)
    if i is None:
        if clause.if_exists or clause.constraint:
            return
        raise DDLError(f"index {clause.name!r} does not exist on {work.table.db}.{work.table.name}")
    work.indexes.pop(i)


def rename_index(work: Work, clause: st.RenameIndex) -> None:
    i = work.idx_index(clause.old)
    if i is None:
        raise DDLError(f"index {clause.old!r} does not exist on {work.table.db}.{work.table.name}")
    if work.idx_index(clause.new) is not None:
        raise DDLError(f"index {clause.new!r} already exists")
    old = work.indexes[i]
    work.indexes[i] = replace(old, name=clause.new)
    if old.name.lower() in work.added:
        work.added.add(clause.new.lower())
    for orig, cur in list(work.index_renames.items()):
        if cur == old.name:
            work.index_renames[orig] = clause.new
            break
    else:
        work.index_renames[old.name] = clause.new


def table_options(work: Work, options: tuple[tuple[str, str], ...]) -> None:
    for key, value in options:
        if key == "COMMENT":
            work.comment = value
        elif key == "AUTO_INCREMENT":
            try:
                work.auto_increment = int(value)
            except ValueError:
                raise DDLError(f"AUTO_INCREMENT value {value!r} is not a number") from None
        elif key == "ENGINE":
            work.table = replace(work.table, engine=value)


def convert_charset(work: Work, clause: st.ConvertCharset) -> None:
    text_types = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
    work.columns = [replace(c, charset=clause.charset, collation=clause.collation)
                    if c.data_type in text_types else c for c in work.columns]


def apply_clause(work: Work, clause: st.Clause) -> None:
    if isinstance(clause, st.AddColumn):
        add_column(work, clause)
    elif isinstance(clause, st.ChangeColumn):
        change_column(work, clause)
    elif isinstance(clause, st.DropColumn):
        drop_column(work, clause)
    elif isinstance(clause, st.RenameColumn):
        rename_column(work, clause)
    elif isinstance(clause, st.SetDefault):
        set_default(work, clause)
    elif isinstance(clause, st.AddIndex):
        add_index(work, clause.index)
    elif isinstance(clause, st.DropIndex):
        drop_index(work, clause)
    elif isinstance(clause, st.RenameIndex):
        rename_index(work, clause)
    elif isinstance(clause, st.TableOptions):
        table_options(work, clause.options)
    elif isinstance(clause, st.ConvertCharset):
        convert_charset(work, clause)
    elif isinstance(clause, st.Unsupported):
        raise DDLError(clause.what)
    elif isinstance(clause, st.Ignored):
        work.notes.append(f"{clause.what} passed over")
    # RenameTo is handled by the caller


def alter_table(table: MyTable, clauses: tuple[st.Clause, ...]) -> Work:
    """Apply MySQL ALTER clauses to ``table`` (drop clauses first, as MySQL does)."""
    work = Work.of(table)
    drops = [c for c in clauses if isinstance(c, st.DropIndex | st.DropColumn)]
    for clause in drops + [c for c in clauses if not isinstance(c, st.DropIndex | st.DropColumn)]:
        apply_clause(work, clause)
    return work
