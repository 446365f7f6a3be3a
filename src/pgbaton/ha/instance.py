"""Acting on the local PostgreSQL instance: pg_ctl, configuration files, one observation."""

from __future__ import annotations

import logging
import os
import pwd
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pgbaton.errors import PgbatonError
from pgbaton.ha import rebuild_state
from pgbaton.ha.config import NodeConfig
from pgbaton.ha.controldata import read_controldata
from pgbaton.ha.model import DataDir, LocalState
from pgbaton.ha.proc import run as run_in_group

if TYPE_CHECKING:
    import psycopg
else:
    from pgbaton.ha import lazy_psycopg as psycopg

log = logging.getLogger(__name__)

AUTO_CONF = "postgresql.auto.conf"
STANDBY_SIGNAL = "standby.signal"
MANAGED_KEYS = ("primary_conninfo", "primary_slot_name", "recovery_target_timeline")


class InstanceError(PgbatonError):
    """The local PostgreSQL instance could not be started, stopped or changed."""


def run_as(cfg: NodeConfig, cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool as the system user (never as root), capturing its output.

    The tool runs in a process group of its own: on timeout the group is ended (not only
    ``runuser``) and ``subprocess.TimeoutExpired`` is raised.
    """
    if os.geteuid() == 0 and cfg.system_user != "root":
        cmd = ["runuser", "-u", cfg.system_user, "--", *cmd]
    log.debug("running %s", shlex.join(cmd))
    return run_in_group(cmd, timeout=timeout, env={**os.environ, "LC_ALL": "C", "LANG": "C"})


def chown_to_system_user(cfg: NodeConfig, path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam(cfg.system_user)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def datadir_state(cfg: NodeConfig) -> DataDir:
    if not cfg.pgdata.is_dir() or not any(cfg.pgdata.iterdir()):
        return DataDir.EMPTY
    if (cfg.pgdata / "PG_VERSION").is_file() and (cfg.pgdata / "global" / "pg_control").is_file():
        return DataDir.USABLE
    return DataDir.BROKEN


def postmaster_pid(cfg: NodeConfig) -> int | None:
    """PID of a live (not zombie) postmaster of this data directory."""
    try:
        pid = int((cfg.pgdata / "postmaster.pid").read_text().split()[0])
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if state != "Z" and b"postgres" in cmdline else None


def _processes_in(path: Path) -> list[int]:
    """Live (not zombie) processes whose working directory is ``path``: PostgreSQL's run in PGDATA.

    Compared by device and inode, not by name, so processes of other mount namespaces
    that see another directory under the same path do not count.
    """
    target = os.stat(path)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.stat(entry / "cwd")
            if (cwd.st_dev, cwd.st_ino) != (target.st_dev, target.st_ino):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


def clear_stale_lock(cfg: NodeConfig, wait: float = 15) -> None:
    """After a crash: wait for orphaned backends to exit, then drop a postmaster.pid nobody holds.

    A killed postmaster can linger as a zombie for a while; PostgreSQL (and pg_rewind's
    single-user recovery) would take its PID in the lock file for a live server.
    """
    lock = cfg.pgdata / "postmaster.pid"
    if not lock.exists() or postmaster_pid(cfg) is not None:
        return
    deadline = time.monotonic() + wait
    while (left := _processes_in(cfg.pgdata)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        raise InstanceError(f"processes {left} still run in {cfg.pgdata} after the postmaster died")
    _clear_socket_lock(cfg)
    lock.unlink(missing_ok=True)
    log.info("removed the stale postmaster.pid of a dead postmaster")


def _lock_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _clear_socket_lock(cfg: NodeConfig) -> None:
    """Remove the socket's lock file a dead postmaster left, also while its PID is a zombie.

    PostgreSQL removes a stale socket lock file itself when its PID is gone, but a zombie
    PID still exists: the server then refuses to start ("lock file ... already exists")
    until something reaps the zombie, which can take seconds.
    """
    lock = cfg.socketdir / f".s.PGSQL.{cfg.port}.lock"
    pid = _lock_pid(lock)
    if pid is None or _live(pid):
        return
    lock.unlink(missing_ok=True)
    log.info("removed the socket lock file of the dead postmaster %s", pid)


def _live(pid: int) -> bool:
    """A process that runs (not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def observe(cfg: NodeConfig) -> LocalState:
    """One look at the local instance, from files and processes only (fast, no SQL)."""
    pid = postmaster_pid(cfg)
    data = datadir_state(cfg)
    return LocalState(
        datadir=data,
        running=pid is not None,
        in_recovery=(cfg.pgdata / STANDBY_SIGNAL).exists() if pid is not None else None,
        control=read_controldata(cfg) if data is DataDir.USABLE else None,
        rebuild=rebuild_state.status(cfg),
    )


def starting_up(cfg: NodeConfig) -> bool:
    """Whether the postmaster says "starting" in its lock file: it takes no connection yet."""
    try:
        lines = (cfg.pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "starting"


# a replay before consistency whose startup process reads nothing more for this long is stuck
REPLAY_STALL_SECONDS = 300.0


def _startup_title(postmaster: int) -> str | None:
    """What the postmaster's startup process shows: its title and how much it has read so far."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) != postmaster:
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue
        if title.startswith("postgres: ") and "startup" in title:
            try:
                read = next(line.split()[1] for line in (entry / "io").read_text().splitlines()
                            if line.startswith("rchar:"))
            except (OSError, StopIteration, IndexError):
                read = "?"
            return f"{title.split('startup', 1)[1].strip() or 'startup'}, {read} bytes read"
    return None


def replay_before_consistency(cfg: NodeConfig) -> str | None:
    """What the startup process does while the server replays WAL before it is consistent, or None.

    The postmaster says "starting" in its lock file until a standby is consistent and takes
    connections.  A startup process that read nothing more for ``REPLAY_STALL_SECONDS``
    counts as stuck (None).
    """
    pid = postmaster_pid(cfg)
    if pid is None:
        return None
    try:
        lines = (cfg.pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 8 or lines[7].strip() != "starting":
        return None
    title = _startup_title(pid)
    if title is None:
        return None
    mark = cfg.statedir / "replay-progress"
    now = time.time()
    try:
        seen, since = mark.read_text().rsplit("\t", 1)
        since_t = float(since)
    except (OSError, ValueError):
        seen, since_t = "", now
    if seen != title:
        cfg.statedir.mkdir(mode=0o700, parents=True, exist_ok=True)
        mark.write_text(f"{title}\t{now}")
        since_t = now
    if now - since_t > REPLAY_STALL_SECONDS:
        log.warning("replay made no progress for %.0f s (%s): stuck", now - since_t, title)
        return None
    return title


def server_settings(cfg: NodeConfig, names: tuple[str, ...]) -> dict[str, str | None]:
    """Settings as the server would start with them (``postgres -C``): None when unreadable."""
    out: dict[str, str | None] = {}
    extra = ["-c", f"config_file={cfg.config_file}"] if cfg.config_file else []
    for name in names:
        try:
            proc = run_as(cfg, [cfg.tool("postgres"), "-D", str(cfg.pgdata), *extra, "-C", name], timeout=30)
        except subprocess.TimeoutExpired:
            out[name] = None
            continue
        text = proc.stdout.strip()
        out[name] = text.splitlines()[-1].strip() if proc.returncode == 0 and text else None
        if out[name] is None:
            log.warning("postgres -C %s failed: %s", name, (proc.stderr or proc.stdout).strip()[-300:])
    return out


def _quote_conf(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def set_auto_conf(cfg: NodeConfig, settings: dict[str, str | None]) -> None:
    """Rewrite keys in postgresql.auto.conf of a stopped instance (None removes the key)."""
    path = cfg.pgdata / AUTO_CONF
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    keys = re.compile(r"^\s*(" + "|".join(re.escape(k) for k in settings) + r")\s*=")
    kept = [line for line in lines if not keys.match(line)]
    kept += [f"{k} = {_quote_conf(v)}" for k, v in settings.items() if v is not None]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    chown_to_system_user(cfg, path)


def configure_standby(cfg: NodeConfig, primary: tuple[str, int] | None = None) -> None:
    """Make the stopped instance start as a standby of the primary (or of whichever peer is primary)."""
    set_auto_conf(cfg, {
        "primary_conninfo": cfg.primary_conninfo(primary),
        "primary_slot_name": cfg.slot_of(cfg.node),
        "recovery_target_timeline": "latest",
    })
    signal = cfg.pgdata / STANDBY_SIGNAL
    signal.touch()
    chown_to_system_user(cfg, signal)


def _server_options(cfg: NodeConfig) -> str:
    opts = [f"-p {cfg.port}", f"-k {shlex.quote(str(cfg.socketdir))}"]
    if cfg.config_file:
        opts.append(f"-c config_file={shlex.quote(cfg.config_file)}")
    if cfg.start_options:
        opts.append(cfg.start_options)
    return " ".join(opts)


def start(cfg: NodeConfig, timeout: float = 60, wait: bool = True) -> None:
    """pg_ctl start, waiting until the server accepts connections (or the timeout).

    With ``wait=False`` it returns as soon as the postmaster runs (recovery goes on).
    """
    logfile = cfg.server_log
    if not logfile.exists():
        logfile.touch()
        chown_to_system_user(cfg, logfile)
    deadline = time.monotonic() + timeout
    for attempt in (1, 2, 3):
        size = logfile.stat().st_size if logfile.exists() else 0
        left = max(deadline - time.monotonic(), 1.0)
        how = ["-w", "-t", str(max(int(left), 1))] if wait else ["-W"]
        proc = run_as(cfg, [cfg.tool("pg_ctl"), "-D", str(cfg.pgdata), "-l", str(logfile), "-o",
                            _server_options(cfg), *how, "start"], timeout=left + 10)
        if not wait and proc.returncode == 0:
            # the postmaster runs, or it has already given up (its last words in the log)
            until = time.monotonic() + min(5.0, left)
            while postmaster_pid(cfg) is None and time.monotonic() < until:
                if "database system is shut down" in _log_since(logfile, size):
                    break
                time.sleep(0.05)
        if (proc.returncode == 0 and wait) or postmaster_pid(cfg) is not None:
            log.info("PostgreSQL started in %s", cfg.pgdata)
            return
        tail = _log_since(logfile, size)
        # right after a crash, backends of the dead postmaster may still hold its shared
        # memory or lock file for a moment: wait for them and try again
        if attempt < 3 and any(m in tail for m in ("already in use", "lock file", "still in use")):
            log.warning("start: %s; retrying", tail.strip().splitlines()[-1] if tail.strip() else "busy")
            clear_stale_lock(cfg)
            _clear_socket_lock(cfg)
            time.sleep(1.0)
            continue
        break
    raise InstanceError(f"pg_ctl start failed: {(proc.stderr or proc.stdout).strip()} "
                        f"(server log: {tail.strip()[-600:] or 'empty'}; see {logfile})")


def _log_since(logfile: Path, offset: int) -> str:
    try:
        with open(logfile, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def stop(cfg: NodeConfig, timeout: float = 60) -> None:
    """Stop fast; if that does not finish in time, immediate; the postmaster is gone on return."""
    pid = postmaster_pid(cfg)
    if pid is None:
        return
    budget = max(timeout * 0.7, 1)
    for mode, wait in (("fast", budget), ("immediate", max(timeout - budget, 5))):
        try:
            run_as(cfg, [cfg.tool("pg_ctl"), "-D", str(cfg.pgdata), "-m", mode, "-w", "-t", str(int(wait)), "stop"],
                   timeout=wait + 10)
        except subprocess.TimeoutExpired:
            log.warning("pg_ctl stop -m %s did not return in time", mode)
        if _wait_gone(cfg, pid, 5):
            log.info("PostgreSQL stopped (%s) in %s", mode, cfg.pgdata)
            return
    raise InstanceError(f"postmaster {pid} of {cfg.pgdata} did not stop")


def _wait_gone(cfg: NodeConfig, pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while postmaster_pid(cfg) == pid:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def promote(cfg: NodeConfig, timeout: float = 60) -> None:
    """Promote the standby, then checkpoint so that pg_rewind against it sees the new timeline.

    Both steps are bounded by ``timeout``.  The checkpoint only helps a later pg_rewind: when
    it does not finish in time the promotion still counts (the server's own end-of-recovery
    checkpoint follows), and a warning says so.
    """
    deadline = time.monotonic() + timeout
    with psycopg.connect(cfg.local_dsn(), autocommit=True) as conn:
        # a promoted node starts asynchronous: the primary's monitor turns sync on when a standby streams
        conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
        conn.execute("SELECT pg_reload_conf()")
        row = conn.execute("SELECT pg_promote(true, %s)", (max(int(timeout * 0.8), 1),)).fetchone()
        if not row or not row[0]:
            raise InstanceError("pg_promote did not finish in time")
        left_ms = max(int((deadline - time.monotonic()) * 1000), 1000)
        conn.execute(f"SET statement_timeout = {left_ms:d}")
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.QueryCanceled:
            log.warning("promote: CHECKPOINT did not finish in %.1f s; promoted anyway (a pg_rewind from "
                        "this node may say no rewind is needed until its next checkpoint)", left_ms / 1000)
    log.info("PostgreSQL promoted in %s", cfg.pgdata)


