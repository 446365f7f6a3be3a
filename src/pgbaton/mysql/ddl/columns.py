"""Column definitions: MySQL type and attribute grammar -> ``MyColumn``.

The values match what information_schema reports on MariaDB (``column_type``
like ``int(10) unsigned``, defaults quoted as MariaDB quotes them), so a column
created by replicated DDL converts exactly like one read at ``replica init``.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from sqlglot.tokenizer_core import Token, TokenType

from pgbaton.errors import DDLError
from pgbaton.mysql.ddl.statements import ColumnSpec
from pgbaton.mysql.ddl.tokens import STRING_TYPES, Cursor, sql_text
from pgbaton.mysql.introspect import is_json_column, json_check_column
from pgbaton.mysql.model import MyColumn

# integer types: (display width signed, unsigned, numeric precision signed, unsigned)
_INTS = {"tinyint": (4, 3, 3, 3), "smallint": (6, 5, 5, 5), "mediumint": (9, 8, 7, 7),
         "int": (11, 10, 10, 10), "bigint": (20, 20, 19, 20)}
_ALIASES = {"integer": "int", "int1": "tinyint", "int2": "smallint", "int3": "mediumint", "int4": "int",
            "int8": "bigint", "middleint": "mediumint", "dec": "decimal", "numeric": "decimal",
            "fixed": "decimal", "real": "double", "float4": "float", "float8": "double",
            "character": "char", "nchar": "char", "nvarchar": "varchar", "bool": "boolean"}
_TEXTS = {"tinytext": 255, "text": 65535, "mediumtext": 16777215, "longtext": 4294967295}
_BLOBS = {"tinyblob": 255, "blob": 65535, "mediumblob": 16777215, "longblob": 4294967295}
_PLAIN = {"date", "year", "json", "geometry", "point", "linestring", "polygon", "multipoint",
          "multilinestring", "multipolygon", "geometrycollection", "geomcollection", "uuid", "inet4",
          "inet6", "boolean", "serial"}
_TIMES = {"datetime", "timestamp", "time"}
KNOWN_TYPES = (set(_INTS) | set(_ALIASES) | set(_TEXTS) | set(_BLOBS) | _PLAIN | _TIMES
               | {"decimal", "float", "double", "bit", "char", "varchar", "binary", "varbinary", "enum",
                  "set", "long", "national", "nchar", "sql_tsi_year"})
_NOW_WORDS = {"CURRENT_TIMESTAMP", "NOW", "LOCALTIME", "LOCALTIMESTAMP"}


def mysql_string(value: str) -> str:
    """A value as MariaDB shows a string default: single quotes, '' and \\\\ escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _ints(cur: Cursor) -> list[int]:
    """``(n)`` or ``(m, d)`` after a type name, if present."""
    if not cur.is_type(TokenType.L_PAREN):
        return []
    inner = cur.skip_balanced()
    nums = [t.text for t in inner if t.token_type != TokenType.COMMA]
    try:
        return [int(n) for n in nums]
    except ValueError:
        raise DDLError(f"expected numbers in a type length, got ({sql_text(inner)})") from None


def _members(cur: Cursor) -> list[str]:
    inner = cur.skip_balanced()
    out: list[str] = []
    for tok in inner:
        if tok.token_type in STRING_TYPES:
            out.append(tok.text)
        elif tok.token_type not in (TokenType.COMMA, TokenType.INTRODUCER):
            raise DDLError(f"expected string members in ENUM/SET, got {tok.text!r}")
    return out


def _type_name(cur: Cursor) -> str:
    """The (possibly multi-word) type name, canonical and lower case."""
    if not cur.is_name() or cur.is_type(TokenType.IDENTIFIER):
        raise cur.error("expected a column type")
    word = cur.next().text.lower()
    if word == "double":
        cur.accept("PRECISION")
    elif word == "long":
        if cur.accept("VARBINARY"):
            return "mediumblob"
        cur.accept("VARCHAR") or cur.accept("CHAR", "VARYING")
        return "mediumtext"
    elif word == "national":
        word = cur.next().text.lower()
    if word in ("char", "character", "nchar") and cur.accept("VARYING"):
        return "varchar"
    if word == "varcharacter":
        return "varchar"
    word = _ALIASES.get(word, word)
    if word not in KNOWN_TYPES:
        raise DDLError(f"unknown column type {word!r}")
    return word


