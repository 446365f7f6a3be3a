"""One look at everything pgbaton runs: replica sources, migrations, HA nodes.

Read-only.  The replica's numbers come from ``replica.status`` (the same function as
`pgbaton status`) plus a few counters of its catalog; the migrations' from
``migrate.status`` (as `pgbaton migrate status`); the HA nodes' from their PostgreSQL
servers and, when the resource is named, the promotion scores the agent keeps in the
cluster.  A part that cannot be read is reported in ``errors`` and the other parts still
show.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from pgbaton.config import ClusterConfig, Config
from pgbaton.errors import PgbatonError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableView:
    table: str              # db.table on the source
    target: str             # schema.table on the target
    state: str
    changes_applied: int    # row changes replayed into it (tables.rows_replayed, kept by replay)


@dataclass(frozen=True)
class SourceView:
    name: str
    status: dict[str, Any]  # exactly what `pgbaton status --json` prints for the source
    tables: list[TableView]
    batches_total: int      # batches written since the source was registered
    errors_by_kind: dict[str, int]
    session: int | None     # backend of the running replica's lock: a new one means a restart


@dataclass(frozen=True)
class MigrationView:
    name: str
    state: str
    databases: list[dict[str, Any]]  # as `pgbaton migrate status --json`
    note: str | None = None
    last_switch: dict[str, Any] | None = None  # the newest entry of `migrate status --json`'s "switches"


@dataclass(frozen=True)
class NodeView:
    name: str
    up: bool
    role: str | None = None          # primary | standby
    timeline: int | None = None
    lsn: int | None = None           # primary: current WAL position; standby: replayed (bytes)
    lsn_text: str | None = None
    replay_lag_bytes: int | None = None
    sync_state: str | None = None    # the standby's state as the primary reports it: sync, async, ...
    promotion_score: int | None = None
    error: str | None = None


@dataclass
class Snapshot:
    taken_at: float = field(default_factory=time.time)
    sources: list[SourceView] = field(default_factory=list)
    migrations: list[MigrationView] = field(default_factory=list)
    ha_nodes: list[NodeView] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)   # part -> why it could not be read
    seconds: dict[str, float] = field(default_factory=dict)  # part -> how long reading it took

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- replica --------------------------------------------------------------------------------
def _replica_extras(conn: psycopg.Connection, name: str) -> tuple[list[TableView], int, dict[str, int]]:
    tables = [TableView(f"{r[1]}.{r[2]}", f"{r[3]}.{r[4]}", r[5], int(r[6])) for r in conn.execute(
        """SELECT id, src_db, src_table, dst_schema, dst_table, state, rows_replayed
             FROM tables WHERE source = %s ORDER BY src_db, src_table""", (name,)).fetchall()]
    row = conn.execute("SELECT next_batch_id - 1 FROM sources WHERE name = %s", (name,)).fetchone()
    kinds = {str(k): int(n) for k, n in conn.execute(
        "SELECT kind, count(*) FROM errors WHERE source = %s GROUP BY kind", (name,)).fetchall()}
    conn.commit()
    return tables, int(row[0]) if row else 0, kinds


def read_sources(cfg: Config) -> list[SourceView]:
    from pgbaton.replica import catalog as cat
    from pgbaton.replica.status import source_status

    if not cfg.sources:
        return []
    conn = cat.catalog_connection(cfg, purpose="pgbaton-observe")
    try:
        out = []
        for name in sorted(cfg.sources):
            st = source_status(cfg, conn, name)
            if st["state"] == "not registered":
                out.append(SourceView(name, st, [], 0, {}, None))
                continue
            tables, batches, kinds = _replica_extras(conn, name)
            session = cat.lock_holder(conn, name) if st.get("running") else None
            conn.commit()
            out.append(SourceView(name, st, tables, batches, kinds, session))
        return out
    finally:
        conn.close()


# -- migrations -----------------------------------------------------------------------------
def read_migrations(cfg: Config) -> list[MigrationView]:
    from pgbaton.migrate.status import migration_state, status, switch_history

    out = []
    for name in sorted(cfg.migrations):
        state = migration_state(cfg, name)
        last = next(iter(switch_history(cfg, name, limit=1)), None)
        try:
            dbs = [r.as_dict() for r in status(cfg, name)]
            out.append(MigrationView(name, state, dbs, last_switch=last))
        except PgbatonError as exc:   # e.g. not started yet: nothing to measure
            out.append(MigrationView(name, state, [], str(exc), last_switch=last))
    return out


# -- HA nodes -------------------------------------------------------------------------------
_NODE_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
       CASE WHEN pg_is_in_recovery()
            THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver),
                          (SELECT timeline_id FROM pg_control_checkpoint()))
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END
"""


