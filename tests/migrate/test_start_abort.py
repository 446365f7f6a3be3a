"""PostgreSQL 15 -> 18: start, status, rerun, abort, on real servers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from typer.testing import Result

from pgbaton.errors import PgbatonError
from pgbaton.migrate import execute
from pgbaton.migrate.status import status, wait_synced
from tests.migrate.conftest import Migration

SCHEMA = """
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, amount numeric(10,2), note text);
CREATE SEQUENCE ticket_seq;
CREATE TABLE tickets (id bigint PRIMARY KEY DEFAULT nextval('ticket_seq'), body text);
CREATE TABLE events (at timestamptz DEFAULT now(), payload jsonb);  -- no primary key
"""


def _write(m: Migration, rounds: int) -> None:
    for db in m.databases:
        with psycopg.connect(m.source.dsn(db), autocommit=True) as c:
            for i in range(rounds):
                c.execute("INSERT INTO orders (amount, note) VALUES (%s, %s)", (i * 1.5, f"n{i}"))
                c.execute("INSERT INTO tickets (body) VALUES (%s)", (f"t{i}",))
                c.execute("INSERT INTO events (payload) VALUES (%s)", (f'{{"i": {i}}}',))
            c.execute("UPDATE events SET payload = '{\"u\": 1}' WHERE payload->>'i' = '1'")
            c.execute("DELETE FROM orders WHERE id % 7 = 0")


def _keep_writing(m: Migration, stop: threading.Event, failures: list[str]) -> None:
    conns = [psycopg.connect(m.source.dsn(db), autocommit=True) for db in m.databases]
    try:
        while not stop.is_set():
            for c in conns:
                try:
                    c.execute("INSERT INTO orders (amount, note) VALUES (1, 'live')")
                    c.execute("INSERT INTO tickets (body) VALUES ('live')")
                    c.execute("UPDATE events SET payload = payload || '{\"w\": 1}' "
                              "WHERE ctid = (SELECT min(ctid) FROM events)")
                except psycopg.Error as exc:
                    failures.append(str(exc))
            time.sleep(0.005)
    finally:
        for c in conns:
            c.close()


def _fingerprint(dsn: str) -> dict[str, tuple[int, str]]:
    out = {}
    with psycopg.connect(dsn) as c:
        for t in ("orders", "tickets", "events"):
            row = c.execute(f"SELECT count(*), coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') "
                            f"FROM {t} x").fetchone()
            assert row is not None
            out[t] = (row[0], row[1])
    return out


def _leftovers(m: Migration) -> list[str]:
    found = []
    with psycopg.connect(m.source.dsn(), autocommit=True) as c:
        found += [r[0] for r in c.execute("SELECT slot_name FROM pg_replication_slots").fetchall()
                  if r[0].startswith(f"pgbaton_{m.name}") or "_sync_" in r[0]]
    for db in m.databases:
        with psycopg.connect(m.source.dsn(db)) as c:
            found += [r[0] for r in c.execute("SELECT pubname FROM pg_publication").fetchall()]
            found += [r[0] for r in c.execute("SELECT evtname FROM pg_event_trigger").fetchall()]
            found += [r[0] for r in c.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pgbaton%'")]
    with psycopg.connect(m.target.dsn()) as c:
        found += [r[0] for r in c.execute("SELECT subname FROM pg_subscription").fetchall()
                  if r[0].startswith(f"pgbaton_{m.name}")]
        found += [r[0] for r in c.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)",
                                          (m.databases,)).fetchall()]
    return found


def test_start_streams_three_databases_then_abort_leaves_nothing(
        migration: Migration, run_cli: Callable[..., Result]) -> None:
    m = migration
    for db in m.databases:
        with psycopg.connect(m.source.dsn(db), autocommit=True) as c:
            c.execute(SCHEMA)
    _write(m, 50)

    stop, failures = threading.Event(), list[str]()
    writer = threading.Thread(target=_keep_writing, args=(m, stop, failures))
    writer.start()  # writes from before `start` until after the initial copy
    try:
        first = execute.start(m.config, m.name)
        # a copy that does not fit beside the others (the sandbox's PostgreSQL 18 has 10 origins) is queued
        assert all(steps[-1] == "create_subscription" or steps[-2:] == ["create_subscription", "queued"]
                   for steps in first.steps.values()), first.steps
        assert first.steps[m.databases[0]][:2] == ["install_ddl_capture_source", "set_replica_identity"]
        _write(m, 30)
        wait_synced(m.config, m.name, timeout=40)
    finally:
        stop.set()
        writer.join()
    assert failures == []
    wait_synced(m.config, m.name, timeout=20)

    for db in m.databases:
        assert _fingerprint(m.source.dsn(db)) == _fingerprint(m.target.dsn(db))
    res = run_cli("sync-sequences", m.name, "--json")
    assert res.exit_code == 0, res.output
    moved = json.loads(res.output)["sequences"]
    assert set(moved[m.databases[0]]) == {"public.orders_id_seq", "public.ticket_seq"}
    for db in m.databases:
        with psycopg.connect(m.source.dsn(db)) as s, psycopg.connect(m.target.dsn(db)) as t:
            for seq in ("orders_id_seq", "ticket_seq"):
                src = s.execute(f"SELECT last_value FROM {seq}").fetchone()
                tgt = t.execute(f"SELECT last_value FROM {seq}").fetchone()
                assert src is not None and tgt is not None and tgt[0] >= src[0] > 0
            # the next id on the target does not collide with any copied row
            row = t.execute("INSERT INTO orders (amount) VALUES (1) RETURNING id, "
                            "(SELECT max(id) FROM orders o WHERE o.id <> orders.id)").fetchone()
            assert row is not None and row[0] > row[1]
            t.rollback()
    assert json.loads(run_cli("sync-sequences", m.name, "--json").output)["sequences"] == {
        db: {} for db in m.databases}  # already level: nothing moves

    res = run_cli("status", m.name, "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["databases"]
    assert [r["database"] for r in rows] == m.databases
    for r in rows:
        assert set(r) == {"database", "direction", "state", "tables_synced", "tables_total", "lag_bytes",
                          "lag_seconds", "source_lsn", "confirmed_flush_lsn", "errors"}
        assert r["direction"] == "forward" and r["state"] == "streaming"
        assert r["tables_synced"] == r["tables_total"] == 3  # pgbaton's DDL queue is not counted once ready
        assert isinstance(r["lag_bytes"], int) and r["lag_bytes"] >= 0 and r["errors"] == []
    assert all(r.state.value == "streaming" for r in status(m.config, m.name))

    again = run_cli("start", m.name, "--json")  # a rerun is a no-op
    assert again.exit_code == 0 and json.loads(again.output)["steps"] == {db: [] for db in m.databases}
    assert f"keep `pgbaton migrate run {m.name}` running" in json.loads(again.output)["next"]
    text = run_cli("start", m.name)
    assert text.exit_code == 0 and f"note: keep `pgbaton migrate run {m.name}` running" in text.output
    assert not execute.start(m.config, m.name).changed

    # someone dropped a subscription (the slot stays): a rerun resumes from the slot, no second copy
    db = m.databases[1]
    with psycopg.connect(m.target.dsn(db), autocommit=True) as c:
        sub = c.execute("SELECT s.subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
                        "WHERE d.datname = current_database()").fetchone()
        assert sub is not None
        c.execute(f'ALTER SUBSCRIPTION "{sub[0]}" DISABLE')
        c.execute(f'ALTER SUBSCRIPTION "{sub[0]}" SET (slot_name = NONE)')
        c.execute(f'DROP SUBSCRIPTION "{sub[0]}"')
    _write(m, 5)
    assert execute.start(m.config, m.name).steps[db] == ["reattach_subscription"]
    wait_synced(m.config, m.name, timeout=30)
    assert _fingerprint(m.source.dsn(db)) == _fingerprint(m.target.dsn(db))

    res = run_cli("abort", m.name, "--yes", "--json")
    assert res.exit_code == 0, res.output
    done = json.loads(res.output)["removed"]
    assert any("slot" in d for d in done)
    assert _leftovers(m) == []
    with psycopg.connect(m.source.dsn(m.databases[0])) as c:
        row = c.execute("SELECT relreplident FROM pg_class WHERE relname = 'events'").fetchone()
        assert row is not None and row[0] == "d"
    with psycopg.connect(m.target.dsn()) as c:
        assert c.execute("SELECT to_regnamespace('pgbaton_migrate')").fetchone() == (None,)
    # abort is idempotent too
    assert execute.abort(m.config, m.name) == []
    with pytest.raises(PgbatonError, match="not started, or it was finished or aborted"):
        run_cli("status", m.name)  # not "not_started" with exit 0: the CLI prints this and exits 1
