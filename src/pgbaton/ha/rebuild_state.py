"""Bookkeeping files of the agent: the background rebuild and the stream failure counter."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pgbaton.ha.config import NodeConfig
from pgbaton.ha.model import RebuildStatus


def _file(cfg: NodeConfig, name: str) -> Path:
    cfg.statedir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return cfg.statedir / name


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def read(cfg: NodeConfig) -> dict[str, object]:
    path = cfg.statedir / "rebuild.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write(cfg: NodeConfig, **data: object) -> None:
    path = _file(cfg, "rebuild.json")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**data, "updated": time.time()}), encoding="utf-8")
    os.replace(tmp, path)


def clear(cfg: NodeConfig) -> None:
    (cfg.statedir / "rebuild.json").unlink(missing_ok=True)


def status(cfg: NodeConfig) -> RebuildStatus:
    """Status of the background rebuild; a worker that died without a word has failed."""
    data = read(cfg)
    state = data.get("status")
    if state == "running":
        pid = data.get("pid")
        return RebuildStatus.RUNNING if isinstance(pid, int) and _pid_alive(pid) else RebuildStatus.FAILED
    if state == "failed":
        return RebuildStatus.FAILED
    if state == "done":
        return RebuildStatus.DONE
    return RebuildStatus.NONE


def worker_pid(cfg: NodeConfig) -> int | None:
    pid = read(cfg).get("pid")
    return pid if isinstance(pid, int) and _pid_alive(pid) else None


def failures(cfg: NodeConfig) -> int:
    try:
        return int((cfg.statedir / "stream-failures").read_text())
    except (OSError, ValueError):
        return 0


def set_failures(cfg: NodeConfig, count: int) -> None:
    path = _file(cfg, "stream-failures")
    if count:
        path.write_text(str(count))
    else:
        path.unlink(missing_ok=True)
