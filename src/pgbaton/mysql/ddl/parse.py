"""MySQL/MariaDB DDL text -> statement dataclasses.

A recursive-descent grammar over sqlglot's MySQL tokens.  sqlglot's own parser is
not used for the statement structure: it maps several MySQL types to others
(INT8 to TINYINT, REAL to FLOAT), drops display widths, and falls back to an
opaque command for RENAME TABLE, FULLTEXT indexes, ``ADD COLUMN (a, b)``,
``AS (..) PERSISTENT`` and more.  Every failure is a ``DDLError``.
"""

from __future__ import annotations

from sqlglot.tokenizer_core import TokenType

from pgbaton.errors import DDLError
from pgbaton.mysql.ddl import statements as st
from pgbaton.mysql.ddl.columns import column_body, default_value, parse_column, position, skip_reference_options
from pgbaton.mysql.ddl.tokens import Cursor, sql_text, tokenize

# first words of statements that never change replicated tables
_PASS_FIRST = {"GRANT", "REVOKE", "SAVEPOINT", "RELEASE", "ROLLBACK", "FLUSH", "ANALYZE", "OPTIMIZE",
               "CHECK", "CHECKSUM", "REPAIR", "INSTALL", "UNINSTALL", "RESET", "PURGE", "KILL", "DO",
               "SET", "LOCK", "UNLOCK", "XA", "BEGIN", "COMMIT", "START", "USE", "CACHE", "LOAD", "SHOW",
               "HELP", "SIGNAL", "RESIGNAL", "SHUTDOWN", "BINLOG", "CALL", "STOP", "PREPARE",
               "EXECUTE", "DEALLOCATE", "CHANGE", "SELECT", "BACKUP"}
# objects after CREATE / ALTER / DROP that are not tables
_PASS_OBJECTS = {"VIEW", "TRIGGER", "PROCEDURE", "FUNCTION", "EVENT", "USER", "ROLE", "SERVER", "SEQUENCE",
                 "TABLESPACE", "LOGFILE", "PACKAGE", "AGGREGATE", "SPATIAL REFERENCE", "RESOURCE",
                 "INSTANCE", "UNDO", "DATABASE", "SCHEMA"}
_CLAUSE_WORDS = {"ADD", "DROP", "CHANGE", "MODIFY", "RENAME", "ALTER", "CONVERT", "ALGORITHM", "LOCK", "FORCE",
                 "ORDER", "ENABLE", "DISABLE", "DISCARD", "IMPORT", "TRUNCATE", "COALESCE", "REORGANIZE",
                 "EXCHANGE", "ANALYZE", "CHECK", "OPTIMIZE", "REBUILD", "REPAIR", "REMOVE", "PARTITION"}
_TABLE_OPTIONS = {"AUTOEXTEND_SIZE", "AUTO_INCREMENT", "AVG_ROW_LENGTH", "CHARSET", "CHECKSUM", "COLLATE",
                  "COMMENT", "COMPRESSION", "CONNECTION", "DELAY_KEY_WRITE", "ENCRYPTION", "ENCRYPTION_KEY_ID",
                  "ENCRYPTED", "ENGINE", "ENGINE_ATTRIBUTE", "INSERT_METHOD", "KEY_BLOCK_SIZE", "MAX_ROWS",
                  "MIN_ROWS", "PACK_KEYS", "PAGE_CHECKSUM", "PAGE_COMPRESSED", "PAGE_COMPRESSION_LEVEL",
                  "PASSWORD", "ROW_FORMAT", "SECONDARY_ENGINE_ATTRIBUTE", "SEQUENCE", "STATS_AUTO_RECALC",
                  "STATS_PERSISTENT", "STATS_SAMPLE_PAGES", "TABLESPACE", "TRANSACTIONAL", "UNION",
                  "IETF_QUOTES", "TYPE"}