def parse_type(cur: Cursor, name: str) -> MyColumn:
    """A data type with its modifiers (UNSIGNED, ZEROFILL, CHARACTER SET, COLLATE)."""
    t = _type_name(cur)
    members: list[str] = []
    args: list[int] = []
    if t in ("enum", "set"):
        members = _members(cur)
    else:
        args = _ints(cur)
    unsigned = zerofill = False
    charset = collation = None
    while True:
        if cur.accept("UNSIGNED"):
            unsigned = True
        elif cur.accept("SIGNED"):
            pass
        elif cur.accept("ZEROFILL"):
            zerofill = unsigned = True
        elif cur.accept("BINARY") or cur.accept("ASCII") or cur.accept("UNICODE") or cur.accept("BYTE"):
            pass
        elif cur.accept("CHARACTER", "SET") or cur.accept("CHARSET"):
            charset = cur.name("a character set").lower()
        elif cur.accept("COLLATE"):
            collation = cur.name("a collation").lower()
        else:
            break
    col = _build(name, t, args, members, unsigned, zerofill)
    if charset or collation:
        col = replace(col, charset=charset or (collation.split("_")[0] if collation else None),
                      collation=collation)
    return col


def _build(name: str, t: str, args: list[int], members: list[str], unsigned: bool, zerofill: bool) -> MyColumn:
    def mk(data_type: str, column_type: str, **kw: object) -> MyColumn:
        return MyColumn(name=name, position=0, data_type=data_type, column_type=column_type, **kw)  # type: ignore[arg-type]

    sign = (" unsigned" if unsigned else "") + (" zerofill" if zerofill else "")
    if t in _INTS:
        ws, wu, ps, pu = _INTS[t]
        width = args[0] if args else (wu if unsigned else ws)
        return mk(t, f"{t}({width}){sign}", numeric_precision=pu if unsigned else ps, numeric_scale=0)
    if t == "boolean":
        return mk("tinyint", "tinyint(1)", numeric_precision=3, numeric_scale=0)
    if t == "serial":
        return mk("bigint", "bigint(20) unsigned", numeric_precision=20, numeric_scale=0, nullable=False,
                  extra="auto_increment")
    if t == "decimal":
        p = args[0] if args else 10
        s = args[1] if len(args) > 1 else 0
        return mk("decimal", f"decimal({p},{s}){sign}", numeric_precision=p, numeric_scale=s)
    if t in ("float", "double"):
        if t == "float" and len(args) == 1 and args[0] > 24:
            t = "double"
        shape = f"({args[0]},{args[1]})" if len(args) == 2 else ""
        return mk(t, f"{t}{shape}{sign}", numeric_precision=12 if t == "float" else 22,
                  numeric_scale=args[1] if len(args) == 2 else None)
    if t == "bit":
        m = args[0] if args else 1
        return mk("bit", f"bit({m})", numeric_precision=m)
    if t in _TIMES:
        fsp = args[0] if args else 0
        return mk(t, f"{t}({fsp})" if fsp else t, datetime_precision=fsp)
    if t in ("char", "varchar", "binary", "varbinary"):
        if not args and t.startswith("var"):
            raise DDLError(f"{t.upper()} needs a length")
        n = args[0] if args else 1
        return mk(t, f"{t}({n})", char_max_length=n)
    if t in ("text", "blob") and args:
        sizes = _TEXTS if t == "text" else _BLOBS
        t = next(k for k, v in sorted(sizes.items(), key=lambda kv: kv[1]) if v >= args[0])
    if t in _TEXTS:
        return mk(t, t, char_max_length=_TEXTS[t])
    if t in _BLOBS:
        return mk(t, t, char_max_length=_BLOBS[t])
    if t in ("enum", "set"):
        shown = ",".join("'" + m.replace("'", "''") + "'" for m in members)
        return mk(t, f"{t}({shown})", char_max_length=max((len(m) for m in members), default=0))
    if t == "json":
        return mk("json", "longtext", char_max_length=4294967295, charset="utf8mb4", collation="utf8mb4_bin")
    if t == "year":
        return mk("year", "year(4)")
    if t == "sql_tsi_year":
        return mk("year", "year(4)")
    return mk(t, t)


# -- attributes ----------------------------------------------------------------------------

