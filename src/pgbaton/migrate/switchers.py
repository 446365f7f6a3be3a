"""Ways to move client traffic from the source to the target at switchover (pluggable)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from typing import Protocol

from pgbaton.config import ClusterConfig, MigrationConfig, SwitchConfig, SwitchMethod
from pgbaton.errors import PgbatonError

log = logging.getLogger(__name__)


class Switcher(Protocol):
    """What the switchover asks of a traffic switcher; every call is idempotent."""

    def pause(self, dbs: list[str], on_deadline: Callable[[list[str]], None] | None = None) -> None:
        """Hold new client transactions for ``dbs``; return once none is in flight.

        A switcher that waits for transactions in flight calls ``on_deadline(databases still
        waiting)`` once its pause timeout has passed, if given, before giving up.
        """

    def point_to(self, cluster: ClusterConfig, dbs: list[str]) -> None:
        """Send the traffic for ``dbs`` to ``cluster`` from the next transaction on."""

    def resume(self, dbs: list[str]) -> None:
        """Let the held transactions go on (a database that is not paused is fine)."""


class NoSwitcher:
    """``method: none``: clients are moved by someone else; pgbaton only freezes and replicates."""

    def pause(self, dbs: list[str], on_deadline: Callable[[list[str]], None] | None = None) -> None:
        return None

    def point_to(self, cluster: ClusterConfig, dbs: list[str]) -> None:
        return None

    def resume(self, dbs: list[str]) -> None:
        return None


class ScriptSwitcher:
    """``method: script``: a program of the user's moves the traffic (a virtual IP, a load balancer,
    a DNS entry...).  It is run as ``command... pause DB...``, ``command... point HOST PORT DB...``
    and ``command... resume DB...``; exit 0 means done.  Like every switcher it must be
    idempotent: a rollback or a rerun after a crash may repeat a call."""

    def __init__(self, cfg: SwitchConfig) -> None:
        assert cfg.command
        self.command, self.timeout = list(cfg.command), cfg.timeout_seconds

    def _call(self, *args: str) -> None:
        argv = [*self.command, *args]
        log.info("switch script: %s", " ".join(args))
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except FileNotFoundError:
            raise PgbatonError(f"switch.command: {self.command[0]} not found") from None
        except subprocess.TimeoutExpired:
            raise PgbatonError(f"switch script `{args[0]}` did not end within {self.timeout:.0f} s "
                               "(switch.timeout_seconds)") from None
        if done.returncode != 0:
            raise PgbatonError(f"switch script `{args[0]}` failed with exit code {done.returncode}: "
                               f"{(done.stderr or done.stdout).strip()[-500:]}")

    def pause(self, dbs: list[str], on_deadline: Callable[[list[str]], None] | None = None) -> None:
        self._call("pause", *dbs)

    def point_to(self, cluster: ClusterConfig, dbs: list[str]) -> None:
        self._call("point", cluster.host, str(cluster.port), *dbs)

    def resume(self, dbs: list[str]) -> None:
        self._call("resume", *dbs)


def switcher_for(cfg: MigrationConfig) -> Switcher:
    if cfg.switch.method is SwitchMethod.pgbouncer:
        from pgbaton.migrate.switch_pgbouncer import PgBouncerSwitcher

        return PgBouncerSwitcher(cfg.switch)
    if cfg.switch.method is SwitchMethod.script:
        return ScriptSwitcher(cfg.switch)
    return NoSwitcher()