_PARTITION_DATA = {"DROP", "TRUNCATE", "EXCHANGE", "DISCARD", "IMPORT", "CONVERT"}
_PARTITION_KEEP = {"ADD", "COALESCE", "REORGANIZE", "ANALYZE", "CHECK", "OPTIMIZE", "REBUILD", "REPAIR"}


def parse(text: str, mariadb: bool | None = None) -> list[st.Statement]:
    """Every statement in ``text`` (usually one), with the executable comments the
    source runs (``mariadb``: its flavour, see ``tokens.unwrap_executable_comments``)."""
    tokens = tokenize(text, mariadb)
    out: list[st.Statement] = []
    cur = Cursor(tokens)
    while cur.peek() is not None:
        if cur.accept_type(TokenType.SEMICOLON):
            continue
        stmt = _statement(cur)
        if not cur.at_end():
            raise cur.error("unexpected text after the statement")
        out.append(stmt)
    if not out:
        raise DDLError("empty statement")
    return out


def parse_one(text: str) -> st.Statement:
    stmts = parse(text)
    if len(stmts) != 1:
        raise DDLError(f"expected one statement, got {len(stmts)}")
    return stmts[0]


def _statement(cur: Cursor) -> st.Statement:
    if cur.accept("CREATE"):
        return _create(cur)
    if cur.accept("ALTER"):
        return _alter(cur)
    if cur.accept("DROP"):
        return _drop(cur)
    if cur.accept("RENAME"):
        return _rename(cur)
    if cur.accept("TRUNCATE"):
        cur.accept("TABLE")
        name = cur.qualified()
        _wait_option(cur)
        return st.TruncateTable(name)
    tok = cur.peek()
    assert tok is not None
    if cur.is_word(*_PASS_FIRST):
        return _pass_rest(cur, tok.text.upper())
    raise cur.error("unknown statement")


def _pass_rest(cur: Cursor, what: str) -> st.PassOver:
    while not cur.at_end():
        cur.next()
    return st.PassOver(what)


def _wait_option(cur: Cursor) -> None:
    if cur.accept("WAIT"):
        cur.next()
    else:
        cur.accept("NOWAIT")


def _create(cur: Cursor) -> st.Statement:
    or_replace = cur.accept("OR", "REPLACE")
    # view/routine prefixes: DEFINER = user, SQL SECURITY x, ALGORITHM = x
    while cur.is_word("DEFINER", "ALGORITHM", "SQL"):
        if cur.accept("SQL", "SECURITY"):
            cur.next()
            continue
        cur.next()
        cur.accept_type(TokenType.EQ)
        _skip_user(cur)
    temporary = cur.accept("TEMPORARY")
    cur.accept("ONLINE") or cur.accept("OFFLINE")
    if cur.is_word("UNIQUE", "FULLTEXT", "SPATIAL", "INDEX"):
        return _create_index(cur, or_replace)
    if cur.accept("TABLE"):
        return _create_table(cur, or_replace, temporary)
    if cur.accept("VIEW"):
        return _view(cur, or_replace)
    tok = cur.peek()
    if tok is not None and cur.is_word(*{o.split()[0] for o in _PASS_OBJECTS}):
        return _pass_rest(cur, f"CREATE {tok.text.upper()}")
    if cur.is_word("DEFINER"):
        return _pass_rest(cur, "CREATE")
    raise cur.error("unknown CREATE statement")


def _view(cur: Cursor, or_replace: bool) -> st.CreateView:
    """``[IF NOT EXISTS] name [(columns)] AS select [WITH [CASCADED | LOCAL] CHECK OPTION]``."""
    if_not_exists = cur.accept("IF", "NOT", "EXISTS")
    name = cur.qualified()
    columns: list[str] = []
    if cur.is_type(TokenType.L_PAREN):
        columns = [t.text for t in cur.skip_balanced() if t.token_type != TokenType.COMMA]
    cur.expect("AS")
    rest = []
    while not cur.at_end():
        rest.append(cur.next())
    words = [t.text.upper() for t in rest[-4:]]
    for tail in (["WITH", "CASCADED", "CHECK", "OPTION"], ["WITH", "LOCAL", "CHECK", "OPTION"],
                 ["WITH", "CHECK", "OPTION"]):
        if words[-len(tail):] == tail:
            rest = rest[:-len(tail)]
            break
    return st.CreateView(name, tuple(columns), sql_text(rest), or_replace, if_not_exists)


