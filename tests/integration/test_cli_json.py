"""Every command that takes --json prints one JSON document on stdout for every outcome, run
as a user's script runs it: a separate `pgbaton` process, stdin not a terminal.

Failure situations: a bad configuration file, names the configuration does not have, servers
that are down (nothing listens on the port), a real PostgreSQL without the database named.
Commands that would ask for confirmation refuse with a JSON error naming --yes instead of
waiting for an answer.  The configured passwords never appear in what a command prints.
The command list is read from the CLI itself, so a new command is covered when it is added.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import typer

from pgbaton.cli.main import app
from pgbaton.sandbox.servers import PostgresServer, _pid_alive, free_port

SECRET = "s3cr3t-pw-XYZ"
CONFIRMING = {("catalog", "drop"), ("source", "drop"), ("replica", "detach"), ("migrate", "finish"),
              ("migrate", "abort")}
# runs in the foreground until stopped, retrying a server that is down: tested apart (`migrate run`
# is run with --once)
UNTIL_STOPPED = {("replica", "start")}


def json_commands() -> list[tuple[tuple[str, ...], list[str]]]:
    """(command words, the names of its required parameters) of every command with --json."""
    found: list[tuple[tuple[str, ...], list[str]]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))
        elif any("--json" in getattr(p, "opts", ()) for p in cmd.params):
            found.append((path, [str(p.name) for p in cmd.params if p.required]))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = json_commands()


def command_line(path: tuple[str, ...], required: list[str], source: str, migration: str) -> list[str]:
    args = list(path)
    for name in required:
        if name == "name":
            args.append(migration if path[0] == "migrate" else source)
        elif name == "source":
            args += ["--source", source]
        elif name == "tables":
            args += ["--tables", "orders"]
        else:
            raise AssertionError(f"{' '.join(path)}: no test value for required parameter {name}")
    if path in CONFIRMING:
        args.append("--yes")
    if path == ("migrate", "run"):
        args.append("--once")
    return [*args, "--json"]


def pgbaton(cfg: Path, args: list[str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgbaton", "-c", str(cfg), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env={**os.environ, "PGBATON_TEST_PW": SECRET})


def assert_json_failure(proc: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"{what}: stdout is not one JSON document:\n{proc.stdout}\n{proc.stderr}") from None
    assert proc.returncode == 1, (what, proc.returncode, proc.stdout, proc.stderr)
    assert isinstance(doc, dict) and doc["ok"] is False and doc["error"] and doc["type"], (what, doc)
    assert SECRET not in proc.stdout + proc.stderr, what
    return doc


def run_all(cfg: Path, lines: list[list[str]]) -> list[subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda args: pgbaton(cfg, args), lines))


def down_config(tmp_path: Path, target_port: int, target_db: str = "postgres") -> Path:
    """A valid configuration whose servers do not listen (or whose database does not exist)."""
    cfg = tmp_path / "pgbaton.yaml"
    cfg.write_text(f"""
target: {{host: 127.0.0.1, port: {target_port}, dbname: {target_db}, connect_timeout: 2, password: {SECRET}}}
sources:
  shop: {{type: mariadb, port: {free_port()}, databases: {{shop: shop}}, server_id: 9, password: {SECRET}}}
migrations:
  m:
    source: {{host: 127.0.0.1, port: {target_port}, connect_timeout: 2, password_env: PGBATON_TEST_PW}}
    target: {{host: 127.0.0.1, port: {free_port()}, connect_timeout: 2, password: {SECRET}}}
    databases: [no_such_db]
    switch: {{method: pgbouncer, port: {free_port()}, ini_file: {tmp_path}/pgbouncer.ini, password: {SECRET}}}
