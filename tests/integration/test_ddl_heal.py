"""Issue 11 on a live MariaDB: foreign keys' own indexes, BIT widening, JSON checks,
init from an empty database, and tables re-copied by themselves when a statement
changes rows without row events.  After each run every table must have the shape a
fresh ``replica init`` gives and the same rows as the source."""

from __future__ import annotations

import logging

import psycopg
import pytest

from pgbaton.config import Config
from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import errors, status, table_status
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until
from .test_ddl_replica import _assert_data, _assert_shapes, _run


def _settled(cfg: Config) -> bool:
    if not caught_up(cfg):
        return False
    return all(t["state"] == "replicating" for t in table_status(cfg, "src"))


def test_empty_database_then_keys_bits_json(pg_db: str, my_db: str, mariadb: MariaDBServer,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cfg = make_config(pg_db, mariadb, my_db, batch_max_ms=20)
    add_source(cfg, "src")
    result = init_replica(cfg, "src", show_progress=False)          # no tables yet
    assert result.tables == 0 and any("no tables yet" in w for w in result.warnings)
    with ReplicaThread(cfg) as rt:
        _run(mariadb, my_db, [
            "CREATE TABLE par (id int PRIMARY KEY, k int)",
            "INSERT INTO par VALUES (1, 1), (2, 2)",
            "CREATE TABLE ch (id int PRIMARY KEY, p int, q int, CONSTRAINT fk_p FOREIGN KEY (p) REFERENCES par (id), "
            "FOREIGN KEY (q) REFERENCES par (id))",
            "INSERT INTO ch VALUES (1, 1, 2), (2, 2, NULL)",
            "ALTER TABLE ch DROP FOREIGN KEY fk_p",
            "ALTER TABLE ch DROP INDEX fk_p",                   # the index InnoDB made for fk_p
            "INSERT INTO ch VALUES (3, 1, 1)",
            "ALTER TABLE ch ADD KEY kq (q, id)",                 # InnoDB drops its own index `q` now
            "INSERT INTO ch VALUES (4, 2, 2)",
            "ALTER TABLE ch ADD COLUMN r int REFERENCES par (id)",
            "INSERT INTO ch VALUES (5, 1, 1, 1)",
            "CREATE TABLE bits (id int PRIMARY KEY, b bit(8), c bit(16))",
            "INSERT INTO bits VALUES (1, 165, 65535), (2, 0, 1), (3, NULL, 300)",
            "ALTER TABLE bits MODIFY b bit(16)",
            "ALTER TABLE bits MODIFY c bit(64)",
            "INSERT INTO bits VALUES (4, 40000, 18446744073709551615)",
            "CREATE TABLE js (id int PRIMARY KEY, a longtext CHECK (json_valid(a)), b longtext, "
            "CONSTRAINT cb CHECK (json_valid(b)), c json)",
            "INSERT INTO js VALUES (1, '{\"x\": 1.50}', '[1,  2]', '\"s\"'), (2, NULL, NULL, NULL)",
            "ALTER TABLE js ADD COLUMN d longtext, ADD CONSTRAINT cd CHECK (json_valid(d))",
            "INSERT INTO js VALUES (3, '1', '2', '3', '{\"d\":  true}')",
            "CREATE TABLE geo (id int PRIMARY KEY, g geometry NOT NULL, SPATIAL KEY sg (g))",
            "INSERT INTO geo VALUES (1, ST_GeomFromText('POINT(1 2)'))",
        ])
        try:
            wait_until(lambda: _settled(cfg), 60, "replica to catch up")
        except AssertionError:
            raise AssertionError((rt.error, status(cfg, "src"), table_status(cfg, "src"), errors(cfg, "src"))) from None
        assert rt.error is None, rt.error
        assert errors(cfg, "src") == []
        assert status(cfg, "src")[0]["tables_disabled"] == 0
    assert not [r for r in caplog.records if "prefix" in r.getMessage()]
    _assert_shapes(cfg, pg_db, mariadb, my_db)
    _assert_data(cfg)
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT b::bigint FROM app.bits WHERE id = 1").fetchone() == (165,)
        types: dict[str, str] = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_schema = 'app' AND table_name = 'js'").fetchall())
    assert types == {"id": "integer", "a": "jsonb", "b": "jsonb", "c": "jsonb", "d": "jsonb"}


def test_rows_changed_without_row_events_are_recopied(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    my_exec(mariadb, my_db, [
        "CREATE TABLE pt (id int NOT NULL, v varchar(10), PRIMARY KEY (id)) PARTITION BY RANGE (id) "
        "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (100), "
        "PARTITION p2 VALUES LESS THAN (1000))",
        "INSERT INTO pt VALUES (1, 'a'), (2, 'b'), (50, 'c'), (500, 'd')",
        "CREATE TABLE other (id int PRIMARY KEY, v varchar(10))",
        "INSERT INTO other VALUES (7, 'x')",
        "CREATE TABLE js (id int PRIMARY KEY, j longtext, CONSTRAINT cj CHECK (json_valid(j)))",
        "INSERT INTO js VALUES (1, '{\"b\": 1,   \"a\": 2}')",
        "CREATE TABLE dup (id int PRIMARY KEY, c int)",
        "INSERT INTO dup VALUES (1, 5), (2, 5), (3, 6), (4, 5)",
    ])
    cfg = make_config(pg_db, mariadb, my_db, batch_max_ms=20)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    with ReplicaThread(cfg) as rt:
        _run(mariadb, my_db, [
            "ALTER TABLE pt TRUNCATE PARTITION p0",
            "INSERT INTO pt VALUES (3, 'e')",
            "ALTER TABLE pt DROP PARTITION p1",
            "INSERT INTO pt VALUES (501, 'f')",
        ])
        # MariaDB 10.11 waits for itself on EXCHANGE PARTITION after a statement in an
        # autocommit=0 session (my_exec's): run it in autocommit mode
        conn = mariadb.connect(my_db)
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE pt EXCHANGE PARTITION p0 WITH TABLE other")
        conn.close()
        _run(mariadb, my_db, [
            "INSERT INTO other VALUES (8, 'y')",
            "ALTER TABLE js DROP CONSTRAINT cj",                 # jsonb does not keep the text: re-read
            "INSERT INTO js VALUES (2, 'not json')",
            "ALTER IGNORE TABLE dup ADD UNIQUE KEY uc (c)",      # rows 2 and 4 deleted, no row events
            "INSERT INTO dup VALUES (5, 7)",
        ])
        wait_until(lambda: _settled(cfg), 90, "tables to be re-copied")
        assert rt.error is None, rt.error
        tables = {t["source_table"].split(".")[1]: t for t in table_status(cfg, "src")}
        assert tables["pt"]["state"] == "replicating" and "PARTITION" in (tables["pt"]["last_error"] or "")
        assert status(cfg, "src")[0]["tables_disabled"] == 0
        history = errors(cfg, "src")
        assert any("re-copied" in e["message"] and e["table"].endswith(".pt") for e in history), history
        assert any("IGNORE" in e["message"] and e["table"].endswith(".dup") for e in history), history
        _run(mariadb, my_db, ["INSERT INTO pt VALUES (4, 'g')", "UPDATE other SET v = 'z'"])
        wait_until(lambda: _settled(cfg), 60, "replica to catch up")
    _assert_shapes(cfg, pg_db, mariadb, my_db)
    _assert_data(cfg)


def test_generated_identity_and_charset_changes_keep_rows(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    my_exec(mariadb, my_db, [
        "CREATE TABLE g (id int PRIMARY KEY, a int, b varchar(10), f double)",
        "INSERT INTO g VALUES (1, 10, 'x', 1.5), (2, NULL, 'y', 2.25), (3, -4, NULL, NULL)",
        "CREATE TABLE k (v int, w varchar(5))",
        "INSERT INTO k VALUES (5, 'a'), (3, 'b'), (9, 'c')",
        "DELETE FROM k WHERE v = 3",
        "INSERT INTO k VALUES (1, 'd')",
        "CREATE TABLE cs (id int PRIMARY KEY, t varchar(20)) DEFAULT CHARSET=utf8mb4",
        "INSERT INTO cs VALUES (1, 'plain'), (2, 'snow ☃ man')",
        "CREATE TABLE tsd (id int PRIMARY KEY)",
        "INSERT INTO tsd VALUES (1), (2), (3)",
    ])
    cfg = make_config(pg_db, mariadb, my_db, batch_max_ms=20)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    with ReplicaThread(cfg) as rt:
        _run(mariadb, my_db, [
            "ALTER TABLE g ADD COLUMN c bigint AS (a * 2 + 1) STORED, "
            "ADD COLUMN d varchar(30) AS (concat(b, '-', a)) VIRTUAL",       # computed in PostgreSQL
            "INSERT INTO g (id, a, b, f) VALUES (4, 7, 'z', 0.5)",
            "ALTER TABLE g ADD COLUMN h double AS (f / 3) STORED",           # re-copied
            "INSERT INTO g (id, a, b, f) VALUES (5, 1, 'w', 9)",
            "ALTER TABLE k ADD COLUMN id int AUTO_INCREMENT PRIMARY KEY",    # numbered in InnoDB's order
            "INSERT INTO k (v, w) VALUES (7, 'e')",
            # the source's clock fills the existing rows (no row events), not the replica's
            "ALTER TABLE tsd ADD COLUMN at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), "
            "ADD COLUMN u char(36) DEFAULT (uuid())",
            "INSERT INTO tsd (id) VALUES (4)",
        ])
        # not strict: the snowman becomes '?' on the source, without a row event
        my_exec(mariadb, my_db, ["SET SESSION sql_mode = ''", "ALTER TABLE cs CONVERT TO CHARACTER SET latin1"])
        _run(mariadb, my_db, ["INSERT INTO cs VALUES (3, 'after')"])
        wait_until(lambda: _settled(cfg), 90, "replica to catch up")
        assert rt.error is None, rt.error
        history = errors(cfg, "src")
        recopied = sorted(e["table"].split(".")[1] for e in history if "re-copied" in e["message"])
        assert recopied == ["cs", "g", "k", "tsd"], history
    _assert_shapes(cfg, pg_db, mariadb, my_db)
    _assert_data(cfg)