def _view_prefixes(cur: Cursor) -> None:
    """ALGORITHM = x, DEFINER = user, SQL SECURITY x before VIEW."""
    while cur.is_word("DEFINER", "ALGORITHM", "SQL"):
        if cur.accept("SQL", "SECURITY"):
            cur.next()
            continue
        cur.next()
        cur.accept_type(TokenType.EQ)
        _skip_user(cur)


def _skip_user(cur: Cursor) -> None:
    """``user@host``, ``CURRENT_USER[()]`` or a plain value."""
    cur.next()
    if cur.is_type(TokenType.L_PAREN):
        cur.skip_balanced()
    while cur.is_type(TokenType.PARAMETER) or (cur.peek() is not None and cur.peek().text.startswith("@")):  # type: ignore[union-attr]
        cur.next()
        if not cur.at_end() and not cur.is_word("VIEW", "TRIGGER", "PROCEDURE", "FUNCTION", "EVENT"):
            cur.next()


def _create_table(cur: Cursor, or_replace: bool, temporary: bool) -> st.Statement:
    if_not_exists = cur.accept("IF", "NOT", "EXISTS")
    name = cur.qualified()
    if cur.accept("LIKE"):
        return st.CreateTableLike(name, cur.qualified(), if_not_exists, or_replace, temporary)
    if cur.is_type(TokenType.L_PAREN) and cur.is_word("LIKE", ahead=1):
        cur.next()
        cur.next()
        like = cur.qualified()
        cur.expect_type(TokenType.R_PAREN, ")")
        return st.CreateTableLike(name, like, if_not_exists, or_replace, temporary)
    columns: list[st.ColumnSpec] = []
    indexes: list[st.IndexSpec] = []
    notes: list[str] = []
    if cur.accept_type(TokenType.L_PAREN):
        while True:
            _create_definition(cur, columns, indexes, notes)
            if cur.accept_type(TokenType.COMMA):
                continue
            cur.expect_type(TokenType.R_PAREN, ") or ,")
            break
    options = _table_options(cur)
    if cur.accept("PARTITION", "BY"):
        _skip_partitioning(cur)
    cur.accept("IGNORE") or cur.accept("REPLACE")
    cur.accept("AS")
    if cur.is_word("SELECT", "WITH") or cur.is_type(TokenType.L_PAREN):
        raise cur.error("CREATE TABLE ... SELECT is not supported")
    if not columns:
        raise DDLError("CREATE TABLE without columns")
    return st.CreateTable(name, tuple(columns), tuple(indexes), tuple(options), if_not_exists, or_replace,
                          temporary, tuple(notes))


def _create_definition(cur: Cursor, columns: list[st.ColumnSpec], indexes: list[st.IndexSpec],
                       notes: list[str]) -> None:
    idx = _index_definition(cur, notes)
    if idx is not None:
        indexes.append(idx)
    elif cur.accept("PERIOD", "FOR"):
        cur.next()
        cur.skip_balanced()
        notes.append("PERIOD FOR")
    else:
        columns.append(parse_column(cur))


