"""The DDL grammar: one test per statement and clause kind (no servers)."""

from __future__ import annotations

import pytest

from pgbaton.errors import DDLError
from pgbaton.mysql.ddl import statements as st
from pgbaton.mysql.ddl.parse import parse, parse_one
from pgbaton.mysql.ddl.tokens import unwrap_executable_comments


def _col(stmt: st.Statement, i: int = 0) -> st.ColumnSpec:
    assert isinstance(stmt, st.CreateTable)
    return stmt.columns[i]


def _alter(text: str) -> tuple[st.Clause, ...]:
    stmt = parse_one(text)
    assert isinstance(stmt, st.AlterTable)
    return stmt.clauses


@pytest.mark.parametrize(("decl", "data_type", "column_type"), [
    ("int", "int", "int(11)"), ("int(10) unsigned", "int", "int(10) unsigned"),
    ("INTEGER UNSIGNED ZEROFILL", "int", "int(10) unsigned zerofill"),
    ("bigint unsigned", "bigint", "bigint(20) unsigned"),
    ("tinyint(1)", "tinyint", "tinyint(1)"), ("bool", "tinyint", "tinyint(1)"), ("int8", "bigint", "bigint(20)"),
    ("middleint", "mediumint", "mediumint(9)"), ("real", "double", "double"), ("double precision", "double", "double"),
    ("float(30)", "double", "double"), ("float(7,3)", "float", "float(7,3)"), ("dec(5,1)", "decimal", "decimal(5,1)"),
    ("numeric", "decimal", "decimal(10,0)"), ("fixed(4,2)", "decimal", "decimal(4,2)"), ("bit", "bit", "bit(1)"),
    ("datetime(6)", "datetime", "datetime(6)"), ("timestamp", "timestamp", "timestamp"), ("time(3)", "time", "time(3)"),
    ("year", "year", "year(4)"), ("char", "char", "char(1)"), ("national varchar(5)", "varchar", "varchar(5)"),
    ("character varying(9)", "varchar", "varchar(9)"), ("long varchar", "mediumtext", "mediumtext"),
    ("text(100)", "tinytext", "tinytext"), ("blob(70000)", "mediumblob", "mediumblob"),
    ("binary(4)", "binary", "binary(4)"),
    ("enum('a','b''c')", "enum", "enum('a','b''c')"), ("set('x','y')", "set", "set('x','y')"),
    ("json", "json", "longtext"), ("point", "point", "point"), ("geometry", "geometry", "geometry"),
    ("serial", "bigint", "bigint(20) unsigned"), ("uuid", "uuid", "uuid"),
])
def test_column_types(decl: str, data_type: str, column_type: str) -> None:
    c = _col(parse_one(f"CREATE TABLE t (c {decl})")).column
    assert (c.data_type, c.column_type) == (data_type, column_type)


def test_type_lengths_and_precision() -> None:
    cols = parse_one("CREATE TABLE t (a varchar(20), b decimal(12,3), c datetime(6), d bit(7), e binary(3))")
    assert isinstance(cols, st.CreateTable)
    a, b, c, d, e = (s.column for s in cols.columns)
    assert a.char_max_length == 20 and (b.numeric_precision, b.numeric_scale) == (12, 3)
    assert c.datetime_precision == 6 and d.numeric_precision == 7 and e.char_max_length == 3


@pytest.mark.parametrize(("decl", "default"), [
    ("int DEFAULT -5", "-5"), ("int DEFAULT - -5", "5"), ("int DEFAULT +3", "3"), ("double DEFAULT .5", "0.5"),
    ("decimal(10,2) DEFAULT '-1.5'", "-1.50"), ("varchar(5) DEFAULT 'it''s'", "'it''s'"),
    ("varchar(5) DEFAULT 'a\\\\b'", "'a\\\\b'"), ("varchar(5) DEFAULT ''", "''"), ("int DEFAULT NULL", "NULL"),
    ("int", "NULL"), ("int NOT NULL", None), ("datetime(6) DEFAULT CURRENT_TIMESTAMP(6)", "current_timestamp(6)"),
    ("timestamp DEFAULT now()", "current_timestamp()"), ("bit(3) DEFAULT b'101'", "b'101'"),
    ("tinyint DEFAULT TRUE", "1"), ("int DEFAULT (3)", "3"), ("int DEFAULT (1 + 2)", "1 + 2"),
    ("varchar(9) DEFAULT _utf8mb4'x' 'y'", "'xy'"), ("varchar(36) DEFAULT uuid()", "uuid()"),
])
def test_defaults(decl: str, default: str | None) -> None:
    assert _col(parse_one(f"CREATE TABLE t (c {decl})")).column.default == default


