"""Statements + tracked definitions -> actions on the replica (pure).

``translate`` works on a snapshot of the tracked tables of one source and
returns what must happen, in order.  It never looks at PostgreSQL: ALTERs are
applied to the MySQL definition pgbaton tracks, so a target catalog that has not
caught up cannot mislead it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from sqlglot.tokenizer_core import TokenType

from pgbaton.errors import DDLError
from pgbaton.mysql.ddl import statements as st
from pgbaton.mysql.ddl.alter import Work, add_index, alter_table, table_options
from pgbaton.mysql.ddl.parse import parse
from pgbaton.mysql.ddl.tokens import Cursor, tokenize
from pgbaton.mysql.model import MyTable

log = logging.getLogger(__name__)

Key = tuple[str, str]          # (database, table) on the source


@dataclass(frozen=True)
class Tracked:
    table: MyTable
    state: str = "replicating"


@dataclass(frozen=True)
class Scope:
    databases: frozenset[str]                 # replicated MySQL databases
    default_db: str | None = None             # the session's database when the statement ran
    wants: Callable[[str, str], bool] = lambda db, t: True
    mariadb: bool | None = None               # the source's flavour (which executable comments run)


# -- actions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Create:
    table: MyTable
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Drop:
    key: Key


@dataclass(frozen=True)
class Rename:
    old: Key
    new: Key
    table: MyTable                            # the definition under its new name


@dataclass(frozen=True)
class Alter:
    old: MyTable
    new: MyTable
    column_renames: tuple[tuple[str, str], ...] = ()   # (old name, new name)
    index_renames: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resync:
    """The table's rows changed in a way the binlog does not carry: copy it again."""
    key: Key
    reason: str


@dataclass(frozen=True)
class MakeView:
    """A view created or replaced; the executor translates the query (schemas are config)."""
    key: Key
    columns: tuple[str, ...]
    select: str
    if_not_exists: bool = False


@dataclass(frozen=True)
class DropView:
    key: Key
    if_exists: bool = True


@dataclass(frozen=True)
class Truncate:
    key: Key


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Fail:
    key: Key | None
    reason: str


Action = Create | Drop | Rename | Alter | Resync | MakeView | DropView | Truncate | Skip | Fail


# -- entry points --------------------------------------------------------------------------

def translate_text(text: str, tables: Mapping[Key, Tracked], scope: Scope) -> list[Action]:
    """Parse and translate; anything not understood becomes a ``Fail`` naming the table
    when it can be guessed.  Raises nothing."""
    try:
        stmts = parse(text, scope.mariadb)
    except DDLError as exc:
        return [_unparsed(text, str(exc), tables, scope)]
    except RecursionError:
        return [_unparsed(text, "statement nested too deeply", tables, scope)]
    actions: list[Action] = []
    work = dict(tables)
    for stmt in stmts:
        try:
            actions.extend(translate(stmt, work, scope))
        except DDLError as exc:
            actions.append(Fail(_first_table(stmt, scope), str(exc)))
        except Exception as exc:  # a translator bug must not stop replication: record it
            log.exception("DDL translation failed")
            actions.append(Fail(_first_table(stmt, scope), f"internal error in the DDL translator: {exc!r}"))
    return actions


