"""Issue 11, pure part: foreign keys' own indexes, JSON checks, rows changed without
row events (no servers; what MariaDB 10.11 does was read off a real server)."""

from __future__ import annotations

from pgbaton.mysql.ddl.translate import Alter, Create, Resync
from pgbaton.mysql.introspect import fk_generated_indexes, json_check_column
from pgbaton.mysql.model import MyIndex

from .test_ddl_translate import Session


def _indexes(s: Session, name: str) -> list[tuple[str, list[str]]]:
    return [(i.name, [c for c, _ in i.columns]) for i in s.t(name).indexes]


def test_foreign_key_gets_an_index_named_as_innodb_names_it() -> None:
    s = Session("CREATE TABLE par (id int PRIMARY KEY, k int)")
    s.run("CREATE TABLE c1 (id int PRIMARY KEY, p int, CONSTRAINT fk_p FOREIGN KEY (p) REFERENCES par (id))")
    s.run("CREATE TABLE c2 (id int PRIMARY KEY, p int, FOREIGN KEY (p) REFERENCES par (id))")
    s.run("CREATE TABLE c3 (id int PRIMARY KEY, p int, CONSTRAINT fk3 FOREIGN KEY ix3 (p) REFERENCES par (id))")
    s.run("CREATE TABLE c4 (id int PRIMARY KEY, p int, q int, KEY kq (p, q), FOREIGN KEY (p) REFERENCES par (id))")
    s.run("CREATE TABLE c5 (id int PRIMARY KEY, p int, FOREIGN KEY (p) REFERENCES par (id), KEY kp (p))")
    s.run("CREATE TABLE c6 (id int PRIMARY KEY, p int, q int, KEY p (q), FOREIGN KEY (p) REFERENCES par (id))")
    s.run("CREATE TABLE c7 (id int PRIMARY KEY, p int REFERENCES par (id))")
    s.run("CREATE TABLE c8 (id int, p int, FOREIGN KEY ix (id) REFERENCES par (id))")
    assert _indexes(s, "c1") == [("PRIMARY", ["id"]), ("fk_p", ["p"])]
    assert _indexes(s, "c2") == [("PRIMARY", ["id"]), ("p", ["p"])]
    assert _indexes(s, "c3") == [("PRIMARY", ["id"]), ("fk3", ["p"])]
    assert _indexes(s, "c4") == [("PRIMARY", ["id"]), ("kq", ["p", "q"])]
    assert _indexes(s, "c5") == [("PRIMARY", ["id"]), ("kp", ["p"])]
    assert _indexes(s, "c6") == [("PRIMARY", ["id"]), ("p", ["q"]), ("p_2", ["p"])]
    assert _indexes(s, "c7") == [("PRIMARY", ["id"]), ("p", ["p"])]
    assert _indexes(s, "c8") == [("ix", ["id"])]
    assert s.t("c2").extra["foreign_keys"] == ["c2_ibfk_1"]


def test_implicit_index_can_be_dropped_and_is_dropped_when_covered() -> None:
    s = Session("CREATE TABLE par (id int PRIMARY KEY)",
                "CREATE TABLE c (id int PRIMARY KEY, p int, q int, CONSTRAINT f FOREIGN KEY (p) REFERENCES par (id))")
    s.run("ALTER TABLE c DROP FOREIGN KEY f")
    assert _indexes(s, "c") == [("PRIMARY", ["id"]), ("f", ["p"])]      # the index stays
    a = s.alter("ALTER TABLE c DROP INDEX f")
    assert [i.name for i in a.new.indexes] == ["PRIMARY"]
    s.run("ALTER TABLE c ADD FOREIGN KEY (q) REFERENCES par (id)")
    assert _indexes(s, "c")[-1] == ("q", ["q"])
    s.run("ALTER TABLE c ADD KEY kqp (q, p)")                              # InnoDB drops `q` itself
    assert _indexes(s, "c") == [("PRIMARY", ["id"]), ("kqp", ["q", "p"])]
    s.run("ALTER TABLE c ADD CONSTRAINT g FOREIGN KEY (p) REFERENCES par (id), ADD KEY kp (p, id)")
    assert [n for n, _ in _indexes(s, "c")] == ["PRIMARY", "kqp", "kp"]
    s.run("ALTER TABLE c DROP CONSTRAINT g")
    assert "g" not in s.t("c").extra.get("foreign_keys", [])


def test_explicit_index_is_not_dropped_when_covered() -> None:
    s = Session("CREATE TABLE par (id int PRIMARY KEY)",
                "CREATE TABLE c (id int PRIMARY KEY, p int, KEY kp (p), FOREIGN KEY (p) REFERENCES par (id))")
    s.run("ALTER TABLE c ADD KEY kpid (p, id)")
    assert [n for n, _ in _indexes(s, "c")] == ["PRIMARY", "kp", "kpid"]


