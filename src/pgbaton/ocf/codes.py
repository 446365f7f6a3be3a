"""OCF exit codes and the mapping from an observed role to a monitor result."""

from __future__ import annotations

import enum

from pgbaton.ha.model import Role


class Rc(enum.IntEnum):
    SUCCESS = 0
    ERR_GENERIC = 1
    ERR_ARGS = 2
    ERR_UNIMPLEMENTED = 3
    ERR_PERM = 4
    ERR_INSTALLED = 5
    ERR_CONFIGURED = 6
    NOT_RUNNING = 7
    RUNNING_PROMOTED = 8
    FAILED_PROMOTED = 9


def monitor_code(role: Role, probe: bool) -> Rc:
    """What monitor reports for a role; ``probe`` is a one-time check (interval 0)."""
    return {
        Role.PRIMARY: Rc.RUNNING_PROMOTED,
        Role.STANDBY: Rc.SUCCESS,
        Role.REBUILDING: Rc.SUCCESS,            # a standby being copied: started, not promotable
        Role.STOPPED: Rc.NOT_RUNNING,
        Role.UNUSABLE: Rc.NOT_RUNNING,
        Role.CRASHED_PRIMARY: Rc.FAILED_PROMOTED,
        Role.CRASHED_STANDBY: Rc.NOT_RUNNING if probe else Rc.ERR_GENERIC,
        Role.REBUILD_FAILED: Rc.NOT_RUNNING if probe else Rc.ERR_GENERIC,
    }[role]