def test_column_attributes() -> None:
    stmt = parse_one(
        "CREATE TABLE t (id int NOT NULL AUTO_INCREMENT PRIMARY KEY COMMENT 'key', "
        "u varchar(5) CHARACTER SET latin1 COLLATE latin1_bin UNIQUE KEY, "
        "g int GENERATED ALWAYS AS (id * 2) STORED, v int AS (id + 1) PERSISTENT, w int AS (id) VIRTUAL, "
        "ts timestamp(3) NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), "
        "r int REFERENCES p (id) ON DELETE SET NULL, k int CHECK (k > 0) INVISIBLE)")
    assert isinstance(stmt, st.CreateTable)
    idc, u, g, v, w, ts, r, k = stmt.columns
    assert idc.primary and idc.column.auto_increment and not idc.column.nullable and idc.column.comment == "key"
    assert u.unique and u.column.charset == "latin1" and u.column.collation == "latin1_bin"
    assert g.column.generated == "STORED" and v.column.generated == "STORED" and w.column.generated == "VIRTUAL"
    assert "on update current_timestamp(3)" in ts.column.extra and ts.column.nullable
    assert r.column.name == "r" and k.column.name == "k"


def test_table_level_keys_and_options() -> None:
    stmt = parse_one(
        "CREATE TABLE IF NOT EXISTS `db`.`odd name` (a int NOT NULL, b varchar(100), c text, "
        "PRIMARY KEY (a), UNIQUE KEY uq (b(10)), KEY (b, a), INDEX USING HASH (a), FULLTEXT ft (c), "
        "CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id), CONSTRAINT ck CHECK (a > 0), KEY ((a + 1))) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_bin COMMENT='x' AUTO_INCREMENT=5 "
        "PARTITION BY HASH (a) PARTITIONS 4")
    assert isinstance(stmt, st.CreateTable)
    assert stmt.name == ("db", "odd name") and stmt.if_not_exists
    kinds = [(i.name, i.primary, i.unique, i.kind, i.columns) for i in stmt.indexes
             if i.kind not in ("FOREIGN", "CHECK")]
    assert kinds[:5] == [("PRIMARY", True, True, "BTREE", (("a", None),)), ("uq", False, True, "BTREE", (("b", 10),)),
                         (None, False, False, "BTREE", (("b", None), ("a", None))),
                         (None, False, False, "HASH", (("a", None),)), ("ft", False, False, "FULLTEXT", (("c", None),))]
    assert stmt.indexes[-1].expression
    assert dict(stmt.options) == {"ENGINE": "InnoDB", "CHARSET": "utf8mb4", "COLLATE": "utf8mb4_bin",
                                  "COMMENT": "x", "AUTO_INCREMENT": "5"}


def test_create_like_forms() -> None:
    assert parse_one("CREATE TABLE a LIKE b") == st.CreateTableLike((None, "a"), (None, "b"))
    assert parse_one("CREATE TABLE IF NOT EXISTS x.a (LIKE y.b)") == st.CreateTableLike(("x", "a"), ("y", "b"), True)


def test_create_select_is_an_error() -> None:
    with pytest.raises(DDLError, match="SELECT"):
        parse_one("CREATE TABLE a (id int) SELECT 1 AS id")