def _index_definition(cur: Cursor, notes: list[str]) -> st.IndexSpec | None:
    """An index or constraint definition if one starts here (CREATE TABLE or ALTER ... ADD)."""
    symbol = None
    if cur.is_word("CONSTRAINT"):
        cur.next()
        if not cur.is_word("PRIMARY", "UNIQUE", "FOREIGN", "CHECK"):
            symbol = cur.name("a constraint name")
    if cur.accept("PRIMARY", "KEY"):
        return _index_body(cur, "PRIMARY", primary=True, unique=True)
    if cur.accept("UNIQUE"):
        cur.accept("INDEX") or cur.accept("KEY")
        return _index_body(cur, symbol, unique=True)
    if cur.accept("FULLTEXT") or cur.accept("SPATIAL"):
        kind = cur.tokens[cur.i - 1].text.upper()
        cur.accept("INDEX") or cur.accept("KEY")
        return _index_body(cur, None, kind=kind)
    if cur.is_word("INDEX", "KEY") and not cur.is_type(TokenType.L_PAREN, ahead=1) or (
            cur.is_word("INDEX", "KEY") and cur.is_type(TokenType.L_PAREN, ahead=1)):
        cur.next()
        return _index_body(cur, None)
    if cur.accept("FOREIGN", "KEY"):
        cur.accept("IF", "NOT", "EXISTS")
        index_name = None if cur.is_type(TokenType.L_PAREN) else cur.name("an index name")
        columns, _ = _index_columns(cur)
        cur.expect("REFERENCES")
        cur.qualified()
        if cur.is_type(TokenType.L_PAREN):
            cur.skip_balanced()
        skip_reference_options(cur)
        notes.append("FOREIGN KEY")
        # the constraint's name, else the index name given, names both the key and its index
        return st.IndexSpec(name=symbol or index_name, columns=columns, kind="FOREIGN")
    if cur.accept("CHECK"):
        text = sql_text(cur.skip_balanced())
        cur.accept("NOT", "ENFORCED") or cur.accept("ENFORCED")
        notes.append("CHECK")
        return st.IndexSpec(name=symbol, columns=(), kind="CHECK", check=text)
    if symbol is not None:
        raise cur.error("expected a constraint after CONSTRAINT name")
    return None


def _index_body(cur: Cursor, name: str | None, *, primary: bool = False, unique: bool = False,
                kind: str = "BTREE") -> st.IndexSpec:
    if_not_exists = cur.accept("IF", "NOT", "EXISTS")
    if not cur.is_type(TokenType.L_PAREN) and not cur.is_word("USING", "TYPE"):
        given = cur.name("an index name")
        if not primary:
            name = given
    kind = _index_using(cur, kind)
    columns, expression = _index_columns(cur)
    kind = _index_options(cur, kind)
    return st.IndexSpec(name, columns, unique=unique, primary=primary, kind=kind, if_not_exists=if_not_exists,
                        expression=expression)


def _index_using(cur: Cursor, kind: str) -> str:
    if cur.accept("USING") or cur.accept("TYPE"):
        using = cur.name("an index type").upper()
        if kind == "BTREE":
            kind = using
    return kind


def _index_columns(cur: Cursor) -> tuple[tuple[tuple[str, int | None], ...], bool]:
    cur.expect_type(TokenType.L_PAREN, "(")
    cols: list[tuple[str, int | None]] = []
    expression = False
    while True:
        if cur.is_type(TokenType.L_PAREN):
            cur.skip_balanced()
            expression = True
        else:
            col = cur.name("a column name")
            length: int | None = None
            if cur.is_type(TokenType.L_PAREN):
                inner = cur.skip_balanced()
                if len(inner) != 1 or not inner[0].text.isdigit():
                    raise cur.error("expected a prefix length")
                length = int(inner[0].text)
            cols.append((col, length))
        cur.accept("ASC") or cur.accept("DESC")
        if cur.accept_type(TokenType.COMMA):
            continue
        cur.expect_type(TokenType.R_PAREN, ") or ,")
        return tuple(cols), expression