def _node(name: str, node: ClusterConfig) -> tuple[NodeView, dict[str, tuple[str, int | None]]]:
    """One node's view; for a primary also its standbys: application_name -> (sync_state, lag bytes)."""
    try:
        conn = psycopg.connect(node.conninfo(application_name="pgbaton-observe", what=f"observe.ha_nodes.{name}"),
                               autocommit=True, connect_timeout=min(node.connect_timeout, 5))
    except psycopg.OperationalError as exc:
        return NodeView(name, False, error=(str(exc).strip().splitlines() or ["unreachable"])[0]), {}
    try:
        row = conn.execute(_NODE_SQL).fetchone()
        assert row is not None
        in_recovery, lsn, tli = row
        nbytes = conn.execute("SELECT %s::pg_lsn - '0/0'::pg_lsn", (lsn,)).fetchone() if lsn else None
        standbys: dict[str, tuple[str, int | None]] = {}
        if not in_recovery:
            for app, sync_state, lag in conn.execute(
                    """SELECT application_name, sync_state, pg_current_wal_lsn() - replay_lsn
                         FROM pg_stat_replication""").fetchall():
                standbys[str(app)] = (str(sync_state), int(lag) if lag is not None else None)
        return NodeView(name, True, "standby" if in_recovery else "primary", int(tli) if tli is not None else None,
                        int(nbytes[0]) if nbytes else None, str(lsn) if lsn else None), standbys
    except psycopg.Error as exc:
        return NodeView(name, False, error=(str(exc).strip().splitlines() or ["query failed"])[0]), {}
    finally:
        conn.close()


def read_ha(cfg: Config) -> list[NodeView]:
    obs = cfg.observe
    if not obs.ha_nodes:
        return []
    views: list[NodeView] = []
    standbys: dict[str, tuple[str, int | None]] = {}
    for name in sorted(obs.ha_nodes):
        view, seen = _node(name, obs.ha_nodes[name])
        views.append(view)
        standbys.update(seen)
    scores: dict[str, int | None] = {}
    if obs.ha_resource:
        from pgbaton.ocf.attrs import attributes_for

        # crm_attribute --promotion finds the resource in OCF_RESOURCE_INSTANCE, as inside the agent
        attrs = attributes_for(obs.ha_resource, {**os.environ, "OCF_RESOURCE_INSTANCE": obs.ha_resource})
        scores = {v.name: attrs.get_score(v.name) for v in views}
    from pgbaton.ha.config import safe_name

    out = []
    for v in views:
        # the agent names a standby's stream after its node (made safe for an application_name)
        stream = standbys.get(v.name) or standbys.get(safe_name(v.name))
        sync_state: str | None = stream[0] if stream else None
        lag: int | None = stream[1] if stream else None
        if v.role == "primary":
            sync_state, lag = None, 0
        out.append(NodeView(v.name, v.up, v.role, v.timeline, v.lsn, v.lsn_text, lag, sync_state,
                            scores.get(v.name), v.error))
    return out


# -- all of it ------------------------------------------------------------------------------
class Looker:
    """Takes snapshots (every counter lives in the catalogs, so nothing carries between looks)."""

    def __call__(self, cfg: Config) -> Snapshot:
        return take(cfg)


def take(cfg: Config) -> Snapshot:
    snap = Snapshot()
    parts: list[tuple[str, Any]] = [("replica", read_sources),
                                    ("migrate", read_migrations), ("ha", read_ha)]
    for part, read in parts:
        started = time.monotonic()
        try:
            value = read(cfg)
        except (PgbatonError, psycopg.Error, OSError) as exc:
            snap.errors[part] = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
            log.warning("observe: %s could not be read: %s", part, snap.errors[part])
            value = []
        snap.seconds[part] = round(time.monotonic() - started, 4)
        setattr(snap, {"replica": "sources", "migrate": "migrations", "ha": "ha_nodes"}[part], value)
    return snap
