"""pg_rewind the local data directory onto the primary's timeline."""

from __future__ import annotations

import logging
import subprocess

from pgbaton.ha.config import NodeConfig
from pgbaton.ha.instance import run_as
from pgbaton.ha.probe import FoundPrimary

log = logging.getLogger(__name__)


def rewind(cfg: NodeConfig, primary: FoundPrimary, timeout: float) -> bool:
    """Run pg_rewind against the primary; True when the data directory now follows it.

    A target that was not shut down cleanly is first recovered by pg_rewind itself
    (single-user mode).  The instance must be stopped.
    """
    source = cfg.remote_dsn(primary.host, primary.port, user=cfg.rewind_user or cfg.replication_user)
    try:
        proc = run_as(cfg, [cfg.tool("pg_rewind"), "--target-pgdata", str(cfg.pgdata),
                            "--source-server", source, "--progress"], timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("pg_rewind from %s did not finish in %.0f s and was ended", primary.node, timeout)
        return False
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        log.warning("pg_rewind from %s failed (%s): %s", primary.node, proc.returncode, output[-2000:])
        return False
    log.info("pg_rewind from %s: %s", primary.node, output.splitlines()[-1] if output else "done")
    return True