def _literal(cur: Cursor) -> str:
    """A literal or expression after DEFAULT, in MariaDB's COLUMN_DEFAULT form."""
    if cur.accept("NULL"):
        return "NULL"
    if cur.accept("TRUE"):
        return "1"
    if cur.accept("FALSE"):
        return "0"
    sign = ""
    while cur.is_type(TokenType.DASH, TokenType.PLUS):
        if cur.next().token_type == TokenType.DASH:
            sign = "" if sign == "-" else "-"
    cur.accept_type(TokenType.INTRODUCER)
    tok = cur.peek()
    if tok is None:
        raise cur.error("expected a default value")
    if tok.token_type in STRING_TYPES:
        parts = [cur.next().text]
        while cur.is_type(*STRING_TYPES):          # 'a' 'b' is one literal
            parts.append(cur.next().text)
        return mysql_string("".join(parts))
    leading_dot = tok.token_type == TokenType.DOT and cur.is_type(TokenType.NUMBER, ahead=1)
    if tok.token_type == TokenType.NUMBER or leading_dot:
        text = "".join(cur.next().text for _ in range(2 if tok.token_type == TokenType.DOT else 1))
        if text.startswith("."):
            text = "0" + text
        return sign + text
    if sign:
        raise cur.error("expected a number after the sign")
    if tok.token_type == TokenType.BIT_STRING:
        return f"b'{cur.next().text}'"
    if tok.token_type == TokenType.HEX_STRING:
        return _hex_default(cur.next())
    if tok.token_type == TokenType.L_PAREN:
        inner = cur.skip_balanced()
        return _expression_default(inner)
    if cur.is_name():
        word = cur.next().text
        if word.upper() in _NOW_WORDS:
            args = cur.skip_balanced() if cur.is_type(TokenType.L_PAREN) else []
            return f"current_timestamp({sql_text(args)})"
        if cur.is_type(TokenType.L_PAREN):
            args = cur.skip_balanced()
            return f"{word.lower()}({sql_text(args)})"
        return word.lower()
    raise cur.error("expected a default value")


