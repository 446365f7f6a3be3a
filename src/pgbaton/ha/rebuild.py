"""Rebuild a standby from the primary: slot first, then pg_basebackup with that slot.

It runs as a detached worker process (``python -m pgbaton.ha.rebuild STATEFILE``) so the
agent's start and monitor actions return quickly while a large copy goes on; its progress
is in ``rebuild_state``.  The old data directory is kept aside, the last one only.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from pgbaton.ha import decide, instance, rebuild_state
from pgbaton.ha.config import NodeConfig
from pgbaton.ha.model import SyncMode
from pgbaton.ha.proc import forward_sigterm
from pgbaton.ha.sync import create_slot_remote

if TYPE_CHECKING:
    import psycopg
else:
    from pgbaton.ha import lazy_psycopg as psycopg

log = logging.getLogger(__name__)

ASIDE_SUFFIX = ".pgbaton-old"


def spawn(cfg: NodeConfig, host: str, port: int) -> int:
    """Start the worker in its own session; returns its PID."""
    job = cfg.statedir / "rebuild-job.json"
    cfg.statedir.mkdir(mode=0o700, parents=True, exist_ok=True)
    spec = {k: (str(v) if isinstance(v, (Path, SyncMode)) else v) for k, v in asdict(cfg).items()}
    spec["mode"] = cfg.mode.value
    job.write_text(json.dumps({"cfg": spec, "host": host, "port": port}), encoding="utf-8")
    log_path = cfg.statedir / "rebuild.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pgbaton.ha.rebuild", str(job)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    rebuild_state.write(cfg, status="running", pid=proc.pid, source=f"{host}:{port}", started=time.time())
    log.info("rebuild worker %s started from %s:%s (log %s)", proc.pid, host, port, log_path)
    return proc.pid


def _load(job: Path) -> tuple[NodeConfig, str, int]:
    data = json.loads(job.read_text(encoding="utf-8"))
    spec = dict(data["cfg"])
    for key in ("pgdata", "bindir", "socketdir"):
        spec[key] = Path(spec[key])
    spec["mode"] = SyncMode(spec["mode"])
    spec["nodes"] = {k: (v[0], int(v[1])) for k, v in spec["nodes"].items()}
    return NodeConfig(**spec), str(data["host"]), int(data["port"])


def _copy_mark(cfg: NodeConfig) -> Path:
    """Present while PGDATA holds what a rebuild copied and has not finished."""
    return cfg.statedir / "rebuild-in-pgdata"


def set_aside(cfg: NodeConfig) -> Path | None:
    """Move a non-empty data directory out of the way (replacing an older copy set aside).

    What an unfinished rebuild left in PGDATA is deleted instead: the copy set aside before
    it (a diverged data directory, say) is the one worth keeping.
    """
    mark = _copy_mark(cfg)
    if not cfg.pgdata.exists():
        mark.unlink(missing_ok=True)
        return None
    if mark.exists():
        log.info("removing what an unfinished rebuild left in %s (the copy set aside stays)", cfg.pgdata)
        shutil.rmtree(cfg.pgdata)
        mark.unlink()
        return None
    if not any(cfg.pgdata.iterdir()):
        cfg.pgdata.rmdir()
        return None
    aside = cfg.pgdata.with_name(cfg.pgdata.name + ASIDE_SUFFIX)
    if aside.exists():
        shutil.rmtree(aside)
    cfg.pgdata.rename(aside)
    log.info("old data directory kept as %s", aside)
    return aside


def check_space(cfg: NodeConfig, host: str, port: int) -> None:
    """Refuse a copy the local file system cannot hold (databases and WAL of the primary)."""
    try:
        with psycopg.connect(cfg.remote_dsn(host, port), autocommit=True) as conn:
            row = conn.execute("SELECT (SELECT sum(pg_database_size(oid)) FROM pg_database)::bigint,"
                               " (SELECT coalesce(sum(size), 0) FROM pg_ls_waldir())::bigint").fetchone()
    except psycopg.Error as exc:
        # e.g. a replication user without pg_monitor: pg_basebackup itself fails if the disk fills
        log.warning("could not measure the primary's size, copying without a space check: %s", str(exc).strip())
        return
    needed = int(row[0] or 0) + int(row[1] or 0) if row else 0
    free = shutil.disk_usage(cfg.pgdata.parent).free
    if not decide.enough_space(needed, free):
        raise instance.InstanceError(f"not enough free space for the copy in {cfg.pgdata.parent}: "
                                     f"about {needed // 2**20} MiB needed, {free // 2**20} MiB free")
    log.info("free space: %s MiB for a copy of about %s MiB", free // 2**20, needed // 2**20)


def run(cfg: NodeConfig, host: str, port: int) -> None:
    """The whole rebuild, in the foreground; raises on failure."""
    slot = cfg.slot_of(cfg.node)
    create_slot_remote(cfg.remote_dsn(host, port, replication=True), slot)
    set_aside(cfg)
    cfg.pgdata.parent.mkdir(parents=True, exist_ok=True)
    check_space(cfg, host, port)
    cfg.statedir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _copy_mark(cfg).touch()
    source = cfg.remote_dsn(host, port)
    proc = instance.run_as(cfg, [cfg.tool("pg_basebackup"), "--pgdata", str(cfg.pgdata), "--dbname", source,
                                 "--wal-method=stream", "--slot", slot, "--checkpoint=fast", "--no-password",
                                 *shlex.split(cfg.basebackup_options)],
                           timeout=cfg.basebackup_timeout)
    if proc.returncode != 0:
        raise instance.InstanceError(f"pg_basebackup failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")
    instance.configure_standby(cfg)
    _copy_mark(cfg).unlink()        # a complete copy from here on: a later rebuild sets it aside
    instance.start(cfg, timeout=120)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg, host, port = _load(Path(argv[0]))
    forward_sigterm()       # the agent's stop TERMs this worker: pg_basebackup must end with it
    started = time.time()
    try:
        run(cfg, host, port)
    except Exception as exc:  # the worker reports every failure through its state file
        log.error("rebuild failed: %s", exc)
        rebuild_state.write(cfg, status="failed", pid=os.getpid(), error=str(exc)[-500:], started=started)
        return 1
    rebuild_state.write(cfg, status="done", pid=os.getpid(), started=started, finished=time.time())
    log.info("rebuild done in %.1f s", time.time() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