def _index_options(cur: Cursor, kind: str) -> str:
    while True:
        if cur.is_word("USING", "TYPE"):
            kind = _index_using(cur, kind)
        elif cur.accept("KEY_BLOCK_SIZE") or cur.accept("ENGINE_ATTRIBUTE") or cur.accept("CLUSTERING") \
                or cur.accept("SECONDARY_ENGINE_ATTRIBUTE"):
            cur.accept_type(TokenType.EQ)
            cur.next()
        elif cur.accept("COMMENT"):
            cur.next()
        elif cur.accept("WITH", "PARSER"):
            cur.next()
        elif cur.accept("VISIBLE") or cur.accept("INVISIBLE") or cur.accept("IGNORED") \
                or cur.accept("NOT", "IGNORED"):
            pass
        else:
            return kind


def _table_options(cur: Cursor) -> list[tuple[str, str]]:
    """``ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT 'x' ...`` (commas optional)."""
    out: list[tuple[str, str]] = []
    while not cur.at_end():
        start = cur.i
        cur.accept("DEFAULT")
        if cur.accept("CHARACTER", "SET"):
            key = "CHARSET"
        elif cur.accept("DATA", "DIRECTORY") or cur.accept("INDEX", "DIRECTORY"):
            key = "DIRECTORY"
        elif cur.is_word(*_TABLE_OPTIONS):
            key = cur.next().text.upper()
        else:
            cur.i = start
            return out
        cur.accept_type(TokenType.EQ)
        if cur.is_type(TokenType.L_PAREN):
            cur.skip_balanced()
            value = ""
        else:
            value = cur.next().text
        out.append(("CHARSET" if key == "CHARACTER" else key, value))
        if cur.is_type(TokenType.COMMA) and cur.is_word(*_CLAUSE_WORDS, ahead=1):
            return out          # an ALTER TABLE clause follows
        cur.accept_type(TokenType.COMMA)
    return out


def _skip_partitioning(cur: Cursor) -> None:
    while not cur.at_end():
        if cur.is_type(TokenType.L_PAREN):
            cur.skip_balanced()
        else:
            cur.next()


def _create_index(cur: Cursor, or_replace: bool) -> st.AlterTable:
    unique = cur.accept("UNIQUE")
    kind = "BTREE"
    if cur.accept("FULLTEXT"):
        kind = "FULLTEXT"
    elif cur.accept("SPATIAL"):
        kind = "SPATIAL"
    cur.expect("INDEX")
    if_not_exists = cur.accept("IF", "NOT", "EXISTS")
    name = cur.name("an index name")
    kind = _index_using(cur, kind)
    cur.expect("ON")
    table = cur.qualified()
    columns, expression = _index_columns(cur)
    kind = _index_options(cur, kind)
    _lock_options(cur)
    idx = st.IndexSpec(name, columns, unique=unique, kind=kind, if_not_exists=if_not_exists,
                       expression=expression)
    clauses: list[st.Clause] = [st.DropIndex(name, if_exists=True)] if or_replace else []
    return st.AlterTable(table, (*clauses, st.AddIndex(idx)))


def _lock_options(cur: Cursor) -> None:
    while cur.is_word("ALGORITHM", "LOCK"):
        cur.next()
        cur.accept_type(TokenType.EQ)
        cur.next()


# -- DROP, RENAME --------------------------------------------------------------------------