def _hex_default(tok: Token) -> str:
    try:
        return mysql_string(bytes.fromhex(tok.text if len(tok.text) % 2 == 0 else "0" + tok.text)
                            .decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return f"x'{tok.text}'"


def _expression_default(inner: list[Token]) -> str:
    """``DEFAULT (expr)``: a lone literal inside parentheses is that literal."""
    if len(inner) == 1 or (len(inner) == 2 and inner[0].token_type == TokenType.DASH):
        sub = Cursor(inner)
        try:
            value = _literal(sub)
        except DDLError:
            value = None
        if value is not None and sub.at_end():
            return value
    return sql_text(inner)


def default_value(cur: Cursor) -> str:
    return _literal(cur)


def parse_column(cur: Cursor) -> ColumnSpec:
    """``name type [attributes]`` (the part after ADD COLUMN / MODIFY)."""
    name = cur.name("a column name")
    return column_body(cur, name)


def column_body(cur: Cursor, name: str) -> ColumnSpec:
    col = parse_type(cur, name)
    nullable = col.nullable
    default: str | None = None
    has_default = False
    extra: list[str] = [col.extra] if col.extra else []
    comment = ""
    gen_expr: str | None = None
    gen_kind = ""
    unique = "auto_increment" in col.extra       # SERIAL: BIGINT UNSIGNED NOT NULL AUTO_INCREMENT UNIQUE
    primary = False
    references = json_check = False
    on_update = ""
    while not cur.at_end() and not cur.is_type(TokenType.COMMA, TokenType.R_PAREN):
        if cur.is_word("FIRST", "AFTER"):
            break
        if cur.accept("NOT", "NULL"):
            nullable = False
        elif cur.accept("NULL"):
            nullable = True
        elif cur.accept("DEFAULT"):
            default, has_default = default_value(cur), True
        elif cur.accept("AUTO_INCREMENT"):
            extra.append("auto_increment")
        elif cur.accept("PRIMARY", "KEY") or cur.accept("KEY"):
            primary, nullable = True, False
        elif cur.accept("UNIQUE"):
            cur.accept("KEY")
            unique = True
        elif cur.accept("COMMENT"):
            comment = cur.expect_type(TokenType.STRING, "a comment string").text
        elif cur.accept("CHARACTER", "SET") or cur.accept("CHARSET"):
            col = replace(col, charset=cur.name("a character set").lower())
        elif cur.accept("COLLATE"):
            coll = cur.name("a collation").lower()
            col = replace(col, collation=coll, charset=col.charset or coll.split("_")[0])
        elif cur.accept("ON", "UPDATE"):
            word = cur.name("CURRENT_TIMESTAMP")
            args = cur.skip_balanced() if cur.is_type(TokenType.L_PAREN) else []
            on_update = f"on update {word.lower()}({sql_text(args)})"
        elif cur.accept("GENERATED", "ALWAYS", "AS") or cur.accept("AS"):
            if cur.accept("ROW"):        # system-versioning columns (MariaDB)
                cur.next()
                gen_kind = "VIRTUAL"
                continue
            gen_expr = sql_text(cur.skip_balanced())
            gen_kind = gen_kind or "VIRTUAL"
        elif cur.accept("VIRTUAL"):
            gen_kind = "VIRTUAL"
        elif cur.accept("STORED") or cur.accept("PERSISTENT"):
            gen_kind = "STORED"
        elif cur.accept("SERIAL", "DEFAULT", "VALUE"):
            extra.append("auto_increment")
            nullable, unique = False, True
        elif cur.accept("CONSTRAINT"):
            if not cur.is_word("CHECK"):
                cur.name()
        elif cur.accept("CHECK"):
            checked = json_check_column(sql_text(cur.skip_balanced()))
            json_check = json_check or (checked is not None and checked.lower() == name.lower())
        elif cur.accept("REFERENCES"):
            cur.qualified()
            if cur.is_type(TokenType.L_PAREN):
                cur.skip_balanced()
            skip_reference_options(cur)
            references = True
        elif (cur.accept("INVISIBLE") or cur.accept("VISIBLE") or cur.accept("COMPRESSED")
              or cur.accept("WITH", "SYSTEM", "VERSIONING") or cur.accept("WITHOUT", "SYSTEM", "VERSIONING")):
            if cur.accept_type(TokenType.EQ):
                cur.next()
        elif cur.accept("SRID") or cur.accept("REF_SYSTEM_ID"):     # MySQL 8 / MariaDB
            cur.accept_type(TokenType.EQ)
            col = replace(col, srid=int(cur.expect_type(TokenType.NUMBER, "an SRID").text))
        elif cur.accept("COLUMN_FORMAT") or cur.accept("STORAGE"):
            cur.next()
        elif cur.accept("ENGINE_ATTRIBUTE") or cur.accept("SECONDARY_ENGINE_ATTRIBUTE"):
            cur.accept_type(TokenType.EQ)
            cur.next()
        else:
            raise cur.error("unexpected column attribute")
    if "auto_increment" in extra:
        nullable = False
    if gen_expr is not None:
        extra = [e for e in extra if e != "auto_increment"] + [f"{gen_kind} GENERATED"]
    if on_update:
        extra.append(on_update)
    if default is None and nullable and gen_expr is None:
        default = "NULL"
    if col.data_type == "decimal" and default not in (None, "NULL"):
        default = decimal_default(default, col.numeric_scale or 0)
    col = replace(col, nullable=nullable, default=default, extra=" ".join(dict.fromkeys(extra)),
                  comment=comment, generation_expression=gen_expr)
    if is_json_column(col.data_type, json_check):        # as introspect decides it at init
        col = replace(col, data_type="json")
    return ColumnSpec(col, primary=primary, unique=unique, has_default=has_default, references=references)


def decimal_default(text: str | None, scale: int) -> str | None:
    """MariaDB shows a DECIMAL default as a number with the column's scale (-12.50)."""
    assert text is not None
    raw = text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "'" else text
    try:
        return str(Decimal(raw.strip()).quantize(Decimal(1).scaleb(-scale)))
    except ArithmeticError:
        return text


def skip_reference_options(cur: Cursor) -> None:
    while True:
        if cur.accept("MATCH"):
            cur.next()
        elif cur.accept("ON", "DELETE") or cur.accept("ON", "UPDATE"):
            if not (cur.accept("SET", "NULL") or cur.accept("SET", "DEFAULT") or cur.accept("NO", "ACTION")):
                cur.next()
        else:
            return


def position(cur: Cursor, spec: ColumnSpec) -> ColumnSpec:
    """Optional FIRST / AFTER col after a column definition."""
    if cur.accept("FIRST"):
        return replace(spec, first=True)
    if cur.accept("AFTER"):
        return replace(spec, after=cur.name("a column name"))
    return spec
