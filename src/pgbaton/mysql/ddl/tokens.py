"""Tokens of one MySQL statement, and a cursor to parse them.

Lexing (quoting, escapes, comments, numbers) is sqlglot's MySQL tokenizer.  Two
things are added on top: MySQL executable comments (``/*!50100 ... */`` and
MariaDB's ``/*M!100100 ... */``) are unwrapped, because the server runs their
content, and the tail that sqlglot keeps as one string after a "command" keyword
(``RENAME ...``) is tokenized too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import Token, TokenType

from pgbaton.errors import DDLError

_TOKENIZER = MySQL().tokenizer()
_COMMANDS = set(_TOKENIZER.COMMANDS)

STRING_TYPES = {TokenType.STRING, TokenType.NATIONAL_STRING, TokenType.RAW_STRING}
# punctuation: never a name
_PUNCT = {TokenType.L_PAREN, TokenType.R_PAREN, TokenType.COMMA, TokenType.DOT, TokenType.SEMICOLON,
          TokenType.EQ, TokenType.DASH, TokenType.PLUS, TokenType.STAR, TokenType.SLASH,
          TokenType.NUMBER, TokenType.HEX_STRING, TokenType.BIT_STRING, TokenType.BYTE_STRING,
          TokenType.PARAMETER, TokenType.L_BRACKET, TokenType.R_BRACKET, TokenType.L_BRACE,
          TokenType.R_BRACE, TokenType.COLON, TokenType.LT, TokenType.GT, TokenType.NEQ,
          TokenType.INTRODUCER} | STRING_TYPES


# the newest server version whose executable comments run: MariaDB 11.x / MySQL 9.x
# (a 5-digit MySQL version such as 80023 is 8.0.23, a 6-digit one such as 101100 is 10.11.0)
MAX_SERVER_VERSION = 119999


def _runs(version: int, mariadb_only: bool, mariadb: bool | None) -> bool:
    """Whether the source server runs an executable comment of this version.

    MariaDB (seen on 10.11) skips the five-digit versions of MySQL 5.7 and later,
    ``/*!50700`` to ``/*!99999`` (sakila's ``/*!50705 location GEOMETRY */``), and runs
    the rest up to its own version; MySQL skips MariaDB's ``/*M!...*/``.  ``None``: the
    flavour is not known, everything up to MAX_SERVER_VERSION runs."""
    if version > MAX_SERVER_VERSION:
        return False
    if mariadb is True and not mariadb_only and 50700 <= version <= 99999:
        return False
    return not (mariadb is False and mariadb_only)


def unwrap_executable_comments(text: str, mariadb: bool | None = None) -> str:
    """Replace ``/*!NNNNN body */`` and ``/*M!NNNNNN body */`` by `` body `` where the
    source runs them (``_runs``), else by a space.

    A character scan that skips quoted strings and names, so a ``/*!`` inside a
    string literal is left alone.  A comment for a server newer than the versions
    pgbaton reads (``/*!999999 ... */``) is a comment for the source too: dropped."""
    out: list[str] = []
    i, n = 0, len(text)
    quote: str | None = None
    while i < n:
        ch = text[i]
        if quote is not None:
            out.append(ch)
            if ch == "\\" and quote != "`" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
            i += 1
            continue
        if ch in "'\"`":
            quote = ch
            out.append(ch)
            i += 1
            continue
        if text.startswith("/*!", i) or text.startswith("/*M!", i):
            j = i + (3 if text[i + 2] == "!" else 4)
            digits = j
            while j < n and text[j].isdigit():
                j += 1
            end = text.find("*/", j)
            if end < 0:
                end = n
            version = int(text[digits:j]) if j > digits else 0
            out.append(" " + text[j:end] + " " if _runs(version, text[i + 2] == "M", mariadb) else " ")
            i = end + 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def tokenize(text: str, mariadb: bool | None = None) -> list[Token]:
    """The tokens of ``text``; raises DDLError for text that cannot be tokenized."""
    try:
        raw = _TOKENIZER.tokenize(unwrap_executable_comments(text, mariadb))
    except SqlglotError as exc:
        raise DDLError(f"cannot tokenize the statement: {str(exc)[:200]}") from None
    except (ValueError, IndexError, KeyError, RecursionError) as exc:
        raise DDLError(f"cannot tokenize the statement: {exc.__class__.__name__}") from None
    out: list[Token] = []
    i = 0
    while i < len(raw):
        tok = raw[i]
        if tok.token_type not in STRING_TYPES and tok.token_type != TokenType.IDENTIFIER and " " in tok.text.strip():
            # multi-word keywords ('PRIMARY KEY', 'ORDER BY'): one token per word
            out.extend(Token(TokenType.VAR, w, tok.line, tok.col, tok.start, tok.end) for w in tok.text.split())
        else:
            out.append(tok)
        if tok.token_type in _COMMANDS and i + 1 < len(raw) and raw[i + 1].token_type == TokenType.STRING:
            out.extend(tokenize(raw[i + 1].text, mariadb))
            i += 2
            continue
        i += 1
    return out


@dataclass
class Cursor:
    """A position in a token list with the small vocabulary the DDL grammar needs."""

    tokens: Sequence[Token]
    i: int = 0

    # -- looking -----------------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def at_end(self) -> bool:
        tok = self.peek()
        return tok is None or tok.token_type == TokenType.SEMICOLON

    def is_word(self, *words: str, ahead: int = 0) -> bool:
        """The token ``ahead`` is one of the unquoted keywords ``words``."""
        tok = self.peek(ahead)
        if tok is None or tok.token_type in _PUNCT or tok.token_type == TokenType.IDENTIFIER:
            return False
        return tok.text.upper() in words

    def is_type(self, *types: TokenType, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok is not None and tok.token_type in types

    def is_name(self, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok is not None and (tok.token_type == TokenType.IDENTIFIER or (
            tok.token_type not in _PUNCT and _wordlike(tok.text)))

    # -- consuming ---------------------------------------------------------------------------
    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end of statement")
        self.i += 1
        return tok

    def accept(self, *words: str) -> bool:
        """Consume the keyword sequence ``words`` if it is next."""
        if all(self.is_word(w, ahead=k) for k, w in enumerate(words)):
            self.i += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            raise self.error(f"expected {' '.join(words)}")

    def accept_type(self, *types: TokenType) -> Token | None:
        if self.is_type(*types):
            return self.next()
        return None

    def expect_type(self, t: TokenType, what: str) -> Token:
        tok = self.accept_type(t)
        if tok is None:
            raise self.error(f"expected {what}")
        return tok

    def name(self, what: str = "a name") -> str:
        """An identifier: backquoted, or an unquoted word (keywords allowed as MySQL does)."""
        if not self.is_name():
            raise self.error(f"expected {what}")
        return self.next().text

    def qualified(self) -> tuple[str | None, str]:
        """``name`` or ``db.name``."""
        first = self.name("a table name")
        if self.accept_type(TokenType.DOT):
            return first, self.name("a table name")
        return None, first

    def skip_balanced(self) -> list[Token]:
        """At ``(``: consume up to the matching ``)`` and return the tokens inside."""
        self.expect_type(TokenType.L_PAREN, "(")
        depth, start = 1, self.i
        while depth:
            tok = self.next()
            if tok.token_type == TokenType.L_PAREN:
                depth += 1
            elif tok.token_type == TokenType.R_PAREN:
                depth -= 1
        return list(self.tokens[start:self.i - 1])

    def skip_to_clause_end(self) -> None:
        """Skip to the next top-level comma or the end."""
        while not self.at_end() and not self.is_type(TokenType.COMMA, TokenType.R_PAREN):
            if self.is_type(TokenType.L_PAREN):
                self.skip_balanced()
            else:
                self.next()

    def error(self, what: str) -> DDLError:
        tok = self.peek()
        where = f"near {tok.text!r} (line {tok.line}, col {tok.col})" if tok is not None else "at the end"
        return DDLError(f"{what} {where}")


def _wordlike(text: str) -> bool:
    return bool(text) and all(ch.isalnum() or ch in "_$" or ord(ch) > 127 for ch in text)


def sql_text(tokens: Sequence[Token]) -> str:
    """Tokens back as readable SQL text (for generation expressions and messages)."""
    parts: list[str] = []
    for tok in tokens:
        t = tok.token_type
        if t in STRING_TYPES:
            parts.append("'" + tok.text.replace("\\", "\\\\").replace("'", "\\'") + "'")
        elif t == TokenType.IDENTIFIER:
            parts.append("`" + tok.text.replace("`", "``") + "`")
        elif t == TokenType.HEX_STRING:
            parts.append(f"x'{tok.text}'")
        elif t == TokenType.BIT_STRING:
            parts.append(f"b'{tok.text}'")
        else:
            parts.append(tok.text)
    out = ""
    for p in parts:
        if out and not (p in (")", ",", ".") or out.endswith(("(", "."))):
            out += " "
        out += p
    return out