def _drop(cur: Cursor) -> st.Statement:
    temporary = cur.accept("TEMPORARY")
    if cur.accept("TABLE") or cur.accept("TABLES"):
        if_exists = cur.accept("IF", "EXISTS")
        names = [cur.qualified()]
        while cur.accept_type(TokenType.COMMA):
            names.append(cur.qualified())
        _wait_option(cur)
        cur.accept("RESTRICT") or cur.accept("CASCADE")
        return st.DropTables(tuple(names), if_exists, temporary)
    if cur.accept("INDEX"):
        cur.accept("ONLINE") or cur.accept("OFFLINE")
        if_exists = cur.accept("IF", "EXISTS")
        name = cur.name("an index name")
        cur.expect("ON")
        table = cur.qualified()
        _wait_option(cur)
        _lock_options(cur)
        return st.AlterTable(table, (st.DropIndex("PRIMARY" if name.upper() == "PRIMARY" else name, if_exists),))
    if cur.accept("DATABASE") or cur.accept("SCHEMA"):
        if_exists = cur.accept("IF", "EXISTS")
        return st.DropDatabase(cur.name("a database name"), if_exists)
    if cur.accept("VIEW"):
        if_exists = cur.accept("IF", "EXISTS")
        views = [cur.qualified()]
        while cur.accept_type(TokenType.COMMA):
            views.append(cur.qualified())
        cur.accept("RESTRICT") or cur.accept("CASCADE")
        return st.DropViews(tuple(views), if_exists)
    tok = cur.peek()
    if tok is not None and cur.is_word(*{o.split()[0] for o in _PASS_OBJECTS}):
        return _pass_rest(cur, f"DROP {tok.text.upper()}")
    raise cur.error("unknown DROP statement")


def _rename(cur: Cursor) -> st.Statement:
    if cur.accept("USER"):
        return _pass_rest(cur, "RENAME USER")
    if not (cur.accept("TABLE") or cur.accept("TABLES")):
        raise cur.error("expected TABLE after RENAME")
    cur.accept("IF", "EXISTS")
    pairs: list[tuple[st.Name, st.Name]] = []
    while True:
        old = cur.qualified()
        _wait_option(cur)
        cur.expect("TO")
        pairs.append((old, cur.qualified()))
        if not cur.accept_type(TokenType.COMMA):
            return st.RenameTables(tuple(pairs))


# -- ALTER TABLE ---------------------------------------------------------------------------

def _alter(cur: Cursor) -> st.Statement:
    cur.accept("ONLINE")
    ignore = cur.accept("IGNORE")
    start = cur.i
    _view_prefixes(cur)
    if cur.accept("VIEW"):
        return _view(cur, True)
    cur.i = start
    if not cur.accept("TABLE"):
        tok = cur.peek()
        if tok is not None and cur.is_word(*{o.split()[0] for o in _PASS_OBJECTS}, "DEFINER", "ALGORITHM", "SQL"):
            return _pass_rest(cur, f"ALTER {tok.text.upper()}")
        raise cur.error("unknown ALTER statement")
    if_exists = cur.accept("IF", "EXISTS")
    name = cur.qualified()
    _wait_option(cur)
    clauses: list[st.Clause] = []
    while not cur.at_end():
        if cur.accept("PARTITION", "BY") or cur.accept("REMOVE", "PARTITIONING"):
            _skip_partitioning(cur)
            clauses.append(st.Ignored("partitioning"))
            break
        clauses.extend(_alter_clause(cur))
        if not cur.accept_type(TokenType.COMMA) and not cur.at_end() and not _starts_option(cur):
            raise cur.error("expected , between ALTER TABLE clauses")
    return st.AlterTable(name, tuple(clauses), if_exists, ignore=bool(ignore))


def _starts_option(cur: Cursor) -> bool:
    """Table options may follow each other without commas."""
    return cur.is_word("ENGINE", "COMMENT", "AUTO_INCREMENT", "ROW_FORMAT", "DEFAULT", "CHARSET", "CHARACTER",
                       "COLLATE", "KEY_BLOCK_SIZE", "PARTITION", "ALGORITHM", "LOCK", "STATS_PERSISTENT",
                       "PACK_KEYS", "CHECKSUM", "REMOVE")


