"""Random and malformed statements: the translator raises nothing, and the parser
raises nothing but DDLError (pgbaton's own error type)."""

from __future__ import annotations

import random
import string

import pytest

from pgbaton.errors import DDLError
from pgbaton.mysql.ddl import plan
from pgbaton.mysql.ddl.parse import parse
from pgbaton.mysql.ddl.translate import Alter, Create, Key, Scope, Tracked, translate_text
from pgbaton.mysql.typemap import TypeOptions

SEEDS = [
    "CREATE TABLE t (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, a varchar(10) DEFAULT 'x', b decimal(5,2), "
    "KEY k (a(3)), UNIQUE (b)) ENGINE=InnoDB",
    "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT -1 AFTER a, DROP b, CHANGE a a2 text, RENAME INDEX k TO k2",
    "ALTER TABLE t MODIFY e enum('a','b''c') NOT NULL, ALTER COLUMN a SET DEFAULT 'q', ALGORITHM=INPLACE",
    "CREATE INDEX i ON t (a(5), b DESC)", "DROP INDEX i ON t", "RENAME TABLE t TO u, u TO t",
    "DROP TABLE IF EXISTS t, x", "TRUNCATE TABLE t", "CREATE TABLE u LIKE t", "ALTER TABLE t RENAME TO v",
    "CREATE TABLE g (c int AS (a + 1) STORED, d datetime(6) DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE now(6))",
    "/*!40101 SET NAMES utf8 */", "GRANT ALL ON *.* TO 'u'@'%'",
]
WORDS = ["CREATE", "TABLE", "ALTER", "ADD", "DROP", "COLUMN", "INDEX", "KEY", "PRIMARY", "UNIQUE", "(", ")", ",",
         "int", "varchar", "(10)", "NOT", "NULL", "DEFAULT", "'x'", "-", "1", "`a b`", "t", "a", "b", "ON", "TO",
         "RENAME", "CHANGE", "MODIFY", "AFTER", "FIRST", "IF", "EXISTS", "LIKE", ";", "/*", "*/", "'", "`", "\\",
         "enum('a')", "AS", "STORED", "PARTITION", "BY", "USING", "FULLTEXT", "=", ".", "0x", "b'1'", "@", "?"]
SCOPE = Scope(frozenset({"app"}), "app")


def _mutations(rng: random.Random) -> str:
    base = rng.choice(SEEDS)
    ops = rng.randrange(5)
    if ops == 0:        # cut anywhere
        return base[:rng.randrange(len(base) + 1)]
    if ops == 1:        # delete or duplicate a span
        i, j = sorted(rng.randrange(len(base) + 1) for _ in range(2))
        return base[:i] + base[j:] if rng.random() < 0.5 else base[:j] + base[i:j] + base[j:]
    if ops == 2:        # random characters inserted
        i = rng.randrange(len(base) + 1)
        noise = "".join(rng.choice(string.printable + "ü€\x00") for _ in range(rng.randrange(1, 6)))
        return base[:i] + noise + base[i:]
    if ops == 3:        # word salad
        return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 25)))
    tokens = base.split()   # shuffled tokens
    rng.shuffle(tokens)
    return " ".join(tokens)


def _tracked() -> dict[Key, Tracked]:
    tables: dict[Key, Tracked] = {}
    for a in translate_text(SEEDS[0], tables, SCOPE):
        assert isinstance(a, Create)
        tables[("app", "t")] = Tracked(a.table)
    return tables


@pytest.mark.parametrize("seed", range(8))
def test_fuzz_never_raises_foreign_errors(seed: int) -> None:
    rng = random.Random(seed)
    tables = _tracked()
    for _ in range(400):
        text = _mutations(rng)
        try:
            parse(text)
        except DDLError:
            pass
        actions = translate_text(text, tables, SCOPE)     # must not raise at all
        assert actions
        for a in actions:
            if isinstance(a, Alter):
                plan.alter_sql(a, "app", "t", TypeOptions(), TypeOptions())
            elif isinstance(a, Create):
                plan.create_sql(a.table, "app", TypeOptions())


@pytest.mark.parametrize("text", ["(" * 5000, "CREATE TABLE t (" + "a int, " * 3000 + "b int)", "\x00\x01\x02",
                                  "'" * 7, "`" * 3, "/*", "-- only a comment", "CREATE TABLE t (a int) /*!"])
def test_extremes(text: str) -> None:
    try:
        parse(text)
    except DDLError:
        pass
    assert translate_text(text, _tracked(), SCOPE)