def test_alter_column_clauses() -> None:
    clauses = _alter(
        "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT -5 AFTER b, ADD d int FIRST, ADD COLUMN (e int, f int), "
        "DROP COLUMN g, DROP h, CHANGE COLUMN a aa bigint, MODIFY b varchar(30) FIRST, RENAME COLUMN x TO y, "
        "ALTER COLUMN z SET DEFAULT 3, ALTER w DROP DEFAULT, ADD COLUMN IF NOT EXISTS q int, "
        "DROP COLUMN IF EXISTS r, MODIFY COLUMN IF EXISTS s int, CHANGE COLUMN IF EXISTS s s2 int")
    names = [type(c).__name__ for c in clauses]
    assert names == ["AddColumn", "AddColumn", "AddColumn", "AddColumn", "DropColumn", "DropColumn",
                     "ChangeColumn", "ChangeColumn", "RenameColumn", "SetDefault", "SetDefault", "AddColumn",
                     "DropColumn", "ChangeColumn", "ChangeColumn"]
    add = clauses[0]
    assert isinstance(add, st.AddColumn) and add.spec.after == "b" and add.spec.column.default == "-5"
    assert isinstance(clauses[1], st.AddColumn) and clauses[1].spec.first
    assert clauses[6] == st.ChangeColumn("a", clauses[6].spec) and clauses[6].spec.column.name == "aa"  # type: ignore[union-attr]
    assert clauses[9] == st.SetDefault("z", "3") and clauses[10] == st.SetDefault("w", None)


def test_alter_index_clauses() -> None:
    clauses = _alter(
        "ALTER TABLE t ADD INDEX i1 (a, b), ADD UNIQUE KEY u (c), ADD PRIMARY KEY (a), DROP PRIMARY KEY, "
        "DROP INDEX i2, DROP KEY IF EXISTS i3, RENAME INDEX i4 TO i5, RENAME KEY i6 TO i7, ADD FULLTEXT (d), "
        "ADD SPATIAL INDEX sp (g), ADD CONSTRAINT c1 UNIQUE (e), DROP CONSTRAINT c1, "
        "ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id), DROP FOREIGN KEY fk, ALGORITHM=INPLACE, LOCK=NONE")
    assert [type(c).__name__ for c in clauses] == [
        "AddIndex", "AddIndex", "AddIndex", "DropIndex", "DropIndex", "DropIndex", "RenameIndex", "RenameIndex",
        "AddIndex", "AddIndex", "AddIndex", "DropIndex", "AddIndex", "DropConstraint", "Ignored", "Ignored"]
    assert clauses[3] == st.DropIndex("PRIMARY") and clauses[5] == st.DropIndex("i3", True)
    assert isinstance(clauses[10], st.AddIndex) and clauses[10].index.name == "c1"
    assert clauses[11] == st.DropIndex("c1", constraint=True)


def test_alter_table_options_and_rename() -> None:
    clauses = _alter("ALTER TABLE t ENGINE=InnoDB COMMENT='x', AUTO_INCREMENT = 10, RENAME TO db.u")
    assert clauses[0] == st.TableOptions((("ENGINE", "InnoDB"), ("COMMENT", "x"), ("AUTO_INCREMENT", "10")))
    assert clauses[-1] == st.RenameTo(("db", "u"))
    assert _alter("ALTER TABLE t RENAME AS u") == (st.RenameTo((None, "u")),)
    assert _alter("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin") == (
        st.ConvertCharset("utf8mb4", "utf8mb4_bin"),)


def test_alter_partition_clauses() -> None:
    assert isinstance(_alter("ALTER TABLE t TRUNCATE PARTITION p0")[0], st.RowsChanged)
    assert isinstance(_alter("ALTER TABLE t DROP PARTITION p0, p1")[0], st.RowsChanged)
    exch = _alter("ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE o.x WITHOUT VALIDATION")
    assert exch[0] == st.RowsChanged("EXCHANGE PARTITION changes rows without row events", ("o", "x"))
    conv = _alter("ALTER TABLE t CONVERT PARTITION p0 TO TABLE y")
    assert conv[0] == st.RowsChanged("CONVERT PARTITION changes rows without row events", (None, "y"))
    assert isinstance(_alter("ALTER TABLE t ADD PARTITION (PARTITION p9 VALUES LESS THAN (9))")[0], st.Ignored)
    assert isinstance(_alter("ALTER TABLE t REBUILD PARTITION p0")[0], st.Ignored)
    assert isinstance(_alter("ALTER TABLE t PARTITION BY HASH (id) PARTITIONS 3")[0], st.Ignored)
    assert isinstance(_alter("ALTER TABLE t IMPORT TABLESPACE")[0], st.RowsChanged)


def test_alter_prefixes() -> None:
    stmt = parse_one("ALTER ONLINE IGNORE TABLE IF EXISTS `a`.`b c` WAIT 5 FORCE")
    assert isinstance(stmt, st.AlterTable) and stmt.if_exists and stmt.name == ("a", "b c")


