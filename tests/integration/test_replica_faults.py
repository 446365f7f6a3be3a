"""The replica heals itself: network cuts and black holes to the source, a target restart,
transient replay errors; a start that fails midway leaves nothing running; and each batch is
applied once even with two replayers."""

from __future__ import annotations

import faulthandler
import sys
import threading
import time

import psycopg
import pytest

from pgbaton.cdc.replay import Replayer, replayer_lock_key
from pgbaton.config import OnError
from pgbaton.errors import SourceError, TargetUnavailable
from pgbaton.mysql.binlog import ReaderThread
from pgbaton.replica import catalog as cat
from pgbaton.replica.daemon import Supervisor
from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.run import ReplayThread, Replica
from pgbaton.replica.status import errors, status
from pgbaton.sandbox.servers import MariaDBServer

from ..support.netproxy import TcpProxy
from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until
from .test_replica_txn import assert_same


class SupervisorThread:
    def __init__(self, cfg, source: str = "src") -> None:  # type: ignore[no-untyped-def]
        self.sup = Supervisor(cfg, source, max_backoff=2.0)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.sup.run()
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> SupervisorThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sup.request_stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()

    def alive(self) -> bool:
        """For wait_until: a supervisor that gave up fails the wait at once, with its error."""
        if not self.thread.is_alive():
            raise AssertionError(f"the supervisor ended: {self.error!r}")
        return True