def _alter_clause(cur: Cursor) -> list[st.Clause]:
    for word in sorted(_PARTITION_DATA | _PARTITION_KEEP):
        if cur.is_word(word) and cur.is_word("PARTITION", ahead=1) and not cur.is_type(TokenType.L_PAREN, ahead=2):
            cur.next()
            cur.next()
            if word in _PARTITION_DATA:
                return [_partition_data(cur, word)]
            _partition_names(cur)
            return [st.Ignored(f"{word} PARTITION")]
    if cur.accept("ADD"):
        return _alter_add(cur)
    if cur.accept("DROP"):
        return [_alter_drop(cur)]
    if cur.accept("CHANGE"):
        cur.accept("COLUMN")
        if_exists = cur.accept("IF", "EXISTS")
        old = cur.name("a column name")
        spec = position(cur, parse_column(cur))
        return [st.ChangeColumn(old, spec, if_exists)]
    if cur.accept("MODIFY"):
        cur.accept("COLUMN")
        if_exists = cur.accept("IF", "EXISTS")
        spec = position(cur, parse_column(cur))
        return [st.ChangeColumn(spec.column.name, spec, if_exists)]
    if cur.accept("RENAME"):
        return [_alter_rename(cur)]
    if cur.accept("ALTER"):
        return [_alter_alter(cur)]
    if cur.accept("CONVERT", "TO"):
        cur.expect("CHARACTER", "SET") if cur.is_word("CHARACTER") else cur.expect("CHARSET")
        charset = cur.name("a character set").lower()
        collation = cur.name("a collation").lower() if cur.accept("COLLATE") else None
        return [st.ConvertCharset(charset, collation)]
    if cur.accept("ALGORITHM") or cur.accept("LOCK"):
        cur.accept_type(TokenType.EQ)
        cur.next()
        return [st.Ignored("ALGORITHM/LOCK")]
    for words in (("FORCE",), ("ENABLE", "KEYS"), ("DISABLE", "KEYS"), ("WITH", "VALIDATION"),
                  ("WITHOUT", "VALIDATION"), ("ADD", "SYSTEM", "VERSIONING")):
        if cur.accept(*words):
            return [st.Ignored(" ".join(words))]
    if cur.accept("ORDER", "BY"):
        cur.skip_to_clause_end()
        return [st.Ignored("ORDER BY")]
    if cur.accept("DISCARD", "TABLESPACE"):
        return [st.Ignored("DISCARD TABLESPACE")]
    if cur.accept("IMPORT", "TABLESPACE"):
        return [st.RowsChanged("IMPORT TABLESPACE replaces the table's data")]
    if cur.accept("CONVERT", "TABLE"):        # MariaDB 10.7: a table becomes a partition of this one
        other = cur.qualified()
        cur.skip_to_clause_end()
        return [st.RowsChanged("CONVERT TABLE ... TO PARTITION adds rows without row events", other)]
    opts = _table_options(cur)
    if opts:
        return [st.TableOptions(tuple(opts))]
    raise cur.error("unknown ALTER TABLE clause")


def _partition_data(cur: Cursor, word: str) -> st.RowsChanged:
    """DROP / TRUNCATE / EXCHANGE / CONVERT / DISCARD / IMPORT PARTITION: rows come and go
    without row events, here and in the table exchanged with or converted to."""
    other: st.Name | None = None
    start = cur.i
    _partition_names(cur)
    stop = cur.i
    cur.i = start
    while cur.i < stop:
        if cur.accept("WITH", "TABLE") or cur.accept("TO", "TABLE"):
            other = cur.qualified()
        else:
            cur.next()
    cur.i = max(cur.i, stop)
    return st.RowsChanged(f"{word} PARTITION changes rows without row events", other)


def _partition_names(cur: Cursor) -> None:
    """``ALL`` or ``p0, p1, ...`` and what follows up to the next clause."""
    cur.skip_to_clause_end()
    while cur.is_type(TokenType.COMMA) and cur.is_name(ahead=1) and not cur.is_word(*_CLAUSE_WORDS, ahead=1):
        cur.next()
        cur.skip_to_clause_end()


