"""Executable comments run as the source's flavour runs them (no servers).

Seen on MariaDB 10.11: ``/*!50699``, ``/*!100000`` and ``/*!100100`` run, ``/*!50700`` to ``/*!99999``
(MySQL 5.7 and 8 features, e.g. sakila's ``/*!50705 location GEOMETRY */``) do not."""

from __future__ import annotations

import pytest

from pgbaton.mysql.ddl.parse import parse, parse_one
from pgbaton.mysql.ddl.statements import CreateTable
from pgbaton.mysql.ddl.tokens import unwrap_executable_comments

TEXT = ("CREATE TABLE t (a int /*!50699 , b int */ /*!50700 , c int */ /*!80003 , d int */ "
        "/*M!100100 , e int */ /*!40101 , h int */ /*!999999 , z int */)")


@pytest.mark.parametrize(("mariadb", "columns"), [
    (True, ["a", "b", "e", "h"]),
    (False, ["a", "b", "c", "d", "h"]),
    (None, ["a", "b", "c", "d", "e", "h"]),      # flavour unknown: as before
])
def test_columns_the_source_creates(mariadb: bool | None, columns: list[str]) -> None:
    stmt = parse(TEXT, mariadb)[0] if mariadb is not None else parse_one(TEXT)
    assert isinstance(stmt, CreateTable)
    assert [c.column.name for c in stmt.columns] == columns


def test_strings_keep_their_comments() -> None:
    assert unwrap_executable_comments("SELECT '/*!50705 x */'", True) == "SELECT '/*!50705 x */'"
