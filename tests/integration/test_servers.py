"""The fixtures really start the servers pgbaton needs, with the settings it relies on."""

from __future__ import annotations

import psycopg
import pymysql

from pgbaton.sandbox.servers import MariaDBServer, PostgresServer


def test_pg15_and_pg18_answer(pg15: PostgresServer, pg18: PostgresServer) -> None:
    with psycopg.connect(pg15.dsn()) as c15, psycopg.connect(pg18.dsn()) as c18:
        v15 = c15.execute("SHOW server_version_num").fetchone()
        v18 = c18.execute("SHOW server_version_num").fetchone()
        assert v15 and int(v15[0]) // 10000 == 15
        assert v18 and int(v18[0]) // 10000 == 18
        assert c15.execute("SHOW wal_level").fetchone() == ("logical",)


def test_mariadb_binlog_settings(mariadb: MariaDBServer) -> None:
    conn = pymysql.connect(**mariadb.connect_args())  # type: ignore[arg-type]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@gtid_strict_mode"
        )
        assert cur.fetchone() == (1, "ROW", "FULL", "FULL", 1)
    conn.close()
