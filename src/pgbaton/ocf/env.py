"""The OCF environment: resource parameters (OCF_RESKEY_*), meta attributes and notifications."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pgbaton.ha.config import NodeConfig
from pgbaton.ha.decide import parse_node_map
from pgbaton.ha.model import SyncMode


@dataclass(frozen=True)
class Parameter:
    name: str
    default: str
    short: str
    long: str
    kind: str = "string"       # string, integer, boolean
    required: bool = False
    unique: bool = False
    reloadable: bool = False


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("pgdata", "/var/lib/postgresql/15/main", "Data directory",
              "The PostgreSQL data directory (PGDATA) of this node.", unique=True),
    Parameter("bindir", "/usr/lib/postgresql/15/bin", "Binary directory",
              "Directory holding pg_ctl, pg_controldata, pg_basebackup, pg_rewind and pg_isready."),
    Parameter("pgport", "5432", "Port", "TCP port of the instance (passed to the server on start).", "integer"),
    Parameter("socketdir", "/var/run/postgresql", "Socket directory",
              "Unix socket directory of the instance; the agent connects through it."),
    Parameter("system_user", "postgres", "System user", "Operating system user that owns and runs the instance."),
    Parameter("dbuser", "postgres", "Local superuser",
              "Database superuser the agent uses over the local socket (promote, ALTER SYSTEM, slots)."),
    Parameter("replication_user", "postgres", "Replication user",
              "Role with the REPLICATION attribute used by standbys, pg_basebackup and pg_rewind."),
    Parameter("rewind_user", "", "pg_rewind user",
              "Role pg_rewind connects as on the primary (superuser or granted the pg_rewind functions); "
              "empty: the replication user."),
    Parameter("passfile", "", "Password file",
              "libpq password file for replication connections; empty: ~/.pgpass of the system user."),
    Parameter("application_name", "", "Application name",
              "application_name of this node's WAL receiver; empty: derived from the node name (recommended)."),
    Parameter("slot_prefix", "pgbaton_", "Physical slot prefix",
              "Each node streams through the physical replication slot PREFIX+node name on the primary."),
    Parameter("node_hosts", "", "Node addresses",
              "Replication address of every node: 'node1=10.0.0.1 node2=10.0.0.2[:port]'. "
              "A standby streams from whichever of the other nodes is the primary.", required=True),
    Parameter("primary_host", "", "Primary address",
              "Optional address that always leads to the primary (a virtual IP); used by standbys instead "
              "of the node list."),
    Parameter("replication_mode", "sync", "Replication mode",
              "sync: the primary commits synchronously while a standby streams and asynchronously when "
              "none does; async: always asynchronous.", reloadable=True),
    Parameter("max_lag", str(16 * 1024 * 1024), "Most lag for promotion",
              "In async mode, the most bytes a standby may be behind the last known primary position "
              "and still be promoted.", "integer", reloadable=True),
    Parameter("force_promote", "false", "Promote standbys that may lack commits",
              "Promote a standby that may lack acknowledged commits: not in sync with the last primary, "
              "lagging more than max_lag, or behind an old primary that has not come back after a full "
              "crash. Accepts the loss of those commits; set it back to false afterwards.", "boolean",
              reloadable=True),
    Parameter("basebackup_timeout", "3600", "Basebackup timeout",
              "Seconds a rebuild (pg_basebackup) may take before it counts as failed.", "integer"),
    Parameter("basebackup_options", "", "Extra pg_basebackup options",
              "Extra options for pg_basebackup when a standby is rebuilt, e.g. --max-rate=100M."),
    Parameter("stream_failures", "3", "Broken stream threshold",
              "Monitors in a row where a primary exists but this standby does not stream from it, "
              "before the standby is reported failed (and restarted, rewound or rebuilt).", "integer",
              reloadable=True),
    Parameter("config_file", "", "Configuration file",
              "postgresql.conf outside the data directory (Debian: /etc/postgresql/15/main/postgresql.conf)."),
    Parameter("start_options", "", "Extra server options", "Extra options given to postgres with pg_ctl -o."),
    Parameter("logfile", "", "Server log", "Startup log of pg_ctl; empty: PGDATA.log beside the data directory."),
    Parameter("connect_timeout", "3", "Connect timeout", "Seconds for each connection the agent opens.",
              "integer", reloadable=True),
)


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on", "y")


def node_name(env: Mapping[str, str]) -> str:
    """This node's cluster name: from Pacemaker, else crm_node -n, else uname."""
    name = env.get("OCF_RESKEY_CRM_meta_on_node", "")
    if name:
        return name
    try:
        proc = subprocess.run(["crm_node", "-n"], capture_output=True, text=True, timeout=5, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return socket.gethostname()


def raw_params(env: Mapping[str, str]) -> dict[str, str]:
    return {p.name: env.get(f"OCF_RESKEY_{p.name}", p.default) for p in PARAMETERS}


def node_config(env: Mapping[str, str]) -> NodeConfig:
    """Parse the resource parameters; raises ValueError with a readable message when invalid."""
    raw = raw_params(env)
    port = int(raw["pgport"])
    mode = raw["replication_mode"].strip().lower()
    if mode not in ("sync", "async"):
        raise ValueError(f"replication_mode must be sync or async, not {mode!r}")
    numbers = {k: int(raw[k]) for k in ("max_lag", "basebackup_timeout", "stream_failures", "connect_timeout")}
    if numbers["stream_failures"] < 1 or numbers["basebackup_timeout"] < 1 or numbers["max_lag"] < 0:
        raise ValueError("stream_failures and basebackup_timeout must be positive, max_lag not negative")
    return NodeConfig(
        node=node_name(env), pgdata=Path(raw["pgdata"]), bindir=Path(raw["bindir"]), port=port,
        socketdir=Path(raw["socketdir"]), system_user=raw["system_user"], dbuser=raw["dbuser"],
        replication_user=raw["replication_user"], rewind_user=raw["rewind_user"], passfile=raw["passfile"],
        application_name=raw["application_name"], slot_prefix=raw["slot_prefix"],
        nodes=dict(parse_node_map(raw["node_hosts"], port)), primary_host=raw["primary_host"],
        mode=SyncMode(mode), max_lag=numbers["max_lag"], basebackup_timeout=numbers["basebackup_timeout"],
        basebackup_options=raw["basebackup_options"],
        stream_failures=numbers["stream_failures"], force_promote=_flag(raw["force_promote"]),
        config_file=raw["config_file"], start_options=raw["start_options"], logfile=raw["logfile"],
        connect_timeout=numbers["connect_timeout"],
    )


@dataclass(frozen=True)
class Notification:
    kind: str                       # pre / post
    operation: str                  # start / stop / promote / demote
    promote: tuple[str, ...] = ()
    demote: tuple[str, ...] = ()
    active: tuple[str, ...] = ()
    promoted: tuple[str, ...] = ()


def _names(env: Mapping[str, str], *keys: str) -> tuple[str, ...]:
    for key in keys:
        value = env.get(f"OCF_RESKEY_CRM_meta_notify_{key}_uname", "").split()
        if value:
            return tuple(value)
    return ()


def notification(env: Mapping[str, str]) -> Notification:
    return Notification(
        kind=env.get("OCF_RESKEY_CRM_meta_notify_type", ""),
        operation=env.get("OCF_RESKEY_CRM_meta_notify_operation", ""),
        promote=_names(env, "promote"), demote=_names(env, "demote"), active=_names(env, "active"),
        promoted=_names(env, "promoted", "master"),
    )


@dataclass(frozen=True)
class Call:
    """One invocation of the agent."""

    action: str
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def resource(self) -> str:
        """The clone's resource name without the instance number (``pgsql:1`` -> ``pgsql``)."""
        return self.env.get("OCF_RESOURCE_INSTANCE", "pgsql").split(":", 1)[0]

    @property
    def interval_ms(self) -> int:
        try:
            return int(self.env.get("OCF_RESKEY_CRM_meta_interval", "0"))
        except ValueError:
            return 0

    @property
    def timeout_s(self) -> float:
        try:
            return int(self.env.get("OCF_RESKEY_CRM_meta_timeout", "60000")) / 1000
        except ValueError:
            return 60.0

    @property
    def clone_max(self) -> int:
        try:
            return int(self.env.get("OCF_RESKEY_CRM_meta_clone_max", "2"))
        except ValueError:
            return 2
