"""Keep a migration healthy: one pass repairs what is missing, ``run`` repeats it until stopped.

A pass, in the direction that streams now (forward before a switchover, reverse after):
- forward: everything ``start`` would set up (a lost subscription is reattached to its slot);
- reverse: a disabled subscription is enabled, a lost one reattached while its slot exists;
- the DDL capture on both sides is repaired when missing or outdated;
- tables created by replicated DDL are added to the subscription (their rows are copied then).
A pass does nothing while a switchover or switchback is half done: rerunning that command is
what finishes or rolls it back.
"""

from __future__ import annotations

import logging
import threading

import psycopg

from pgbaton.config import Config
from pgbaton.errors import PgbatonError
from pgbaton.migrate import ddl, streams
from pgbaton.migrate.catalog import Catalog
from pgbaton.migrate.execute import set_up
from pgbaton.migrate.lifecycle import Command, Event, State, admit
from pgbaton.migrate.names import object_name
from pgbaton.migrate.probe import connect, slot_exists
from pgbaton.migrate.streams import FWD, REV, Side

log = logging.getLogger(__name__)


def tend(config: Config, name: str) -> list[str]:
    """One repair pass; what it did (empty when all was well, or while another command works on it)."""
    cfg = config.migration(name)
    with connect(cfg.target, "target") as t:
        catalog = Catalog(t, cfg.options.catalog_schema, name)
        state = catalog.state()
        admission = admit(Command.run, state, name)
        if not admission.act:
            raise PgbatonError(admission.message)
        if not catalog.lock():
            log.debug("migration %s: another command holds the migration; this pass waits", name)
            return []
        state = catalog.state()  # again, under the lock
        if state in (State.switching_over, State.switching_back) or catalog.switch_steps():
            return []  # a switch is half done: only rerunning it may touch the streams
        return _pass(config, name, catalog, state)


def _pass(config: Config, name: str, catalog: Catalog, state: State) -> list[str]:
    cfg = config.migration(name)
    done: list[str] = []
    direction = REV if state is State.switched else FWD
    if direction == FWD:
        res = set_up(cfg, name, catalog)
        done += [f"{db}: {step}" for db, taken in res.steps.items() for step in taken]
        if state is State.started:
            catalog.transition(Event.set_up)
    else:
        for db in cfg.databases:
            done += _keep_reverse(config, name, db)
    for side in (Side(cfg.source, "source"), Side(cfg.target, "target")):
        done += streams.reconcile_apply_exemption(side, cfg.databases)  # after a switch that could not tidy
    if cfg.options.ddl_replication:
        pub, sub = streams.publisher(cfg, direction), streams.subscriber(cfg, direction)
        for db in cfg.databases:
            for side in (Side(cfg.source, "source"), Side(cfg.target, "target")):
                if ddl.install(side, db, cfg.options.unreplicable_ddl):
                    done.append(f"{side.name}: {db}: DDL capture repaired")
            for table in ddl.refresh_new_tables(pub, sub, db, object_name(name, db, direction)):
                done.append(f"{sub.name}: {db}: {table} added to the subscription")
    return done


def _keep_reverse(config: Config, name: str, db: str) -> list[str]:
    cfg = config.migration(name)
    pub, sub = streams.publisher(cfg, REV), streams.subscriber(cfg, REV)
    obj = object_name(name, db, REV)
    with connect(sub.cluster, sub.name, db) as s:
        row = s.execute("SELECT subenabled FROM pg_subscription WHERE subname = %s", (obj,)).fetchone()
    if row is not None and row[0]:
        return []
    with connect(pub.cluster, pub.name, db) as p:
        has_slot = slot_exists(p, obj)
    if not has_slot:
        raise PgbatonError(f"database {db}: the reverse slot {obj} on the {pub.name} is gone, so the {sub.name} "
                           "no longer receives every change; it cannot serve as a fallback")
    streams.create_subscriber_end(pub, sub, db, obj, origin_none=streams.major(sub) >= 16)
    return [f"{sub.name}: {db}: reverse subscription " + ("enabled" if row is not None else "reattached")]


def run(config: Config, name: str, stop: threading.Event, *, interval: float = 2.0) -> None:
    """Repeat ``tend`` every ``interval`` seconds until ``stop`` is set; errors are logged and retried."""
    failures = 0
    while not stop.is_set():
        try:
            for action in tend(config, name):
                log.info("migration %s: %s", name, action)
            failures = 0
        except (PgbatonError, psycopg.Error) as exc:
            failures += 1
            log.error("migration %s: %s (retrying)", name, str(exc).strip().splitlines()[0] if str(exc) else exc)
        stop.wait(min(interval * (2 ** min(failures, 4)), 60.0) if failures else interval)