def test_create_and_drop_index() -> None:
    stmt = parse_one("CREATE UNIQUE INDEX IF NOT EXISTS i USING BTREE ON db.t (a(10), b DESC) COMMENT 'c' LOCK=NONE")
    assert isinstance(stmt, st.AlterTable) and stmt.name == ("db", "t")
    add = stmt.clauses[0]
    assert isinstance(add, st.AddIndex) and add.index.unique and add.index.columns == (("a", 10), ("b", None))
    ft = parse_one("CREATE FULLTEXT INDEX f ON t (body)")
    assert isinstance(ft, st.AlterTable) and ft.clauses[0].index.kind == "FULLTEXT"  # type: ignore[union-attr]
    assert parse_one("DROP INDEX IF EXISTS i ON t") == st.AlterTable((None, "t"), (st.DropIndex("i", True),))
    assert parse_one("DROP INDEX `PRIMARY` ON t") == st.AlterTable((None, "t"), (st.DropIndex("PRIMARY"),))


def test_drop_rename_truncate() -> None:
    assert parse_one("DROP TABLE IF EXISTS a, db.b /* generated by server */") == st.DropTables(
        ((None, "a"), ("db", "b")), True)
    assert parse_one("DROP TEMPORARY TABLE t").temporary  # type: ignore[union-attr]
    assert parse_one("RENAME TABLE a TO b, x.c TO y.d") == st.RenameTables(
        (((None, "a"), (None, "b")), (("x", "c"), ("y", "d"))))
    assert parse_one("TRUNCATE TABLE t") == st.TruncateTable((None, "t"))
    assert parse_one("TRUNCATE db.t") == st.TruncateTable(("db", "t"))
    assert parse_one("DROP DATABASE IF EXISTS x") == st.DropDatabase("x", True)


@pytest.mark.parametrize("text", [
    "CREATE VIEW v AS SELECT 1",
    "CREATE OR REPLACE ALGORITHM=MERGE DEFINER=`u`@`%` SQL SECURITY INVOKER VIEW v AS SELECT 1",
    "ALTER VIEW v AS SELECT 2",
])
def test_views_are_statements(text: str) -> None:
    assert isinstance(parse_one(text), st.CreateView)


@pytest.mark.parametrize("text", [
    "CREATE DEFINER=`root`@`localhost` TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
    "DROP TRIGGER IF EXISTS tr", "CREATE PROCEDURE p() SELECT 1", "DROP FUNCTION f",
    "GRANT SELECT ON db.* TO u", "REVOKE ALL ON *.* FROM u", "SAVEPOINT s", "RELEASE SAVEPOINT s",
    "ROLLBACK TO SAVEPOINT s", "FLUSH PRIVILEGES", "ANALYZE TABLE t", "OPTIMIZE TABLE t", "CREATE USER u",
    "DROP USER u", "RENAME USER a TO b", "CREATE DATABASE x", "ALTER DATABASE x CHARACTER SET utf8mb4",
    "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 1", "CREATE SEQUENCE s", "SET PASSWORD FOR u = PASSWORD('x')",
])
def test_pass_over(text: str) -> None:
    assert isinstance(parse_one(text), st.PassOver)


def test_executable_comments_and_several_statements() -> None:
    assert unwrap_executable_comments("a /*!50100 b */ '/*!1 c*/' /*M!100100 d */").split() == [
        "a", "b", "'/*!1", "c*/'", "d"]
    stmts = parse("/*!40101 SET NAMES utf8 */; CREATE TABLE t (a int);")
    assert [type(s).__name__ for s in stmts] == ["PassOver", "CreateTable"]


@pytest.mark.parametrize("text", [
    "", ";", "CREATE TABLE", "CREATE TABLE t (", "CREATE TABLE t (a)", "CREATE TABLE t (a nosuchtype)",
    "ALTER TABLE t ADD", "ALTER TABLE t FROBNICATE x", "ALTER TABLE t ADD COLUMN c int 'x", "DROP TABLE",
    "RENAME TABLE a", "CREATE INDEX i ON t", "CREATE TABLE t (a varchar)", "SELEKT 1", "CREATE TABLE t (a int) x y",
])
def test_malformed_raises_ddl_error(text: str) -> None:
    with pytest.raises(DDLError):
        parse(text)
