"""Cluster attributes the agent reads and writes: promotion scores and private node attributes.

Inside Pacemaker they go through ``crm_attribute --promotion`` and ``attrd_updater --private``.
With ``PGBATON_ATTR_DIR`` set (tests, ocf-tester without a cluster) they are files in that folder.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class Attributes(Protocol):
    def get_score(self, node: str) -> int | None: ...
    def set_score(self, node: str, score: int) -> None: ...
    def get(self, node: str, name: str) -> str | None: ...
    def set(self, node: str, name: str, value: str | None) -> None: ...


def _run(cmd: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=15, check=False, env=dict(env))
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("%s failed: %s", cmd[0], exc)
        return None


class PacemakerAttributes:
    """Transient (reboot lifetime) attributes in the running cluster."""

    def __init__(self, resource: str, env: Mapping[str, str]) -> None:
        self.resource = resource
        self.env = env

    def get_score(self, node: str) -> int | None:
        proc = _run(["crm_attribute", "--promotion", "--lifetime", "reboot", "--node", node, "--query", "--quiet"],
                    self.env)
        if proc is None or proc.returncode != 0 or not proc.stdout.strip():
            return None
        try:
            return int(proc.stdout.strip())
        except ValueError:
            return None

    def set_score(self, node: str, score: int) -> None:
        if self.get_score(node) == score:
            return
        proc = _run(["crm_attribute", "--promotion", "--node", node, "--update", str(score)], self.env)
        if proc is None or proc.returncode != 0:
            log.warning("could not set the promotion score of %s: %s", node, proc.stderr.strip() if proc else "")
        else:
            log.info("promotion score of %s set to %s", node, score)

    def _name(self, name: str) -> str:
        return f"{self.resource}-{name}"

    def get(self, node: str, name: str) -> str | None:
        proc = _run(["attrd_updater", "--private", "--name", self._name(name), "--node", node, "--query"], self.env)
        if proc is None or proc.returncode != 0:
            return None
        # name="pgsql-position" host="n1" value="2:0/5000028"
        _, sep, rest = proc.stdout.partition('value="')
        value = rest.split('"', 1)[0] if sep else ""
        return value or None

    def set(self, node: str, name: str, value: str | None) -> None:
        if self.get(node, name) == value:
            return
        args = ["--delete"] if value is None else ["--update", value]
        proc = _run(["attrd_updater", "--private", "--name", self._name(name), "--node", node, *args], self.env)
        if proc is None or proc.returncode != 0:
            log.warning("could not record %s for %s", self._name(name), node)


class FileAttributes:
    """The same attributes as files, for running the agent outside a cluster."""

    def __init__(self, folder: Path, resource: str) -> None:
        self.path = folder / f"{resource}.json"
        folder.mkdir(parents=True, exist_ok=True)

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _store(self, key: str, value: str | None) -> None:
        data = self._load()
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)

    def get_score(self, node: str) -> int | None:
        value = self._load().get(f"{node}/score")
        return int(value) if value is not None else None

    def set_score(self, node: str, score: int) -> None:
        self._store(f"{node}/score", str(score))

    def get(self, node: str, name: str) -> str | None:
        return self._load().get(f"{node}/{name}")

    def set(self, node: str, name: str, value: str | None) -> None:
        self._store(f"{node}/{name}", value)


def attributes_for(resource: str, env: Mapping[str, str]) -> Attributes:
    folder = env.get("PGBATON_ATTR_DIR")
    if folder:
        return FileAttributes(Path(folder), resource)
    return PacemakerAttributes(resource, env)
