"""Transaction framing of binlog events (pure): every record that ends a transaction, and nothing else."""

from __future__ import annotations

import pytest

from pgbaton.cdc.model import Begin, Commit, Ddl, Op, Position, Rollback, RollbackTo, Rows, Savepoint, XaEnd, XaPrepare
from pgbaton.mysql.framing import Framer, QueryKind, classify

P = Position("binlog.000001", 100, "0-1-5")


def _rows() -> Rows:
    return Rows("d", "t", Op.INSERT, [(None, ({"id": 1}, {}))], 0.0)


@pytest.mark.parametrize(("query", "kind", "arg"), [
    ("BEGIN", QueryKind.BEGIN, ""),
    ("COMMIT", QueryKind.COMMIT, ""),
    ("ROLLBACK", QueryKind.ROLLBACK, ""),
    ("SAVEPOINT `a`", QueryKind.SAVEPOINT, "a"),
    ("SAVEPOINT `we``ird`", QueryKind.SAVEPOINT, "we`ird"),
    ("ROLLBACK TO `a`", QueryKind.ROLLBACK_TO, "a"),
    ("ROLLBACK TO SAVEPOINT a", QueryKind.ROLLBACK_TO, "a"),
    ("rollback work to savepoint `x y`", QueryKind.ROLLBACK_TO, "x y"),
    ("RELEASE SAVEPOINT a", QueryKind.RELEASE, ""),
    ("XA END X'7831',X'',1", QueryKind.XA_END, "X'7831',X'',1"),
    ("XA COMMIT X'7831',X'',1", QueryKind.XA_COMMIT, "X'7831',X'',1"),
    ("XA ROLLBACK X'7831', X'', 1", QueryKind.XA_ROLLBACK, "X'7831',X'',1"),
    ("XA COMMIT 'x' ONE PHASE", QueryKind.COMMIT, "'x'"),
    ("XA START 'x'", QueryKind.XA_START, "'x'"),
    ("/* a comment */ ALTER TABLE t ADD c int", QueryKind.STATEMENT, ""),
    ("COMMITTED_TABLE_THING", QueryKind.STATEMENT, ""),
    ("CREATE TABLE savepoint_log (a int)", QueryKind.STATEMENT, ""),
])
def test_classify(query: str, kind: QueryKind, arg: str) -> None:
    assert classify(query) == (kind, arg)


def test_mariadb_transaction_with_savepoint() -> None:
    f = Framer()
    out = f.gtid("0-1-5", 12) + f.rows(_rows()) + f.query("SAVEPOINT `a`", "d", P, 0) + f.rows(_rows())
    out += f.query("ROLLBACK TO `a`", "d", P, 0)
    assert f.in_transaction
    out += f.xid(P, 0)
    assert [type(i) for i in out] == [Begin, Rows, Savepoint, Rows, RollbackTo, Commit]
    assert not f.in_transaction


def test_ddl_is_standalone_and_a_boundary() -> None:
    f = Framer()
    out = f.gtid("0-1-6", 41) + f.query("TRUNCATE t", "d", P, 0)
    assert out == [Ddl("d", "TRUNCATE t", P, 0)]
    assert not f.in_transaction


def test_create_table_select_is_a_ddl_inside_its_transaction() -> None:
    f = Framer()
    out = f.gtid("0-1-7", 40) + f.query("CREATE TABLE t2 (id int)", "d", P, 0) + f.rows(_rows()) + f.xid(P, 0)
    assert [type(i) for i in out] == [Begin, Ddl, Rows, Commit]
    assert isinstance(out[1], Ddl) and out[1].in_txn


def test_xa_prepare_then_commit_and_rollback() -> None:
    f = Framer()
    out = f.gtid("0-1-8", 76) + f.rows(_rows()) + f.query("XA END X'7831',X'',1", "d", P, 0)
    out += f.xa_prepare_event("x1", False, P, 0)
    assert isinstance(out[0], Begin) and out[0].xa
    assert out[-1] == XaPrepare("X'7831',X'',1", P, 0)
    out = f.gtid("0-1-9", 141) + f.query("XA COMMIT X'7831',X'',1", "d", P, 0)
    assert out == [XaEnd("X'7831',X'',1", True, P, 0)]
    out = f.gtid("0-1-10", 141) + f.query("XA ROLLBACK X'7832',X'',1", "d", P, 0)
    assert out == [XaEnd("X'7832',X'',1", False, P, 0)]


def test_one_phase_xa_prepare_event_is_a_commit() -> None:
    f = Framer()
    out = f.gtid("0-1-8", 76) + f.rows(_rows()) + f.xa_prepare_event("x1", True, P, 0)
    assert isinstance(out[-1], Commit)


def test_non_transactional_group_ends_with_commit_query_and_rollback_query() -> None:
    f = Framer()
    out = f.gtid("0-1-2", 8) + f.rows(_rows()) + f.query("COMMIT", "d", P, 0)
    assert isinstance(out[-1], Commit)
    out = f.gtid("0-1-3", 8) + f.rows(_rows()) + f.query("ROLLBACK", "d", P, 0)
    assert isinstance(out[-1], Rollback)


def test_mysql_begin_query() -> None:
    f = Framer()
    out = f.gtid("uuid:5", None) + f.query("BEGIN", "d", P, 0) + f.rows(_rows()) + f.xid(P, 0)
    assert [type(i) for i in out] == [Begin, Rows, Commit]
    out = f.gtid("uuid:6", None) + f.query("DROP TABLE x", "d", P, 0)
    assert [type(i) for i in out] == [Ddl]