def translate(stmt: st.Statement, tables: dict[Key, Tracked], scope: Scope) -> list[Action]:
    """Actions for one statement; ``tables`` is updated to the state after it."""
    if isinstance(stmt, st.PassOver):
        return [Skip(f"{stmt.what}: does not change replicated tables")]
    if isinstance(stmt, st.CreateTable):
        return _create(stmt, tables, scope)
    if isinstance(stmt, st.CreateTableLike):
        return _create_like(stmt, tables, scope)
    if isinstance(stmt, st.DropTables):
        return _drop(stmt, tables, scope)
    if isinstance(stmt, st.RenameTables):
        return _rename(stmt, tables, scope)
    if isinstance(stmt, st.TruncateTable):
        key = _key(stmt.name, scope)
        if key is None or key not in tables:
            return [Skip("TRUNCATE of a table that is not replicated")]
        if tables[key].state != "replicating":
            return [Skip(f"TRUNCATE of {key[0]}.{key[1]}: table is {tables[key].state}")]
        return [Truncate(key)]
    if isinstance(stmt, st.AlterTable):
        return _alter(stmt, tables, scope)
    if isinstance(stmt, st.CreateView):
        key = _key(stmt.name, scope)
        if key is None:
            return [Skip("CREATE VIEW in a database that is not replicated")]
        return [MakeView(key, stmt.columns, stmt.select, stmt.if_not_exists and not stmt.or_replace)]
    if isinstance(stmt, st.DropViews):
        keys = [k for k in (_key(n, scope) for n in stmt.names) if k is not None]
        return [DropView(k) for k in keys] or [Skip("DROP VIEW in a database that is not replicated")]
    if isinstance(stmt, st.DropDatabase):
        if stmt.name not in scope.databases:
            return [Skip(f"DROP DATABASE {stmt.name}: not replicated")]
        keys = sorted(k for k in tables if k[0] == stmt.name)
        for k in keys:
            del tables[k]
        return [Drop(k) for k in keys] or [Skip(f"DROP DATABASE {stmt.name}: no tables replicated")]
    raise DDLError(f"statement kind {type(stmt).__name__} is not handled")


# -- helpers -------------------------------------------------------------------------------

def _key(name: st.Name, scope: Scope) -> Key | None:
    """(db, table), or None when the database is not replicated."""
    db = name[0] or scope.default_db
    if db is None:
        raise DDLError(f"table {name[1]!r} has no database and no default database was selected")
    return (db, name[1]) if db in scope.databases else None


def _first_table(stmt: st.Statement, scope: Scope) -> Key | None:
    name: st.Name | None = None
    if isinstance(stmt, st.AlterTable | st.CreateTable | st.CreateTableLike | st.TruncateTable):
        name = stmt.name
    elif isinstance(stmt, st.DropTables) and stmt.names:
        name = stmt.names[0]
    try:
        return None if name is None else _key(name, scope)
    except DDLError:
        return None


def _unparsed(text: str, reason: str, tables: Mapping[Key, Tracked], scope: Scope) -> Action:
    """A statement the grammar does not know: guess its table from the first words
    (``ALTER TABLE x``, ``CREATE INDEX i ON x``...) so it can be marked."""
    key = guess_table(text, scope)
    if key is None and _other_database_only(text, scope):
        return Skip(f"not understood, names no replicated database ({reason})")
    return Fail(key if key in tables else None, f"statement not understood: {reason}")


def guess_table(text: str, scope: Scope) -> Key | None:
    try:
        cur = Cursor(tokenize(text))
        for words in (("ALTER", "ONLINE", "IGNORE", "TABLE"), ("ALTER", "IGNORE", "TABLE"),
                      ("ALTER", "ONLINE", "TABLE"), ("ALTER", "TABLE"), ("TRUNCATE", "TABLE"),
                      ("TRUNCATE",), ("CREATE", "TABLE"), ("DROP", "TABLE")):
            if cur.accept(*words):
                cur.accept("IF", "NOT", "EXISTS") or cur.accept("IF", "EXISTS")
                return _key(cur.qualified(), scope)
        if cur.accept("CREATE") or cur.accept("DROP"):
            while not cur.at_end() and not cur.accept("ON"):
                cur.next()
            if not cur.at_end():
                return _key(cur.qualified(), scope)
    except DDLError:
        return None
    return None


def _other_database_only(text: str, scope: Scope) -> bool:
    """Every qualified name in the statement is in a database that is not replicated,
    and the session's database is not replicated either."""
    if scope.default_db in scope.databases:
        return False
    try:
        toks = tokenize(text)
    except DDLError:
        return scope.default_db is not None
    for i, tok in enumerate(toks[:-1]):
        if toks[i + 1].token_type == TokenType.DOT and tok.text in scope.databases:
            return False
    return scope.default_db is not None