""")
    return cfg


def test_every_json_command_is_listed() -> None:
    paths = {p for p, _ in COMMANDS}
    assert {("status",), ("migrate", "stop"), ("migrate", "run"), ("replica", "start"), ("metrics", "show"),
            ("migrate", "finish"), ("migrate", "abort")} <= paths
    assert len(paths) >= 28


# the configuration is read the same way by every command: a sample of each module and kind
SAMPLE = [("status",), ("catalog", "drop"), ("replica", "start"), ("replica", "verify"), ("metrics", "show"),
          ("migrate", "run"), ("migrate", "finish"), ("migrate", "switchover")]


def test_bad_or_missing_configuration(tmp_path: Path) -> None:
    cfg = tmp_path / "pgbaton.yaml"
    cfg.write_text(f"target: {{port: notaport, password: {SECRET}, no_such_key: 1}}\n")
    lines = [command_line(p, r, "shop", "m") for p, r in COMMANDS if p in SAMPLE]
    assert len(lines) == len(SAMPLE)
    for args, proc in zip(lines, run_all(cfg, lines), strict=True):
        doc = assert_json_failure(proc, " ".join(args))
        assert doc["type"] == "ConfigError" and "target.no_such_key: unknown key" in doc["error"], doc
        assert "target.port" in doc["error"], doc
    for args, proc in zip(lines, run_all(tmp_path / "none.yaml", lines), strict=True):
        doc = assert_json_failure(proc, " ".join(args))
        assert doc["type"] == "ConfigError" and "not found" in doc["error"], doc


def test_names_not_in_the_configuration(tmp_path: Path) -> None:
    cfg = down_config(tmp_path, free_port())
    named = [(p, r) for p, r in COMMANDS if r]
    lines = [command_line(p, r, "nosuch", "nosuch") for p, r in named]
    for args, proc in zip(lines, run_all(cfg, lines), strict=True):
        doc = assert_json_failure(proc, " ".join(args))
        assert "'nosuch' is not in the configuration" in doc["error"], (args, doc)


def test_servers_down(tmp_path: Path) -> None:
    cfg = down_config(tmp_path, free_port())
    lines = [command_line(p, r, "shop", "m") for p, r in COMMANDS
             if p != ("migrate", "stop") and p not in UNTIL_STOPPED]
    for args, proc in zip(lines, run_all(cfg, lines), strict=True):
        doc = assert_json_failure(proc, " ".join(args))
        assert "127.0.0.1" in doc["error"] or "connect" in doc["error"], (args, doc)
    # nothing to stop is no failure, and still JSON
    proc = pgbaton(cfg, ["migrate", "stop", "m", "--pid-file", str(tmp_path / "none.pid"), "--json"])
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"] is True


def test_database_missing_on_a_real_server(tmp_path: Path, pg15: PostgresServer) -> None:
    cfg = down_config(tmp_path, pg15.port, target_db="no_such_db")
    touching = [("status",), ("source", "add"), ("migrate", "check"), ("migrate", "start"), ("metrics", "show")]
    lines = [command_line(p, r, "shop", "m") for p, r in COMMANDS if p in touching]
    assert len(lines) == len(touching)
    for args, proc in zip(lines, run_all(cfg, lines), strict=True):
        doc = assert_json_failure(proc, " ".join(args))
        assert "no_such_db" in doc["error"] or "127.0.0.1" in doc["error"], (args, doc)


def test_confirmation_with_json_refuses_instead_of_asking(tmp_path: Path) -> None:
    cfg = down_config(tmp_path, free_port())
    for path, required in COMMANDS:
        if path not in CONFIRMING:
            continue
        args = [a for a in command_line(path, required, "shop", "m") if a != "--yes"]
        # stdin an open pipe nobody writes to: a prompt would wait until the timeout
        proc = subprocess.run([sys.executable, "-m", "pgbaton", "-c", str(cfg), *args], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.PIPE)
        doc = assert_json_failure(proc, " ".join(args))
        assert "Rerun with --yes" in doc["error"], doc
    # without --json and without a terminal: one error line, no prompt
    proc = subprocess.run([sys.executable, "-m", "pgbaton", "-c", str(cfg), "migrate", "finish", "m"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.PIPE)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Rerun with --yes to confirm (no terminal to ask on)" in proc.stderr


@pytest.fixture
def daemon_pids() -> Iterator[list[int]]:
    """PIDs of the daemons a test started: stopped at the end if still there."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _pid_alive(pid):
            os.kill(pid, signal.SIGTERM)