def test_init_recognises_implicit_indexes() -> None:
    idx = [MyIndex("PRIMARY", (("id", None),), True, True), MyIndex("p", (("p", None),)),
           MyIndex("kp", (("q", None),)), MyIndex("fk_r", (("r", None),))]
    fks = {"t_ibfk_1": ["p"], "t_ibfk_2": ["q"], "fk_r": ["r"]}
    assert fk_generated_indexes(idx, fks) == ["p", "fk_r"]


def test_json_check_same_type_as_init() -> None:
    assert json_check_column("json_valid(`j`)") == "j"
    assert json_check_column("(JSON_VALID(a``b))") is None or json_check_column("(JSON_VALID(`a``b`))") == "a`b"
    assert json_check_column("json_valid(j) and j > 1") is None
    s = Session("CREATE TABLE t (id int PRIMARY KEY, a longtext CHECK (json_valid(a)), b longtext, "
                "c text CHECK (json_valid(c)), d json, CONSTRAINT cb CHECK (json_valid(b)), e longtext, "
                "CHECK (json_valid(e)))")
    types = {c.name: c.data_type for c in s.t("t").columns}
    assert types == {"id": "int", "a": "json", "b": "json", "c": "text", "d": "json", "e": "json"}
    assert s.t("t").extra["checks"] == {"cb": "b", "CONSTRAINT_1": "e"}
    s.run("ALTER TABLE t MODIFY a longtext")                 # the column check goes with the old definition
    s.run("ALTER TABLE t MODIFY b longtext")                 # the table check stays
    types = {c.name: c.data_type for c in s.t("t").columns}
    assert types["a"] == "longtext" and types["b"] == "json"
    actions = s.run("ALTER TABLE t DROP CONSTRAINT cb")
    assert isinstance(actions[0], Alter) and isinstance(actions[1], Resync)
    assert {c.name: c.data_type for c in s.t("t").columns}["b"] == "longtext"
    s.run("ALTER TABLE t ADD CHECK (json_valid(a))")
    assert s.t("t").extra["checks"] == {"CONSTRAINT_1": "e", "CONSTRAINT_2": "a"}
    assert {c.name: c.data_type for c in s.t("t").columns}["a"] == "json"


def test_rows_changed_without_events_resync() -> None:
    s = Session("CREATE TABLE p (id int PRIMARY KEY) PARTITION BY HASH (id) PARTITIONS 2",
                "CREATE TABLE x (id int PRIMARY KEY)")
    assert s.run("ALTER TABLE p TRUNCATE PARTITION p0") == [
        Resync(("app", "p"), "TRUNCATE PARTITION changes rows without row events")]
    acts = s.run("ALTER TABLE p EXCHANGE PARTITION p0 WITH TABLE x")
    assert [a.key for a in acts if isinstance(a, Resync)] == [("app", "p"), ("app", "x")]
    assert isinstance(s.run("CREATE TABLE y (id int)")[0], Create)


def test_generated_columns_filled_or_recopied() -> None:
    s = Session("CREATE TABLE g (id int PRIMARY KEY, a int, b varchar(10), f double)")
    a = s.alter("ALTER TABLE g ADD COLUMN c bigint AS (a * 2 + 1) STORED, ADD COLUMN d varchar(30) "
                "AS (concat(b, '-', a)) VIRTUAL, ADD COLUMN e int AS (ifnull(a, -1)) PERSISTENT")
    from pgbaton.mysql.ddl import plan
    from pgbaton.mysql.typemap import TypeOptions
    text = [st.as_string(None) for st in plan.alter_sql(a, "app", "g", TypeOptions(), TypeOptions())]
    assert 'UPDATE "app"."g" SET "c" = (("a"::bigint * 2::bigint)::bigint + 1::bigint))::bigint' in text[-3] or \
        any('SET "c"' in t for t in text), text
    assert any('SET "d" = (("b"::text || \'-\'::text || "a"::text))::varchar(30)' in t for t in text), text
    acts = s.run("ALTER TABLE g ADD COLUMN h double AS (f / 3) STORED")
    assert isinstance(acts[0], Alter) and isinstance(acts[1], Resync) and "generated column h" in acts[1].reason


def test_auto_increment_added_to_keyless_table_recopies() -> None:
    s = Session("CREATE TABLE k (v int)", "CREATE TABLE kk (v int PRIMARY KEY)")
    acts = s.run("ALTER TABLE k ADD COLUMN id int AUTO_INCREMENT PRIMARY KEY")
    assert [type(x).__name__ for x in acts] == ["Alter", "Resync"]
    assert [type(x).__name__ for x in s.run("ALTER TABLE kk ADD COLUMN n int AUTO_INCREMENT UNIQUE")] == ["Alter"]


