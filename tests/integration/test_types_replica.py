"""Every MySQL type with edge values through the whole replica: init copies them, the running
replica carries inserts, updates and deletes of them, and the target equals the source."""

from __future__ import annotations

import pymysql
import pytest

from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.verify import verify
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, wait_until
from .test_types_roundtrip import COLS, DDL, ROWS

COPY_COLS = COLS.replace("id,", "100 + id,", 1).replace(" vc,", " CONCAT('c', id, vc),", 1)


def _run(mariadb: MariaDBServer, db: str, statements: list[str]) -> None:
    conn = pymysql.connect(**mariadb.connect_args(db), autocommit=True, charset="utf8mb4")  # type: ignore[arg-type]
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        for st in statements:
            cur.execute(st)
    conn.close()


@pytest.mark.parametrize("options", [{}, {"tinyint1_as_boolean": True, "zero_dates": "sentinel"},
                                     {"copy_via_client": False}],
                         ids=["defaults", "boolean-sentinel", "pymysql-copy"])
def test_all_types_through_init_and_cdc(pg_db: str, my_db: str, mariadb: MariaDBServer, options: dict) -> None:
    _run(mariadb, my_db, [DDL.format(name="a"), DDL.format(name="b"),
                          f"INSERT INTO `a` ({COLS}) VALUES {', '.join(ROWS)}"])
    cfg = make_config(pg_db, mariadb, my_db, **options)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    first = {r["table"]: r for r in verify(cfg, "src")}
    assert first[f"{my_db}.a"]["equal"] and first[f"{my_db}.a"]["target_rows"] == len(ROWS)
    with ReplicaThread(cfg) as rt:
        _run(mariadb, my_db, [
            f"INSERT INTO `b` ({COLS}) VALUES {', '.join(ROWS)}",
            # update every column of a copied row to the values of another row, and back
            "UPDATE `a` AS x JOIN `a` AS y ON y.id = 3 SET x.vc = 'moved', x.dc = y.dc, x.biu = y.biu, "
            "x.dtm = y.dtm, x.tm = y.tm, x.st = y.st, x.bn = y.bn, x.js = y.js, x.en = y.en WHERE x.id = 2",
            "UPDATE `a` SET id = 20, tm6 = '-00:00:01.5', st = '', b64 = b'1010' WHERE id = 4",
            "UPDATE `b` SET l1 = 'ça', cy = 'Ж', uc = 'Ω', sj = 'ｶ', gb = '中' WHERE id = 1",
            "DELETE FROM `b` WHERE id = 3",
            f"INSERT INTO `b` ({COLS}) SELECT {COPY_COLS} FROM `a`",
        ])
        wait_until(lambda: caught_up(cfg), 60, "replica to catch up")
        assert rt.error is None
    results = verify(cfg, "src")
    assert all(r["equal"] for r in results), results
    assert {r["table"].split(".")[1]: r["target_rows"] for r in results} == {"a": 4, "b": 7}
