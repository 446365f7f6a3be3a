"""MariaDB's INET4, INET6 and UUID columns: the binlog sends their stored bytes (trailing
zero bytes left out), the snapshot their text; both must give the text MariaDB prints.
Found while building the issue 11 corpus, where tables with these columns differed."""

from __future__ import annotations

import psycopg

from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.verify import verify
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until
from .test_ddl_replica import _run

UUIDS = ["123e4567-e89b-12d3-a456-426614174000", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
         "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-4fff-bfff-ff0000000000",
         "00000000-0000-0000-0000-000000000001"]
INET6 = ["::1", "::", "2001:db8::1", "::ffff:1.2.3.4", "::1.2.3.4", "fe80::", "2001:db8:0:0:1::",
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "1::"]
INET4 = ["127.0.0.1", "0.0.0.0", "10.0.0.0", "255.255.255.255", "1.0.0.0"]


def _rows() -> list[str]:
    out = []
    for i in range(max(len(UUIDS), len(INET6), len(INET4))):
        vals = [f"'{v[i]}'" if i < len(v) else "NULL" for v in (UUIDS, INET6, INET4)]
        out.append(f"({i}, {', '.join(vals)})")
    return out


def test_inet_and_uuid_through_snapshot_and_binlog(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    rows = ", ".join(_rows())
    my_exec(mariadb, my_db, ["CREATE TABLE before_init (id int PRIMARY KEY, u uuid, i6 inet6, i4 inet4)",
                             f"INSERT INTO before_init VALUES {rows}"])
    cfg = make_config(pg_db, mariadb, my_db, batch_max_ms=20)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    with ReplicaThread(cfg) as rt:
        _run(mariadb, my_db, [
            "CREATE TABLE after_init (id int PRIMARY KEY, u uuid, i6 inet6, i4 inet4)",
            f"INSERT INTO after_init VALUES {rows}",
            "UPDATE before_init SET u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a00', i6 = '::2', i4 = '1.2.3.0' "
            "WHERE id = 1",
            "ALTER TABLE after_init ADD COLUMN u2 uuid DEFAULT '00000000-0000-0000-0000-000000000100'",
            "INSERT INTO after_init (id, u2) VALUES (100, '11111111-0000-0000-0000-000000000000')",
        ])
        wait_until(lambda: caught_up(cfg), 60, "replica to catch up")
        assert rt.error is None, rt.error
    bad = [r for r in verify(cfg, "src") if not r["equal"]]
    assert not bad, bad
    with psycopg.connect(pg_db) as conn:
        got = conn.execute("SELECT u, i6, i4 FROM app.after_init WHERE id = 3").fetchone()
    assert got == (UUIDS[3], INET6[3], INET4[3])