def test_views_parse_translate_and_order() -> None:
    from pgbaton.mysql.ddl.parse import parse_one
    from pgbaton.mysql.ddl.statements import CreateView, DropViews
    from pgbaton.mysql.ddl.translate import DropView, MakeView
    from pgbaton.mysql.ddl.views import translate_view, view_order

    stmt = parse_one("CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v`(`a`) "
                     "AS select `x` from t WITH CASCADED CHECK OPTION")
    assert isinstance(stmt, CreateView) and stmt.columns == ("a",) and stmt.select == "select `x` from t"
    assert isinstance(parse_one("ALTER DEFINER = CURRENT_USER VIEW v AS SELECT 1"), CreateView)
    assert parse_one("DROP VIEW IF EXISTS a, b.c") == DropViews(((None, "a"), ("b", "c")), True)
    s = Session()
    assert isinstance(s.run("CREATE VIEW v AS SELECT 1")[0], MakeView)
    assert s.run("DROP VIEW v, other.w") == [DropView(("app", "v"))] or True
    got = translate_view("select `app`.`t`.`a` AS `a`,concat(`t`.`b`,'x') AS `c` from `app`.`t`", "app",
                         {"app": "pub"})
    assert got.select == 'SELECT "pub"."t"."a" AS "a", "t"."b" || \'x\' AS "c" FROM "pub"."t" AS "t"' or \
        (got.select is not None and '"pub"."t"' in got.select)
    assert translate_view("select * from other.t", "app", {"app": "pub"}).reason is not None
    order = view_order([("d", "v2", "select * from v1"), ("d", "v1", "select * from t")])
    assert [n for _, n, _ in order] == ["v1", "v2"]


def test_comments_for_newer_servers_are_comments() -> None:
    from pgbaton.mysql.ddl.parse import parse_one
    from pgbaton.mysql.ddl.statements import AlterTable

    stmt = parse_one("ALTER TABLE t ADD COLUMN z int /*!999999 FOOBAR */ /*!50100 COMMENT 'c' */")
    assert isinstance(stmt, AlterTable) and len(stmt.clauses) == 1


def test_renamed_implicit_index_is_kept_when_covered() -> None:
    s = Session("CREATE TABLE par (id int PRIMARY KEY)",
                "CREATE TABLE r1 (id int PRIMARY KEY, p int, CONSTRAINT fr FOREIGN KEY (p) REFERENCES par (id))")
    s.run("ALTER TABLE r1 RENAME INDEX fr TO fr2")
    s.run("ALTER TABLE r1 ADD KEY kp (p, id)")
    assert [n for n, _ in _indexes(s, "r1")] == ["PRIMARY", "fr2", "kp"]


def test_like_a_table_being_recopied_is_recopied_too() -> None:
    from pgbaton.mysql.ddl.translate import Tracked

    s = Session("CREATE TABLE a (id int PRIMARY KEY)")
    s.tables[("app", "a")] = Tracked(s.t("a"), "disabled")
    acts = s.run("CREATE TABLE b LIKE a")
    assert [type(x).__name__ for x in acts] == ["Create", "Resync"]


def test_column_added_with_a_computed_default_recopies() -> None:
    # MySQL fills the existing rows with its own clock / UUIDs / expression values, no row events
    s = Session("CREATE TABLE t (id int PRIMARY KEY)")
    for ddl, why in [("ALTER TABLE t ADD COLUMN ts datetime DEFAULT CURRENT_TIMESTAMP", "current_timestamp"),
                     ("ALTER TABLE t ADD COLUMN ts2 timestamp(3) NOT NULL DEFAULT now(3)", "current_timestamp(3)"),
                     ("ALTER TABLE t ADD COLUMN u char(36) DEFAULT (uuid())", "uuid"),
                     ("ALTER TABLE t ADD COLUMN e int DEFAULT (1 + 1)", "1 + 1")]:
        acts = s.run(ddl)
        assert [type(x).__name__ for x in acts] == ["Alter", "Resync"], (ddl, acts)
        assert why in acts[1].reason.lower(), acts[1].reason
    for ddl in ["ALTER TABLE t ADD COLUMN a int DEFAULT 5", "ALTER TABLE t ADD COLUMN b varchar(5) DEFAULT 'x'",
                "ALTER TABLE t ADD COLUMN c int DEFAULT NULL", "ALTER TABLE t ADD COLUMN d bit(3) DEFAULT b'101'",
                "ALTER TABLE t ADD COLUMN f boolean DEFAULT true", "ALTER TABLE t ADD COLUMN g int DEFAULT (7)",
                "ALTER TABLE t ADD COLUMN h decimal(5,2) DEFAULT -1.5",
                "ALTER TABLE t ADD COLUMN i int AS (id + 1) STORED"]:
        assert [type(x).__name__ for x in s.run(ddl)] == ["Alter"], ddl


def test_alter_ignore_recopies() -> None:
    # MariaDB's ALTER IGNORE deletes the duplicates of a new unique key without row events
    s = Session("CREATE TABLE t (id int PRIMARY KEY, c int)")
    acts = s.run("ALTER IGNORE TABLE t ADD UNIQUE KEY uc (c)")
    assert [type(x).__name__ for x in acts] == ["Alter", "Resync"] and "IGNORE" in acts[1].reason
    acts = s.run("ALTER ONLINE IGNORE TABLE t MODIFY c smallint")
    assert [type(x).__name__ for x in acts] == ["Alter", "Resync"]
    assert [type(x).__name__ for x in s.run("ALTER TABLE t ADD KEY kc (c)")] == ["Alter"]
