"""The statement splitter and tag matching of the DDL capture, run inside a real PostgreSQL 15."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from pgbaton.migrate.ddl import _script
from pgbaton.sandbox.servers import PostgresServer


@pytest.fixture(scope="module")
def lexdb(pg15: PostgresServer) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg15.dsn(), autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS ddl_lexer")
        c.execute("CREATE DATABASE ddl_lexer")
    with psycopg.connect(pg15.dsn("ddl_lexer"), autocommit=True) as conn:
        conn.execute("SET pgbaton.ddl_capture = off")
        conn.execute(_script("error"))  # type: ignore[arg-type]
        conn.execute("RESET pgbaton.ddl_capture")
        yield conn
    with psycopg.connect(pg15.dsn(), autocommit=True) as c:
        c.execute("DROP DATABASE ddl_lexer WITH (FORCE)")


CASES = [
    ("CREATE TABLE a (x int)", ["CREATE TABLE a (x int)"]),
    ("create table a(x int);  ", ["create table a(x int)"]),
    ("CREATE TABLE a (x int); INSERT INTO a VALUES (1);", ["CREATE TABLE a (x int)", "INSERT INTO a VALUES (1)"]),
    ("INSERT INTO a VALUES (';'); ALTER TABLE a ADD y text DEFAULT 'a;b'",
     ["INSERT INTO a VALUES (';')", "ALTER TABLE a ADD y text DEFAULT 'a;b'"]),
    ("ALTER TABLE a ADD z text DEFAULT E'it\\'s; fine'; DROP TABLE b",
     ["ALTER TABLE a ADD z text DEFAULT E'it\\'s; fine'", "DROP TABLE b"]),
    ("ALTER TABLE a ADD w text DEFAULT 'it''s; fine'", ["ALTER TABLE a ADD w text DEFAULT 'it''s; fine'"]),
    ('CREATE TABLE "odd;name" ("a""b;" int); SELECT 1', ['CREATE TABLE "odd;name" ("a""b;" int)', "SELECT 1"]),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$; SELECT f()",
     ["CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$", "SELECT f()"]),
    ("CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $$ SELECT 2; $$",
     ["CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $$ SELECT 2; $$"]),
    ("-- a comment; with a semicolon\nCREATE INDEX i ON a (x)",
     ["-- a comment; with a semicolon\nCREATE INDEX i ON a (x)"]),
    ("/* outer /* inner; */ still; */ DROP INDEX i; ;; -- only a comment",
     ["/* outer /* inner; */ still; */ DROP INDEX i"]),
    ("PREPARE p AS SELECT $1::int; CREATE VIEW v AS SELECT 1", ["PREPARE p AS SELECT $1::int",
                                                                "CREATE VIEW v AS SELECT 1"]),
]


@pytest.mark.parametrize(("query", "expected"), CASES)
def test_statements_split_at_top_level_semicolons_only(lexdb: psycopg.Connection, query: str,
                                                       expected: list[str]) -> None:
    rows = lexdb.execute("SELECT stmt FROM pgbaton_ddl.statements(%s) ORDER BY ord", (query,)).fetchall()
    assert [r[0] for r in rows] == expected


@pytest.mark.parametrize(("statement", "tag", "carries"), [
    ("CREATE UNIQUE INDEX CONCURRENTLY i ON a (x)", "CREATE INDEX", True),
    ("CREATE OR REPLACE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql", "CREATE FUNCTION", True),
    ("CREATE UNLOGGED TABLE u (x int)", "CREATE TABLE", True),
    ("CREATE TABLE t AS SELECT 1", "CREATE TABLE AS", True),
    ("INSERT INTO t VALUES (1)", "CREATE TABLE", False),
    ("DO $$ BEGIN CREATE TABLE x (); END $$", "CREATE TABLE", False),
    ("SELECT create_things()", "CREATE TABLE", False),
    ("ALTER TABLE a RENAME TO b", "ALTER TABLE", True),
    ("COMMENT ON TABLE a IS 'x'", "COMMENT", True),
])
def test_tag_matching(lexdb: psycopg.Connection, statement: str, tag: str, carries: bool) -> None:
    row = lexdb.execute("SELECT pgbaton_ddl.carries(words, %s) FROM pgbaton_ddl.statements(%s)",
                        (tag, statement)).fetchone()
    assert row == (carries,)


def test_second_command_of_a_string_queues_its_own_statement(lexdb: psycopg.Connection) -> None:
    lexdb.execute("CREATE TABLE q1 (x int); INSERT INTO q1 VALUES (1); CREATE TABLE q2 (y int); "
                  "ALTER TABLE q1 ADD z int")
    rows = lexdb.execute("SELECT tag, statement FROM pgbaton_ddl.queue WHERE 'table public.q1' = ANY(objects) "
                         "OR 'table public.q2' = ANY(objects) ORDER BY id").fetchall()
    assert rows == [("CREATE TABLE", "CREATE TABLE q1 (x int)"), ("CREATE TABLE", "CREATE TABLE q2 (y int)"),
                    ("ALTER TABLE", "ALTER TABLE q1 ADD z int")]