def build_table(stmt: st.CreateTable, db: str) -> MyTable:
    """The tracked definition of a new table."""
    options = dict(stmt.options)
    charset = options.get("CHARSET")
    collation = options.get("COLLATE")
    if charset is None and collation:
        charset = collation.split("_")[0]
    seen: set[str] = set()
    cols = []
    for spec in stmt.columns:
        c = spec.column
        if c.name.lower() in seen:
            raise DDLError(f"duplicate column {c.name!r}")
        seen.add(c.name.lower())
        if charset and c.charset is None and c.data_type in ("char", "varchar", "tinytext", "text",
                                                             "mediumtext", "longtext", "enum", "set"):
            c = replace(c, charset=charset.lower(), collation=(collation or "").lower() or None)
        cols.append(c)
    work = Work.of(MyTable(db=db, name=stmt.name[1], columns=tuple(cols), engine=options.get("ENGINE")))
    for spec in stmt.columns:
        if spec.primary:
            add_index(work, st.IndexSpec("PRIMARY", ((spec.column.name, None),), unique=True, primary=True))
    for idx in stmt.indexes:
        if idx.kind != "FOREIGN":
            add_index(work, idx)
    for spec in stmt.columns:          # MySQL names inline UNIQUE keys after explicit ones
        if spec.unique:
            add_index(work, st.IndexSpec(None, ((spec.column.name, None),), unique=True))
    # foreign keys last: any index of the statement that leads with their columns serves them
    for idx in stmt.indexes:
        if idx.kind == "FOREIGN":
            add_index(work, idx)
    for spec in stmt.columns:
        if spec.references:
            add_index(work, st.IndexSpec(None, ((spec.column.name, None),), kind="FOREIGN"))
    table_options(work, stmt.options)
    return work.result().named()


def _create(stmt: st.CreateTable, tables: dict[Key, Tracked], scope: Scope) -> list[Action]:
    if stmt.temporary:
        return [Skip("CREATE TEMPORARY TABLE: temporary tables are not replicated")]
    key = _key(stmt.name, scope)
    if key is None:
        return [Skip("CREATE TABLE in a database that is not replicated")]
    if not scope.wants(*key):
        return [Skip(f"CREATE TABLE {key[0]}.{key[1]}: excluded by the table filter")]
    out: list[Action] = []
    if key in tables:
        if stmt.if_not_exists and not stmt.or_replace:
            return [Skip(f"CREATE TABLE IF NOT EXISTS {key[0]}.{key[1]}: exists")]
        out.append(Drop(key))
    table = build_table(stmt, key[0])
    tables[key] = Tracked(table)
    return [*out, Create(table, stmt.notes)]


def _create_like(stmt: st.CreateTableLike, tables: dict[Key, Tracked], scope: Scope) -> list[Action]:
    if stmt.temporary:
        return [Skip("CREATE TEMPORARY TABLE: temporary tables are not replicated")]
    key = _key(stmt.name, scope)
    if key is None:
        return [Skip("CREATE TABLE LIKE in a database that is not replicated")]
    if not scope.wants(*key):
        return [Skip(f"CREATE TABLE {key[0]}.{key[1]}: excluded by the table filter")]
    if key in tables and stmt.if_not_exists and not stmt.or_replace:
        return [Skip(f"CREATE TABLE IF NOT EXISTS {key[0]}.{key[1]}: exists")]
    like_db = stmt.like[0] or scope.default_db
    src = tables.get((like_db or "", stmt.like[1]))
    if src is None:
        raise DDLError(f"CREATE TABLE {key[1]} LIKE {like_db}.{stmt.like[1]}: the definition of "
                       f"{like_db}.{stmt.like[1]} is not tracked")
    out: list[Action] = [Drop(key)] if key in tables else []
    # LIKE copies indexes (InnoDB's own foreign-key indexes keep their flag) and checks,
    # not the foreign keys themselves
    extra = {k: v for k, v in src.table.extra.items() if k != "foreign_keys"}
    table = replace(src.table, db=key[0], name=key[1], auto_increment=None, extra=extra)
    tables[key] = Tracked(table)
    if src.state != "replicating":
        # the tracked definition of a table being re-copied may lag behind the source's
        return [*out, Create(table), Resync(key, f"created LIKE {like_db}.{stmt.like[1]}, which was being re-copied")]
    return [*out, Create(table)]