def test_daemons_and_foreground_runs_print_json(tmp_path: Path, daemon_pids: list[int]) -> None:
    cfg = down_config(tmp_path, free_port())
    pid_file = tmp_path / "run.pid"
    # `migrate run --daemon`: returns at once with the daemon's pid (it retries the servers in the background)
    proc = pgbaton(cfg, ["migrate", "run", "m", "--daemon", "--pid-file", str(pid_file), "--json"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    daemon_pids.append(doc["pid"])
    assert doc["ok"] is True and doc["daemon"] is True and doc["pid_file"] == str(pid_file)
    assert _pid_alive(doc["pid"]) and proc.stderr == ""       # one-shot for its caller: quiet
    again = pgbaton(cfg, ["migrate", "run", "m", "--daemon", "--pid-file", str(pid_file), "--json"])
    assert_json_failure(again, "second migrate run --daemon")
    assert "already running" in json.loads(again.stdout)["error"]
    stop = pgbaton(cfg, ["migrate", "stop", "m", "--pid-file", str(pid_file), "--json"])
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert json.loads(stop.stdout) == {"ok": True, "migration": "m",
                                       "message": f"migration m run stopped (pid {doc['pid']})"}
    assert not _pid_alive(doc["pid"])

    # `replica start` in the foreground: logs on stderr while it retries, one document when stopped
    fg = subprocess.Popen([sys.executable, "-m", "pgbaton", "-c", str(cfg), "replica", "start", "-s", "shop",
                           "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL)
    daemon_pids.append(fg.pid)
    time.sleep(3)
    fg.send_signal(signal.SIGTERM)
    stdout, stderr = fg.communicate(timeout=60)
    assert json.loads(stdout) == {"ok": True, "source": "shop", "daemon": False, "stopped": True, "from": None}
    assert "cannot connect to the target" in stderr and SECRET not in stdout + stderr


def test_interrupted_while_a_server_does_not_answer(tmp_path: Path) -> None:
    # a server that takes the connection and never answers (a black hole): Ctrl-C ends the wait
    import socket

    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        cfg = tmp_path / "pgbaton.yaml"
        cfg.write_text(f"target: {{host: 127.0.0.1, port: {hole.getsockname()[1]}, connect_timeout: 60}}\n"
                       "sources: {shop: {type: mariadb, port: 1, databases: {shop: shop}}}\n")
        proc = subprocess.Popen([sys.executable, "-m", "pgbaton", "-c", str(cfg), "status", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        hole.settimeout(60)
        conn, _ = hole.accept()             # pgbaton waits for the server's answer now
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        conn.close()
    assert proc.returncode == 130, (stdout, stderr)
    assert json.loads(stdout) == {"ok": False, "error": "interrupted", "type": "KeyboardInterrupt"}


def test_serve_never_logs_its_token(tmp_path: Path, daemon_pids: list[int]) -> None:
    # with --debug every request is logged: the token a client passes as ?token= is not
    import urllib.request

    token = "tok-" + SECRET
    cfg = down_config(tmp_path, free_port())
    (tmp_path / "token").write_text(token + "\n")
    cfg.write_text(cfg.read_text() + f"observe: {{token_file: {tmp_path}/token, sample_seconds: 60}}\n")
    serve = subprocess.Popen([sys.executable, "-m", "pgbaton", "--debug", "-c", str(cfg), "serve", "--port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    daemon_pids.append(serve.pid)
    assert serve.stdout is not None
    line = serve.stdout.readline()
    url = line.split("status page", 1)[1].split()[0]
    with urllib.request.urlopen(f"{url}healthz?token={token}", timeout=30) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"{url}metrics?a=1&token={token}", timeout=60) as resp:
        assert b"pgbaton_" in resp.read()
    serve.send_signal(signal.SIGTERM)
    stdout, stderr = serve.communicate(timeout=60)
    assert "GET /metrics?a=1&token=***" in stderr, stderr[-3000:]
    assert token not in line + stdout + stderr and SECRET not in stderr
