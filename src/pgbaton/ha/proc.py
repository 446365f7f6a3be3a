"""Child processes of the agent that never outlive it: each runs in its own process group.

``subprocess.run(timeout=...)`` kills only the direct child.  The agent's children are
``runuser``, which in turn runs pg_rewind, pg_basebackup or pg_ctl: killing ``runuser``
alone leaves the tool running (holding a slot, writing into PGDATA).  Here every child
gets a process group of its own, and a timeout, or a SIGTERM of the calling process
(see :func:`forward_sigterm`), ends the whole group.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType

log = logging.getLogger(__name__)

_running: set[int] = set()       # process groups of children running right now


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_group(pgid: int, grace: float = 3.0) -> None:
    """TERM the process group, then KILL what is left after ``grace`` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pgid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(cmd: Sequence[str], timeout: float, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in a new process group, capturing its output.

    On timeout the whole group is ended before ``subprocess.TimeoutExpired`` is raised.
    A process that detaches into a session of its own (a postmaster started by pg_ctl)
    is not part of the group and keeps running, as it should.
    """
    proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(env) if env is not None else None, process_group=0)
    _running.add(proc.pid)
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not finish in %.0f s: ending its process group", cmd[0], timeout)
            kill_group(proc.pid)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(list(cmd), timeout, output=out, stderr=err) from None
        finally:
            if proc.poll() is None:     # an exception while waiting (KeyboardInterrupt, SIGTERM handler)
                kill_group(proc.pid)
                proc.wait()
    finally:
        _running.discard(proc.pid)
        # the tool may have left children behind in its group even when it exited itself
        if _alive(proc.pid):
            kill_group(proc.pid, grace=1.0)
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)


def end_children() -> None:
    """End the process groups of every child still running (used on SIGTERM)."""
    for pgid in list(_running):
        kill_group(pgid)


def forward_sigterm() -> None:
    """On SIGTERM, end the children's process groups, then exit (for long-running workers)."""
    def handler(signum: int, frame: FrameType | None) -> None:
        log.warning("SIGTERM: ending %s child process group(s)", len(_running))
        end_children()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