def _drop(stmt: st.DropTables, tables: dict[Key, Tracked], scope: Scope) -> list[Action]:
    if stmt.temporary:
        return [Skip("DROP TEMPORARY TABLE: temporary tables are not replicated")]
    out: list[Action] = []
    for name in stmt.names:
        key = _key(name, scope)
        if key is not None and key in tables:
            del tables[key]
            out.append(Drop(key))
    return out or [Skip("DROP TABLE of tables that are not replicated")]


def _rename(stmt: st.RenameTables, tables: dict[Key, Tracked], scope: Scope) -> list[Action]:
    out: list[Action] = []
    for old_name, new_name in stmt.pairs:
        old = _key(old_name, scope)
        new = _key(new_name, scope)
        tracked = tables.pop(old) if old is not None and old in tables else None
        if tracked is None:
            if new is not None and scope.wants(*new):
                out.append(Fail(None, f"{new[0]}.{new[1]} was renamed from a table that is not replicated; "
                                      "its definition is unknown (run `replica init` to include it)"))
            continue
        assert old is not None
        if new is None:
            out.append(Drop(old))
            continue
        table = replace(tracked.table, db=new[0], name=new[1])
        tables[new] = Tracked(table, tracked.state)
        out.append(Rename(old, new, table))
    return out or [Skip("RENAME TABLE of tables that are not replicated")]


def _other_tables(stmt: st.AlterTable, key: Key, scope: Scope) -> list[Action]:
    """The second table of EXCHANGE PARTITION / CONVERT: its rows changed too."""
    out: list[Action] = []
    for clause in stmt.clauses:
        if isinstance(clause, st.RowsChanged) and clause.other is not None:
            name = clause.other if clause.other[0] or scope.default_db else (key[0], clause.other[1])
            other = _key(name, scope)
            if other is not None and scope.wants(*other):
                out.append(Resync(other, f"{clause.what} (with {key[0]}.{key[1]})"))
    return out


def _alter(stmt: st.AlterTable, tables: dict[Key, Tracked], scope: Scope) -> list[Action]:
    key = _key(stmt.name, scope)
    if key is None:
        return [Skip("ALTER TABLE in a database that is not replicated")]
    tracked = tables.get(key)
    if tracked is None:
        return [Skip(f"ALTER TABLE {key[0]}.{key[1]}: table is not replicated"), *_other_tables(stmt, key, scope)]
    if tracked.state != "replicating":
        renames = [c for c in stmt.clauses if isinstance(c, st.RenameTo)]
        if not renames:
            return [Skip(f"ALTER TABLE {key[0]}.{key[1]}: table is {tracked.state}"),
                    *_other_tables(stmt, key, scope)]
        return _rename(st.RenameTables(((stmt.name, renames[-1].new),)), tables, scope)
    work = alter_table(tracked.table, stmt.clauses)
    if stmt.ignore and any(not isinstance(c, st.Ignored | st.RenameTo) for c in stmt.clauses):
        # the copy MariaDB makes keeps the first row of each duplicate key and turns values that
        # do not fit into warnings: rows deleted and changed without a row event
        work.resync.append("ALTER IGNORE TABLE may delete rows with duplicate keys and change values "
                           "that do not fit, without row events")
    new = work.result().named(previous=tracked.table)
    out: list[Action] = []
    if new != tracked.table:
        tables[key] = Tracked(new, tracked.state)
        out.append(Alter(tracked.table, new, tuple(work.renames.items()), tuple(work.index_renames.items()),
                         tuple(work.notes)))
    renames = [c for c in stmt.clauses if isinstance(c, st.RenameTo)]
    final = key
    if renames:
        out.extend(_rename(st.RenameTables(((stmt.name, renames[-1].new),)), tables, scope))
        final = _key(renames[-1].new, scope) or key
    if work.resync and final in tables:
        out.append(Resync(final, "; ".join(dict.fromkeys(work.resync))))
    out.extend(_other_tables(stmt, key, scope))
    if not out:
        return [Skip(f"ALTER TABLE {key[0]}.{key[1]}: nothing to change on the replica "
                     f"({'; '.join(work.notes) or 'no effect'})")]
    return out