def _wait_or_dump(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """wait_until, and on a timeout every thread's stack on stderr (shown with the failure)."""
    try:
        wait_until(pred, timeout, what)
    except AssertionError:
        faulthandler.dump_traceback(sys.stderr, all_threads=True)
        raise


def _setup(pg_db: str, my_db: str, mariadb: MariaDBServer, port: int | None = None, source: str = "src",
           **opts):  # type: ignore[no-untyped-def]
    my_exec(mariadb, my_db, ["CREATE TABLE nk (a int, b varchar(20))", "CREATE TABLE k (id int PRIMARY KEY, v int)"])
    cfg = make_config(pg_db, mariadb, my_db, source=source, **opts)
    add_source(cfg, source)
    init_replica(cfg, source, show_progress=False)
    if port is not None:
        # from now on the replica reaches the source through the proxy
        cfg.sources[source] = cfg.sources[source].model_copy(update={"port": port})
    return cfg


def test_network_cut_and_black_hole_to_the_source(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    with TcpProxy(mariadb.port) as proxy:
        for use_gtid in (False, True):
            db = f"{my_db}{int(use_gtid)}"
            with mariadb.connect() as c, c.cursor() as cur:
                cur.execute(f"CREATE DATABASE {db}")
            cfg = _setup(pg_db, db, mariadb, proxy.port, use_gtid=use_gtid, heartbeat_seconds=0.5,
                         source=f"s{int(use_gtid)}", schema=f"app{int(use_gtid)}", server_id=6100 + int(use_gtid))
            name = f"s{int(use_gtid)}"
            with SupervisorThread(cfg, name) as st:
                for i in range(3):
                    my_exec(mariadb, db, [f"INSERT INTO nk VALUES ({i}, 'x')" for _ in range(50)])
                    time.sleep(0.3)
                    proxy.cut()
                wait_until(lambda: caught_up(cfg, name), 60, "catch up after the cuts")  # noqa: B023
                cuts = st.sup.restarts
                assert cuts >= 1
                my_exec(mariadb, db, ["INSERT INTO nk VALUES (100, 'before-hole')"])
                proxy.blackhole(True)     # a partition: no reset, nothing moves
                my_exec(mariadb, db, ["INSERT INTO nk VALUES (101, 'in-hole')", "INSERT INTO k VALUES (1, 1)"])
                # heartbeats stop; the stream's read timeout must notice
                wait_until(lambda: st.sup.restarts > cuts, 40, "the silent connection given up")  # noqa: B023
                proxy.blackhole(False)
                wait_until(lambda: caught_up(cfg, name), 90, "catch up after the partition")  # noqa: B023
                assert st.error is None
            assert_same(mariadb, db, pg_db, ["nk", "k"], schema=f"app{int(use_gtid)}")


def test_target_restart_is_survived(pg_db: str, my_db: str, mariadb: MariaDBServer, pg15) -> None:  # type: ignore[no-untyped-def]
    cfg = _setup(pg_db, my_db, mariadb)
    # The sandbox PostgreSQL runs with synchronous_commit = off, so an immediate stop loses the
    # commits its WAL writer has not written yet: on a busy machine seconds of them, back to
    # before the end of `replica init`, and the replica then rightly refuses to run a source
    # that is not initialized (its supervisor ends).  What init did is made durable here; the
    # replica's own commits may still be lost in the crash, and that it must survive.
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute("CHECKPOINT")
    with SupervisorThread(cfg) as st:
        my_exec(mariadb, my_db, ["INSERT INTO nk VALUES (1, 'a')"])
        wait_until(lambda: caught_up(cfg), 30, "first catch up")
        pg15.stop(mode="immediate")
        my_exec(mariadb, my_db, ["INSERT INTO nk VALUES (2, 'while target down')", "INSERT INTO k VALUES (1, 1)"])
        time.sleep(2)
        pg15.start()
        _wait_or_dump(lambda: st.alive() and caught_up(cfg), 90, "catch up after the target restart")
        assert st.error is None and st.thread.is_alive()
        assert status(cfg, "src")[0]["restarts"] >= 1     # recorded in the catalog, for status and metrics
    assert_same(mariadb, my_db, pg_db, ["nk", "k"])


def _threads_of(replica: Replica) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.is_alive() and (
        (isinstance(t, ReplayThread) and t.stop is replica.stop_event)
        or (isinstance(t, ReaderThread) and t._halt is replica.stop_event))]


def test_a_start_that_fails_midway_stops_its_threads(pg_db: str, my_db: str, mariadb: MariaDBServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The target lost again while a run starts (here: after the replayer and the binlog reader
    are up): the run ends with its replayer and reader stopped and the replayer lock free, so
    the supervisor's next run is not left waiting for a replayer nobody stops."""
    from pgbaton.replica import resync

    cfg = _setup(pg_db, my_db, mariadb)

    def unreachable(cfg, source):  # type: ignore[no-untyped-def]
        raise TargetUnavailable("cannot connect to the target (test)")

    monkeypatch.setattr(resync, "resume_pending", unreachable)
    replica = Replica(cfg, "src")
    try:
        with pytest.raises(TargetUnavailable):
            replica.run()
        assert replica.stop_event.is_set()
        assert _threads_of(replica) == []

        def lock_free() -> bool:
            with psycopg.connect(pg_db, autocommit=True) as c:
                return c.execute("SELECT pg_try_advisory_lock(%s)", (replayer_lock_key("src"),)).fetchone() == (True,)
        wait_until(lock_free, 5, "the replayer lock free")
    finally:
        replica.request_stop()


def test_a_start_that_cannot_open_its_writer_closes_its_lock_connection(
        pg_db: str, my_db: str, mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _setup(pg_db, my_db, mariadb)
    real = cat.catalog_connection

    def writer_unreachable(cfg, *, purpose: str = "pgbaton", autocommit: bool = False):  # type: ignore[no-untyped-def]
        if purpose.startswith("pgbaton-writer-"):
            raise TargetUnavailable("cannot connect to the target (test)")
        return real(cfg, purpose=purpose, autocommit=autocommit)

    monkeypatch.setattr(cat, "catalog_connection", writer_unreachable)
    with pytest.raises(TargetUnavailable) as failed:
        Replica(cfg, "src").run()
    # (the traceback keeps the run's frame, and a connection it did not close, alive)

    def lock_session_gone() -> bool:
        with psycopg.connect(pg_db, autocommit=True) as c:
            return c.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbaton-lock-src' "
                             "AND datname = current_database()").fetchone() == (0,)
    wait_until(lock_session_gone, 5, "the lock connection closed")
    del failed


def test_a_source_not_initialized_is_refused_and_left_to_init(pg_db: str, my_db: str,
                                                              mariadb: MariaDBServer) -> None:
    """As found after a target crash that lost the end of `replica init` (an immediate stop with
    synchronous_commit = off): the run is refused, and the source keeps its state, so init runs
    again without --force."""
    my_exec(mariadb, my_db, ["CREATE TABLE k (id int PRIMARY KEY, v int)"])
    cfg = make_config(pg_db, mariadb, my_db)
    add_source(cfg, "src")
    with pytest.raises(SourceError, match="has not been initialized"):
        Replica(cfg, "src").run()
    assert status(cfg, "src")[0]["state"] == "new"
    init_replica(cfg, "src", show_progress=False)
    assert status(cfg, "src")[0]["state"] == "initialized"


def test_transient_replay_error_is_retried_not_disabling(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    cfg = _setup(pg_db, my_db, mariadb)
    with psycopg.connect(pg_db, autocommit=True) as blocker, psycopg.connect(pg_db, autocommit=True) as watch, \
            ReplicaThread(cfg) as rt:
        with blocker.transaction():
            blocker.execute("LOCK TABLE app.k IN ACCESS EXCLUSIVE MODE")
            my_exec(mariadb, my_db, ["INSERT INTO k VALUES (1, 1)", "INSERT INTO nk VALUES (1, 'a')"])
            # the replayer waits on the lock; cancel its statement (SQLSTATE 57014) twice
            for _ in range(2):
                def waiting() -> bool:
                    # (pg_stat_activity is a snapshot per transaction: asked from another session)
                    return watch.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgbaton-replay-%' "
                        "AND wait_event_type = 'Lock'").fetchone() == (1,)
                wait_until(waiting, 30, "replayer waiting on the lock")
                watch.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name LIKE 'pgbaton-replay-%'")
        wait_until(lambda: caught_up(cfg), 60, "catch up after the lock is released")
        assert rt.error is None
    assert_same(mariadb, my_db, pg_db, ["nk", "k"])
    assert errors(cfg, "src") == [] and status(cfg, "src")[0]["tables_disabled"] == 0


def test_two_replayers_apply_each_batch_once(pg_db: str, my_db: str, mariadb: MariaDBServer,
                                            caplog: pytest.LogCaptureFixture) -> None:
    cfg = _setup(pg_db, my_db, mariadb, batch_max_rows=10)
    # store a backlog without replaying it: the writer runs, the replayer is held off by its lock
    holder = cat.catalog_connection(cfg, purpose="test-hold")
    holder.execute("SELECT pg_advisory_lock(%s)", (replayer_lock_key("src"),))
    holder.commit()
    with ReplicaThread(cfg):
        for i in range(30):
            my_exec(mariadb, my_db, [f"INSERT INTO nk VALUES ({i}, 'dup?')" for _ in range(5)])
        wait_until(lambda: status(cfg, "src")[0]["read_lag_bytes"] == 0, 30, "backlog stored")
        # the held-off replayer says so, and who holds its lock
        assert any(r.levelname == "WARNING" and "waiting for the previous replayer" in r.getMessage()
                   and "test-hold" in r.getMessage() for r in caplog.records)
        holder.close()
        # two replayers on the stored batches at once (as after a restart with the old one still going)
        conns = [cat.catalog_connection(cfg, purpose=f"test-replayer-{i}") for i in range(2)]
        reps = [Replayer(c, "pgbaton", "src", OnError.disable_table, lambda conn, b: None, max_group_events=20)
                for c in conns]
        threads = [threading.Thread(target=r.replay_pending) for r in reps]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        for c in conns:
            c.close()
        wait_until(lambda: caught_up(cfg), 30, "catch up")
    assert_same(mariadb, my_db, pg_db, ["nk", "k"])


def test_recopy_left_pending_by_a_stopped_replica_resumes_at_start(pg_db: str, my_db: str,
                                                                   mariadb: MariaDBServer) -> None:
    from pgbaton.replica import resync

    cfg = _setup(pg_db, my_db, mariadb)
    my_exec(mariadb, my_db, ["INSERT INTO k VALUES (1, 1), (2, 2)"])
    conn = cat.catalog_connection(cfg)
    try:
        tid = conn.execute("SELECT id FROM tables WHERE src_table = 'k'").fetchone()
        assert tid is not None
        resync.request(conn, tid[0], "test: rows changed without row events")
        conn.commit()
    finally:
        conn.close()
    # the replica was not running: nothing copied the table yet
    with ReplicaThread(cfg) as rt:
        wait_until(lambda: status(cfg, "src")[0]["tables_disabled"] == 0
                   and status(cfg, "src")[0]["tables_copying"] == 0, 90, "the re-copy done")
        my_exec(mariadb, my_db, ["INSERT INTO k VALUES (3, 3)"])
        wait_until(lambda: caught_up(cfg), 60, "catch up")
        assert rt.error is None
    assert_same(mariadb, my_db, pg_db, ["k", "nk"])
