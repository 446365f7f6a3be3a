"""Ways to move client traffic from the source to the target at switchover (pluggable)."""

from __future__ import annotations

from typing import Protocol

from pgbaton.config import ClusterConfig, MigrationConfig, SwitchMethod


class Switcher(Protocol):
    """What the switchover asks of a traffic switcher; every call is idempotent."""

    def pause(self, dbs: list[str]) -> None:
        """Hold new client transactions for ``dbs``; return once none is in flight."""

    def point_to(self, cluster: ClusterConfig, dbs: list[str]) -> None:
        """Send the traffic for ``dbs`` to ``cluster`` from the next transaction on."""

    def resume(self, dbs: list[str]) -> None:
        """Let the held transactions go on (a database that is not paused is fine)."""


class NoSwitcher:
    """``method: none``: clients are moved by someone else; pgbaton only freezes and replicates."""

    def pause(self, dbs: list[str]) -> None:
        return None

    def point_to(self, cluster: ClusterConfig, dbs: list[str]) -> None:
        return None

    def resume(self, dbs: list[str]) -> None:
        return None


def switcher_for(cfg: MigrationConfig) -> Switcher:
    if cfg.switch.method is SwitchMethod.pgbouncer:
        from pgbaton.migrate.switch_pgbouncer import PgBouncerSwitcher

        return PgBouncerSwitcher(cfg.switch)
    return NoSwitcher()
