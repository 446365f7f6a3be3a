"""Cluster attributes the agent reads and writes: promotion scores and node attributes.

Two lifetimes:

- transient (promotion scores, private attributes such as a standby's WAL position): lost
  when the whole cluster restarts.  Inside Pacemaker: ``crm_attribute --promotion`` and
  ``attrd_updater --private``.
- durable (whether a node holds every acknowledged commit): kept in the CIB across a full
  restart, written with ``crm_attribute --lifetime forever``, which returns only once the
  CIB has the value.  A failed durable write raises :class:`AttrWriteError`: the callers
  must not go on as if it were recorded.

With ``PGBATON_ATTR_DIR`` set (tests, ocf-tester without a cluster) they are files in that
folder: ``<resource>.json`` (transient) and ``<resource>.durable.json``.  Deleting the first
is what a full cluster restart does.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from pgbaton.errors import PgbatonError

log = logging.getLogger(__name__)


class AttrWriteError(PgbatonError):
    """A durable cluster attribute could not be recorded."""


class Attributes(Protocol):
    # True when a cluster acts on the scores (Pacemaker), False for the files of the tests
    live: bool

    def get_score(self, node: str) -> int | None: ...
    def set_score(self, node: str, score: int) -> bool: ...
    def get(self, node: str, name: str) -> str | None: ...
    def set(self, node: str, name: str, value: str | None) -> None: ...
    def get_durable(self, node: str, name: str) -> str | None: ...
    def set_durable(self, node: str, name: str, value: str | None) -> None: ...
    def set_durable_all(self, name: str, values: Mapping[str, str]) -> None: ...


def _run(cmd: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=15, check=False, env=dict(env))
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("%s failed: %s", cmd[0], exc)
        return None


class PacemakerAttributes:
    """Transient (reboot lifetime) attributes in the running cluster."""

    live = True

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

    def set_score(self, node: str, score: int) -> bool:
        """Set the promotion score; True when it changed."""
        if self.get_score(node) == score:
            return False
        proc = _run(["crm_attribute", "--promotion", "--node", node, "--update", str(score)], self.env)
        if proc is None or proc.returncode != 0:
            log.warning("could not set the promotion score of %s: %s", node, proc.stderr.strip() if proc else "")
            return False
        log.info("promotion score of %s set to %s", node, score)
        return True

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

    def get_durable(self, node: str, name: str) -> str | None:
        proc = _run(["crm_attribute", "--type", "nodes", "--node", node, "--name", self._name(name),
                     "--lifetime", "forever", "--query", "--quiet"], self.env)
        if proc is None or proc.returncode != 0:
            return None
        return proc.stdout.strip() or None

    def set_durable(self, node: str, name: str, value: str | None) -> None:
        if self.get_durable(node, name) == value:
            return
        args = ["--delete"] if value is None else ["--update", value]
        proc = _run(["crm_attribute", "--type", "nodes", "--node", node, "--name", self._name(name),
                     "--lifetime", "forever", *args], self.env)
        if proc is None or proc.returncode != 0:
            raise AttrWriteError(f"could not record {self._name(name)}={value} for {node}: "
                                 f"{proc.stderr.strip() if proc else 'crm_attribute did not run'}")
        log.info("recorded %s=%s for %s", self._name(name), value, node)

    def set_durable_all(self, name: str, values: Mapping[str, str]) -> None:
        """Write one durable attribute for several nodes at once (concurrent ``crm_attribute``
        calls, no read first: a promotion waits for these); raises AttrWriteError if one failed."""
        try:
            procs = {node: subprocess.Popen(["crm_attribute", "--type", "nodes", "--node", node, "--name",
                                             self._name(name), "--lifetime", "forever", "--update", value],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                            env=dict(self.env))
                     for node, value in values.items()}
        except OSError as exc:
            raise AttrWriteError(f"could not record {self._name(name)}: {exc}") from exc
        failed = []
        for node, proc in procs.items():
            try:
                _, err = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if proc.returncode != 0:
                failed.append(f"{node}: {err.strip() or proc.returncode}")
            else:
                log.info("recorded %s=%s for %s", self._name(name), values[node], node)
        if failed:
            raise AttrWriteError(f"could not record {self._name(name)} for {'; '.join(failed)}")


class FileAttributes:
    """The same attributes as files, for running the agent outside a cluster."""

    live = False

    def __init__(self, folder: Path, resource: str) -> None:
        self.path = folder / f"{resource}.json"
        self.durable_path = folder / f"{resource}.durable.json"
        folder.mkdir(parents=True, exist_ok=True)

    def _load(self, path: Path | None = None) -> dict[str, str]:
        try:
            data = json.loads((path or self.path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _store(self, key: str, value: str | None, path: Path | None = None) -> None:
        path = path or self.path
        data = self._load(path)
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    def get_score(self, node: str) -> int | None:
        value = self._load().get(f"{node}/score")
        return int(value) if value is not None else None

    def set_score(self, node: str, score: int) -> bool:
        if self.get_score(node) == score:
            return False
        self._store(f"{node}/score", str(score))
        return True

    def get(self, node: str, name: str) -> str | None:
        return self._load().get(f"{node}/{name}")

    def set(self, node: str, name: str, value: str | None) -> None:
        self._store(f"{node}/{name}", value)

    def get_durable(self, node: str, name: str) -> str | None:
        return self._load(self.durable_path).get(f"{node}/{name}")

    def set_durable(self, node: str, name: str, value: str | None) -> None:
        if self.get_durable(node, name) == value:
            return
        try:
            self._store(f"{node}/{name}", value, self.durable_path)
        except OSError as exc:
            raise AttrWriteError(f"could not record {name}={value} for {node}: {exc}") from exc

    def set_durable_all(self, name: str, values: Mapping[str, str]) -> None:
        for node, value in values.items():
            self.set_durable(node, name, value)


def attributes_for(resource: str, env: Mapping[str, str]) -> Attributes:
    folder = env.get("PGBATON_ATTR_DIR")
    if folder:
        return FileAttributes(Path(folder), resource)
    return PacemakerAttributes(resource, env)
