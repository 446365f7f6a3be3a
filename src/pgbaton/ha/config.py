"""The settings of one PostgreSQL node managed by the agent, parsed once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pgbaton.ha.model import SyncMode


def safe_name(text: str) -> str:
    """A node name turned into something usable as a slot or application name."""
    return re.sub(r"[^a-z0-9_]", "_", text.lower())[:63]


@dataclass(frozen=True)
class NodeConfig:
    node: str                                   # this cluster node's name
    pgdata: Path
    bindir: Path = Path("/usr/lib/postgresql/15/bin")
    port: int = 5432
    socketdir: Path = Path("/var/run/postgresql")
    system_user: str = "postgres"
    dbuser: str = "postgres"
    replication_user: str = "postgres"
    rewind_user: str = ""
    passfile: str = ""
    application_name: str = ""                  # default: the node name
    slot_prefix: str = "pgbaton_"
    nodes: dict[str, tuple[str, int]] = field(default_factory=dict)   # node -> replication address
    primary_host: str = ""                      # e.g. a virtual IP; overrides ``nodes`` for standbys
    mode: SyncMode = SyncMode.SYNC
    max_lag: int = 16 * 1024 * 1024
    basebackup_timeout: int = 3600
    basebackup_options: str = ""
    stream_failures: int = 3
    force_promote: bool = False
    config_file: str = ""
    start_options: str = ""
    logfile: str = ""
    connect_timeout: int = 3

    @property
    def app_name(self) -> str:
        return self.application_name or safe_name(self.node)

    def app_name_of(self, node: str) -> str:
        """Application name a peer uses; peers share the resource's parameters."""
        return self.application_name if self.application_name and node == self.node else safe_name(node)

    def slot_of(self, node: str) -> str:
        return safe_name(self.slot_prefix + node)

    @property
    def peers(self) -> dict[str, tuple[str, int]]:
        return {n: a for n, a in self.nodes.items() if n != self.node}

    @property
    def statedir(self) -> Path:
        """Agent bookkeeping beside (never inside) the data directory."""
        return self.pgdata.parent / f".{self.pgdata.name}.pgbaton"

    @property
    def server_log(self) -> Path:
        return Path(self.logfile) if self.logfile else self.pgdata.parent / f"{self.pgdata.name}.log"

    def tool(self, name: str) -> str:
        return str(self.bindir / name)

    def local_dsn(self, dbname: str = "postgres") -> str:
        return (f"host={self.socketdir} port={self.port} user={self.dbuser} dbname={dbname} "
                f"connect_timeout={self.connect_timeout} application_name=pgbaton-agent")

    def remote_dsn(self, host: str, port: int, *, user: str | None = None, replication: bool = False,
                   dbname: str = "postgres") -> str:
        parts = [f"host={host}", f"port={port}", f"user={user or self.replication_user}",
                 f"connect_timeout={self.connect_timeout}", "application_name=pgbaton-agent"]
        parts.append("replication=true" if replication else f"dbname={dbname}")
        if self.passfile:
            parts.append(f"passfile={self.passfile}")
        return " ".join(parts)

    def primary_conninfo(self, target: tuple[str, int] | None = None) -> str:
        """What a standby streams from: the given primary, the primary_host, or any peer that is primary."""
        if target is not None:
            hosts, ports = target[0], str(target[1])
        elif self.primary_host:
            hosts, ports = self.primary_host, str(self.port)
        else:
            peers = sorted(self.peers.values())
            hosts = ",".join(h for h, _ in peers)
            ports = ",".join(str(p) for _, p in peers)
        parts = [f"host={hosts}", f"port={ports}", f"user={self.replication_user}",
                 f"application_name={self.app_name}", "target_session_attrs=primary",
                 f"connect_timeout={self.connect_timeout}", "keepalives_idle=5", "keepalives_interval=2",
                 "keepalives_count=3"]
        if self.passfile:
            parts.append(f"passfile={self.passfile}")
        return " ".join(parts)
