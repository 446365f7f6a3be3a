"""ALTER TABLE clauses applied to a tracked ``MyTable``: the new definition, pure.

MySQL semantics that the new definition must follow: MODIFY/CHANGE replace the
whole column definition; dropping a column removes it from indexes (an index left
without columns is dropped); primary key columns are NOT NULL; an unnamed index is
named after its first column (``a``, ``a_2``, ...); column and index names compare
case-insensitively.

Foreign keys: InnoDB gives a foreign key whose columns lead no index an index of its
own (named after the constraint, else after its first column), and drops that index
again by itself once another index leads with the same columns.  Such indexes are
tracked like any other; their names, the foreign keys' and the table-level checks'
live in ``MyTable.extra`` (keys in ``introspect``), read there at ``replica init`` too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pgbaton.errors import DDLError
from pgbaton.mysql.ddl import statements as st
from pgbaton.mysql.ddl.columns import decimal_default
from pgbaton.mysql.ddl.genexpr import to_postgres
from pgbaton.mysql.introspect import CHECKS, FK_INDEXES, FOREIGN_KEYS, is_json_column, json_check_column
from pgbaton.mysql.model import MyColumn, MyIndex, MyTable
from pgbaton.mysql.typemap import is_number


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
    foreign_keys: list[str] = field(default_factory=list)
    fk_indexes: list[str] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)
    resync: list[str] = field(default_factory=list)              # why existing rows must be copied again

    @classmethod
    def of(cls, table: MyTable) -> Work:
        x = table.extra
        return cls(table, list(table.columns), list(table.indexes), origins=[c.name for c in table.columns],
                   comment=table.comment, auto_increment=table.auto_increment,
                   foreign_keys=list(x.get(FOREIGN_KEYS, ())), fk_indexes=list(x.get(FK_INDEXES, ())),
                   checks=dict(x.get(CHECKS, {})))

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
        self._drop_covered_fk_indexes()
        pk = next((i for i in self.indexes if i.primary), None)
        pk_cols = {c.lower() for c, _ in pk.columns} if pk else set()
        json_checked = {c.lower() for c in self.checks.values() if c}
        cols = []
        for pos, c in enumerate(self.columns, start=1):
            if c.name.lower() in pk_cols and c.nullable:
                c = replace(c, nullable=False, default=None if c.default == "NULL" else c.default)
            if is_json_column(c.data_type, c.name.lower() in json_checked):
                c = replace(c, data_type="json")
            cols.append(replace(c, position=pos))
        indexes = sorted(self.indexes, key=lambda i: not i.primary)
        names = {i.name.lower() for i in indexes}
        extra = {k: v for k, v in self.table.extra.items() if k not in (FOREIGN_KEYS, FK_INDEXES, CHECKS)}
        if self.foreign_keys:
            extra[FOREIGN_KEYS] = list(self.foreign_keys)
        fk_indexes = [n for n in self.fk_indexes if n.lower() in names]
        if fk_indexes:
            extra[FK_INDEXES] = fk_indexes
        if self.checks:
            extra[CHECKS] = dict(self.checks)
        return replace(self.table, db=db or self.table.db, name=name or self.table.name, columns=tuple(cols),
                       indexes=tuple(indexes), comment=self.comment, auto_increment=self.auto_increment,
                       extra=extra)

    def _drop_covered_fk_indexes(self) -> None:
        """InnoDB drops an index it made for a foreign key once another index can serve it."""
        generated = {n.lower() for n in self.fk_indexes}
        for idx in list(self.indexes):
            if idx.name.lower() not in generated:
                continue
            cols = [c.lower() for c, _ in idx.columns]
            if any(other is not idx and other.name.lower() not in generated and _leads(other, cols)
                   for other in self.indexes):
                self.indexes.remove(idx)
                self.fk_indexes = [n for n in self.fk_indexes if n.lower() != idx.name.lower()]


def _leads(idx: MyIndex, cols: list[str]) -> bool:
    """``idx`` starts with ``cols`` (whole columns, same order): it can serve a foreign key."""
    if idx.kind in ("FULLTEXT", "SPATIAL") or len(idx.columns) < len(cols):
        return False
    head = idx.columns[:len(cols)]
    return all(c.lower() == want and p is None for (c, p), want in zip(head, cols, strict=True))


def add_foreign_key(work: Work, spec: st.IndexSpec) -> None:
    """A foreign key: its own index when no index leads with its columns."""
    cols = [work.columns[work.need_col(c)].name for c, _ in spec.columns]
    fk = spec.name or _next_fk_name(work)
    if fk.lower() not in {n.lower() for n in work.foreign_keys}:
        work.foreign_keys.append(fk)
    if not cols or any(_leads(i, [c.lower() for c in cols]) for i in work.indexes):
        return
    name = work.free_index_name(spec.name or cols[0])
    work.indexes.append(MyIndex(name, tuple((c, None) for c in cols), unique=False, primary=False, kind="BTREE"))
    work.added.add(name.lower())
    work.fk_indexes.append(name)


def _next_fk_name(work: Work) -> str:
    """InnoDB names an unnamed foreign key ``<table>_ibfk_<n>``, one past the highest n."""
    prefix = f"{work.table.name}_ibfk_".lower()
    used = [int(n[len(prefix):]) for n in work.foreign_keys
            if n.lower().startswith(prefix) and n[len(prefix):].isdigit()]
    return f"{work.table.name}_ibfk_{max(used, default=0) + 1}"


def add_check(work: Work, spec: st.IndexSpec) -> None:
    """A table-level CHECK: named CONSTRAINT_<n> (the lowest n free) when unnamed; a check
    that is exactly json_valid(col) makes a LONGTEXT column JSON, as at ``replica init``."""
    name = spec.name
    if name is None:
        taken = {n.lower() for n in work.checks}
        n = 1
        while f"constraint_{n}" in taken:
            n += 1
        name = f"CONSTRAINT_{n}"
    col = json_check_column(spec.check or "")
    i = work.col_index(col) if col else None
    work.checks[name] = work.columns[i].name if i is not None else ""


def drop_constraint(work: Work, name: str, kinds: tuple[str, ...], if_exists: bool) -> None:
    """DROP FOREIGN KEY / CHECK / CONSTRAINT: a foreign key's index stays; a JSON check's
    column goes back to LONGTEXT (its values are re-read: jsonb does not keep the text)."""
    low = name.lower()
    if "foreign" in kinds and low in {n.lower() for n in work.foreign_keys}:
        work.foreign_keys = [n for n in work.foreign_keys if n.lower() != low]
        return
    if "check" in kinds:
        hit = next((n for n in work.checks if n.lower() == low), None)
        if hit is not None:
            col = work.checks.pop(hit)
            i = work.col_index(col) if col else None
            if i is not None and work.columns[i].data_type == "json" and work.columns[i].column_type == "longtext":
                still = any(c.lower() == col.lower() for c in work.checks.values())
                if not still:
                    work.columns[i] = replace(work.columns[i], data_type="longtext")
                    work.resync.append(f"JSON check on {col} dropped: the column's original text is re-read")
            return
    if "index" in kinds:
        drop_index(work, st.DropIndex(name, if_exists))
        return
    if not if_exists:
        raise DDLError(f"no constraint {name!r} on {work.table.db}.{work.table.name}")


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
    if spec.kind == "FOREIGN":
        add_foreign_key(work, spec)
        return
    if spec.kind == "CHECK":
        add_check(work, spec)
        return
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
    _generated_values(work, spec.column, None)
    if _computed_default(spec.column):
        # MySQL evaluates it once per existing row (CURRENT_TIMESTAMP, UUID(), an expression) and
        # writes no row events: PostgreSQL's own evaluation would differ (its clock, its UUIDs)
        work.resync.append(f"column {spec.column.name} added with DEFAULT {spec.column.default}: "
                           "the values the source gave the existing rows are read")
    if spec.column.auto_increment and not work.table.pk_columns:
        # InnoDB numbers the rows in the order of its hidden row id: PostgreSQL cannot know it
        work.resync.append(f"AUTO_INCREMENT column {spec.column.name} added to a table without a key: "
                           "the source's numbering is read")


def _computed_default(col: MyColumn) -> bool:
    """A default the server computes (a function or an expression), not a literal."""
    if col.default is None or col.generation_expression is not None:
        return False
    text = col.default.strip()
    low = text.lower()
    if low in ("null", "true", "false") or is_number(text):
        return False
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return False
    return not (low[:2] in ("b'", "x'") and text.endswith("'"))


def _generated_values(work: Work, col: MyColumn, old: MyColumn | None) -> None:
    """A generated column added, or its expression changed: MySQL computes the existing
    rows' values without row events.  The plan computes them in PostgreSQL when the
    expression translates exactly, else the table is copied again."""
    expr = col.generation_expression
    if expr is None or (old is not None and old.generation_expression == expr):
        return
    if to_postgres(expr, {c.name: c for c in work.columns if c.name != col.name}, col) is None:
        work.resync.append(f"generated column {col.name}: ({expr}) has no exact PostgreSQL equivalent, "
                           "existing rows are read from the source")


def _inline_keys(work: Work, spec: st.ColumnSpec) -> None:
    name = spec.column.name
    if spec.primary:
        add_index(work, st.IndexSpec("PRIMARY", ((name, None),), unique=True, primary=True))
    if spec.unique:
        add_index(work, st.IndexSpec(None, ((name, None),), unique=True))
    if spec.references:
        add_foreign_key(work, st.IndexSpec(None, ((name, None),), kind="FOREIGN"))


def change_column(work: Work, clause: st.ChangeColumn) -> None:
    i = work.old_col(clause.old)
    if i is None:
        if clause.if_exists:
            return
        work.need_col(clause.old)
        return
    old = work.columns.pop(i)
    origin = work.origins.pop(i)
    new = clause.spec.column
    place(work, new, clause.spec, i, origin)
    _inline_keys(work, clause.spec)
    _generated_values(work, new, old)
    if old.data_type == "json" and new.data_type != "json":
        work.resync.append(f"column {new.name} is no longer JSON: its original text is read from the source "
                           "(jsonb does not keep it)")
    if old.charset and new.charset and old.charset.lower() != new.charset.lower() \
            and new.charset.lower() not in ("utf8mb4", "utf8mb3", "utf8"):
        work.resync.append(f"column {new.name} converted to {new.charset}: characters it cannot hold "
                           "are changed by the source")


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
    work.columns[i] = replace(old, name=clause.new, pg_name="")   # named anew, as init would


def set_default(work: Work, clause: st.SetDefault) -> None:
    i = work.need_col(clause.column)
    col = work.columns[i]
    default = clause.default
    if default is None:
        default = "NULL" if col.nullable else None
    elif col.data_type == "decimal" and default != "NULL":
        default = decimal_default(default, col.numeric_scale or 0)     # -1.5 is shown as -1.50
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
    gone = work.indexes.pop(i)
    work.fk_indexes = [n for n in work.fk_indexes if n.lower() != gone.name.lower()]


def rename_index(work: Work, clause: st.RenameIndex) -> None:
    i = work.idx_index(clause.old)
    if i is None:
        raise DDLError(f"index {clause.old!r} does not exist on {work.table.db}.{work.table.name}")
    if work.idx_index(clause.new) is not None:
        raise DDLError(f"index {clause.new!r} already exists")
    old = work.indexes[i]
    work.indexes[i] = replace(old, name=clause.new)
    # a renamed index is the user's: InnoDB no longer drops it by itself
    work.fk_indexes = [n for n in work.fk_indexes if n.lower() != old.name.lower()]
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
    if clause.charset.lower() not in ("utf8mb4", "utf8mb3", "utf8") and any(
            c.data_type in text_types for c in work.columns):
        work.resync.append(f"CONVERT TO CHARACTER SET {clause.charset}: characters it cannot hold are "
                           "changed by the source")
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
        if clause.constraint:
            drop_constraint(work, clause.name, ("foreign", "check", "index"), True)
        else:
            drop_index(work, clause)
    elif isinstance(clause, st.DropConstraint):
        drop_constraint(work, clause.name, clause.kinds, clause.if_exists)
    elif isinstance(clause, st.RowsChanged):
        work.resync.append(clause.what)
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
    dropping = st.DropIndex | st.DropColumn | st.DropConstraint

    def is_fk(c: st.Clause) -> bool:
        return isinstance(c, st.AddIndex) and c.index.kind == "FOREIGN"
    drops = [c for c in clauses if isinstance(c, dropping)]
    rest = [c for c in clauses if not isinstance(c, dropping) and not is_fk(c)]
    # foreign keys last: an index added by the same statement can serve them
    for clause in drops + rest + [c for c in clauses if is_fk(c)]:
        apply_clause(work, clause)
    return work