def _alter_add(cur: Cursor) -> list[st.Clause]:
    if cur.is_word("PARTITION"):
        cur.next()
        cur.skip_to_clause_end()
        return [st.Ignored("ADD PARTITION")]
    if cur.accept("PERIOD", "FOR"):
        cur.skip_to_clause_end()
        return [st.Ignored("ADD PERIOD")]
    notes: list[str] = []
    idx = _index_definition(cur, notes)
    if idx is not None:
        return [st.AddIndex(idx)]
    cur.accept("COLUMN")
    if_not_exists = cur.accept("IF", "NOT", "EXISTS")
    if cur.accept_type(TokenType.L_PAREN):
        out: list[st.Clause] = []
        while True:
            sub = _index_definition(cur, notes)
            if sub is not None:
                out.append(st.AddIndex(sub))
            else:
                out.append(st.AddColumn(parse_column(cur), if_not_exists))
            if cur.accept_type(TokenType.COMMA):
                continue
            cur.expect_type(TokenType.R_PAREN, ") or ,")
            return out
    return [st.AddColumn(position(cur, parse_column(cur)), if_not_exists)]


def _alter_drop(cur: Cursor) -> st.Clause:
    if cur.accept("PRIMARY", "KEY"):
        return st.DropIndex("PRIMARY")
    if cur.accept("INDEX") or cur.accept("KEY"):
        if_exists = cur.accept("IF", "EXISTS")
        return st.DropIndex(cur.name("an index name"), if_exists)
    if cur.accept("FOREIGN", "KEY") or cur.accept("CHECK"):
        kind = "foreign" if cur.tokens[cur.i - 1].text.upper() == "KEY" else "check"
        if_exists = cur.accept("IF", "EXISTS")
        return st.DropConstraint(cur.name("a constraint name"), (kind,), if_exists)
    if cur.accept("CONSTRAINT"):
        if_exists = cur.accept("IF", "EXISTS")
        return st.DropIndex(cur.name("a constraint name"), if_exists, constraint=True)
    if cur.accept("SYSTEM", "VERSIONING") or cur.accept("PERIOD", "FOR"):
        cur.skip_to_clause_end()
        return st.Ignored("system versioning")
    cur.accept("COLUMN")
    if_exists = cur.accept("IF", "EXISTS")
    name = cur.name("a column name")
    cur.accept("RESTRICT") or cur.accept("CASCADE")
    return st.DropColumn(name, if_exists)


def _alter_rename(cur: Cursor) -> st.Clause:
    if cur.accept("COLUMN"):
        old = cur.name("a column name")
        cur.expect("TO")
        return st.RenameColumn(old, cur.name("a column name"))
    if cur.accept("INDEX") or cur.accept("KEY"):
        old = cur.name("an index name")
        cur.expect("TO")
        return st.RenameIndex(old, cur.name("an index name"))
    cur.accept("TO") or cur.accept("AS")
    return st.RenameTo(cur.qualified())


def _alter_alter(cur: Cursor) -> st.Clause:
    if cur.accept("INDEX") or cur.accept("KEY"):
        cur.name("an index name")
        cur.accept("NOT")
        cur.next()
        return st.Ignored("index visibility")
    if cur.accept("CHECK") or cur.accept("CONSTRAINT"):
        cur.name("a constraint name")
        cur.accept("NOT")
        cur.next()
        return st.Ignored("constraint enforcement")
    cur.accept("COLUMN")
    cur.accept("IF", "EXISTS")
    col = cur.name("a column name")
    if cur.accept("SET", "DEFAULT"):
        return st.SetDefault(col, default_value(cur))
    if cur.accept("DROP", "DEFAULT"):
        return st.SetDefault(col, None)
    if cur.accept("SET", "VISIBLE") or cur.accept("SET", "INVISIBLE"):
        return st.Ignored("column visibility")
    if cur.accept("TYPE") or cur.accept("SET", "DATA", "TYPE"):
        spec = column_body(cur, col)
        return st.ChangeColumn(col, spec)
    raise cur.error("unknown ALTER COLUMN action")
