"""pg_controldata: read it and parse it."""

from __future__ import annotations

import os
import subprocess

from pgbaton.ha.config import NodeConfig
from pgbaton.ha.model import ClusterState, ControlData, parse_lsn


def parse_controldata(text: str) -> ControlData:
    """Parse the output of ``pg_controldata`` (English messages)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return ControlData(
        state=ClusterState(fields["Database cluster state"]),
        system_id=fields["Database system identifier"],
        checkpoint_lsn=parse_lsn(fields["Latest checkpoint location"]),
        checkpoint_timeline=int(fields["Latest checkpoint's TimeLineID"]),
        min_recovery_lsn=parse_lsn(fields.get("Minimum recovery ending location", "0/0")),
        min_recovery_timeline=int(fields.get("Min recovery ending loc's timeline", "0")),
        checksums=fields.get("Data page checksum version", "0") != "0",
    )


def read_controldata(cfg: NodeConfig) -> ControlData | None:
    """The control data of the local data directory, or None when it has none."""
    if not (cfg.pgdata / "global" / "pg_control").is_file():
        return None
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    proc = subprocess.run([cfg.tool("pg_controldata"), "-D", str(cfg.pgdata)], capture_output=True,
                          text=True, env=env, timeout=30, check=False)
    if proc.returncode != 0:
        return None
    try:
        return parse_controldata(proc.stdout)
    except (KeyError, ValueError):
        return None
