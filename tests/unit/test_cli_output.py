"""The command line's rough edges, without servers: help texts, error lines, JSON for
every outcome, quiet logging, whole table names when not on a terminal."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from pgbaton.cli import main as cli
from pgbaton.cli.output import (
    ThrottleProgress,
    _Console,
    command_path,
    is_long_running,
    setup_logging,
    stderr_level,
    wants_json,
)


@pytest.fixture(autouse=True)
def _fresh_state() -> None:
    cli.state.json = False
    cli.state.debug = False
    cli.state.verbose = False
    cli.state._config = None


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli.main(list(args))
    captured = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


@pytest.mark.parametrize("command", [["replica", "init"], ["replica", "start"], ["migrate", "run"]])
def test_help_keeps_default_brackets(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert " ." not in out, out
    assert "[default: " in out


def test_help_of_every_command_has_no_dangling_period(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    def walk(cmd: object, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        subs = getattr(cmd, "commands", None)
        if subs is None:
            return [path]
        return [path] + [p for name, sub in subs.items() for p in walk(sub, (*path, name))]

    paths = walk(typer.main.get_command(cli.app), ())
    assert ("migrate", "switchover") in paths and ("ha", "install-agent") in paths
    for path in paths:
        code, out, _ = run(capsys, *path, "--help")
        assert code == 0, path
        assert not re.search(r" \.(\s|$)", out), (path, out)     # "Progress bar ." ("./x" is fine)


def test_error_line_is_not_wrapped(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / ("a-rather-long-folder-name-" * 4) / "pgbaton.yaml"
    code, out, err = run(capsys, "-c", str(missing), "status")
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) > 120, err
    assert lines[0].startswith("error: configuration file ") and str(missing) in lines[0]


def test_error_with_brackets_is_printed_as_is(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "pgbaton.yaml"
    bad.write_text("target: [not, a, mapping\n")
    code, _, err = run(capsys, "-c", str(bad), "status")
    assert code == 1 and "[" in err          # rich markup did not eat the YAML excerpt


def test_json_for_a_failure(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "-c", str(tmp_path / "none.yaml"), "status", "--json")
    assert code == 1 and err == ""
    doc = json.loads(out)
    assert doc["ok"] is False and doc["type"] == "ConfigError" and "not found" in doc["error"]


def test_json_for_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "status", "--no-such-option", "--json")
    assert code == 2
    assert json.loads(out)["type"] == "NoSuchOption"


@pytest.mark.parametrize("command", [
    ["catalog", "version"], ["catalog", "upgrade"], ["source", "add", "x"], ["source", "list"],
    ["source", "drop", "x", "--yes"], ["replica", "init", "-s", "x"], ["replica", "stop", "-s", "x"],
    ["replica", "verify", "-s", "x"], ["replica", "sync-tables", "-s", "x", "--tables", "t"],
    ["replica", "disable-tables", "-s", "x", "--tables", "t"], ["replica", "enable-tables", "-s", "x", "--tables", "t"],
    ["replica", "detach", "-s", "x", "--yes"], ["maintenance"], ["errors"], ["metrics", "show"],
    ["migrate", "status", "m"],
])
def test_json_for_every_command_that_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           command: list[str]) -> None:
    cfg = tmp_path / "pgbaton.yaml"
    cfg.write_text("target: {host: 127.0.0.1, port: 1, connect_timeout: 1}\n"
                   "sources: {y: {type: mariadb, port: 1, databases: {d: app}, server_id: 9}}\n")
    code, out, err = run(capsys, "-c", str(cfg), *command, "--json")
    assert code == 1, (out, err)
    doc = json.loads(out)
    assert doc["ok"] is False and doc["error"], doc


def test_quiet_by_default_verbose_for_info(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "pgbaton.yaml"
    cfg.write_text("target: {port: 1, connect_timeout: 1}\nlog_level: info\n")
    run(capsys, "-c", str(cfg), "source", "list")
    assert logging.getLogger().level == logging.WARNING
    logging.getLogger("pgbaton.test").info("an info line")
    assert "an info line" not in capsys.readouterr().err
    run(capsys, "--verbose", "-c", str(cfg), "source", "list")
    assert logging.getLogger().level == logging.INFO
    logging.getLogger("pgbaton.test").info("an info line")
    assert "an info line" in capsys.readouterr().err
    setup_logging()


def test_stderr_level() -> None:
    assert stderr_level(False, False) == logging.WARNING
    assert stderr_level(False, False, "info") == logging.WARNING
    assert stderr_level(False, False, "error") == logging.ERROR
    assert stderr_level(False, True, "error") == logging.INFO
    assert stderr_level(True, False) == logging.DEBUG
    # a long-running foreground process: its log is its output, at the configured level
    assert stderr_level(False, False, None, long_running=True) == logging.INFO
    assert stderr_level(False, False, "warning", long_running=True) == logging.WARNING


def test_long_running_commands() -> None:
    assert command_path(["-c", "f.yaml", "replica", "start", "-s", "x"]) == ("replica", "start")
    assert command_path(["--config", "replica", "status"]) == ("status",)
    assert is_long_running(["-c", "f", "replica", "start", "-s", "x"])
    assert is_long_running(["migrate", "run", "m"])
    assert is_long_running(["migrate", "start", "m", "--follow"])
    assert not is_long_running(["migrate", "start", "m"])
    assert is_long_running(["serve"]) and is_long_running(["metrics", "serve"])
    assert not is_long_running(["-c", "serve", "status"])
    assert not is_long_running(["replica", "init", "-s", "start"])
    # in the background or one pass: one-shot commands for the one who typed them, quiet
    assert not is_long_running(["replica", "start", "-s", "x", "--daemon"])
    assert not is_long_running(["migrate", "run", "m", "-d"])
    assert not is_long_running(["migrate", "run", "m", "--once"])


def test_progress_lines_throttled() -> None:
    f = ThrottleProgress(seconds=60)

    def rec(name: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.INFO, __file__, 1, "copy: ...", (), None)

    assert f.filter(rec("pgbaton.replica.progress"))
    assert not f.filter(rec("pgbaton.replica.progress"))     # a second table a moment later: dropped
    assert f.filter(rec("pgbaton.replica.init"))             # other loggers untouched


def test_wants_json() -> None:
    assert wants_json(["status", "--json"])
    assert not wants_json(["status"])
    assert not wants_json(["x", "--", "--json"])


def test_status_table_keeps_whole_names_when_not_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    long_name = "sakila.eval_cascade_children_with_a_long_name_" + "x" * 40
    rows = [{"source": "shop", "state": "running", "running": True, "read_lag_s": 0.0, "replay_lag_s": 0.012,
             "pending_events": 0, "rows_replayed": 123456, "tables_replicated": 1, "errors": 0,
             "read_position": "binlog.000001:1234", "source_head": "binlog.000001:1234", "read_lag_bytes": 0,
             "last_event_at": "2026-12-02T04:00:00+00:00"}]
    tables = [{"source_table": long_name, "target_table": "sakila." + long_name.split(".")[1], "state": "replicating",
               "rows_copied": 10, "last_error": "a [bracketed] reason"}]
    console = _Console()
    for part in cli.status_report(rows, "shop", tables):
        console.print(part)
    out = capsys.readouterr().out
    assert long_name in out and "…" not in out
    assert "a [bracketed] reason" in out
    assert "123,456" in out


def test_json_never_prompts(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "pgbaton.yaml"
    cfg.write_text("target: {port: 1, connect_timeout: 1}\n"
                   "sources: {y: {type: mariadb, port: 1, databases: {d: app}, server_id: 9}}\n")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    code, out, _ = run(capsys, "-c", str(cfg), "source", "drop", "y", "--json")
    assert code == 1
    doc = json.loads(out)
    assert "--yes" in doc["error"] and "Remove source y" in doc["error"]


def test_one_shot_warnings_are_short_lines(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(short=True)
    logging.getLogger("pgbaton.replica.init").warning("shop.audit_log: no primary key")
    assert capsys.readouterr().err == "warning: shop.audit_log: no primary key\n"
    setup_logging()
    logging.getLogger("pgbaton.replica.init").warning("x")
    assert " WARNING pgbaton.replica.init: x" in capsys.readouterr().err


def test_migrate_wait_progress_line() -> None:
    from pgbaton.cli.migrate import progress_line
    from pgbaton.migrate.model import DbState, DbStatus

    rows = [DbStatus("billing", DbState.copying, 1, 3, 4096, None),
            DbStatus("crm", DbState.streaming, 2, 2, 0, 0.0)]
    assert progress_line(rows) == "billing copying 1/3 lag 4,096 B, crm streaming 2/2"


def test_json_confirmation_refused_even_on_a_terminal(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "pgbaton.yaml"
    cfg.write_text("migrations: {m: {source: {port: 1}, target: {port: 2}, databases: [a]}}\n")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    for command in ("finish", "abort"):
        code, out, _ = run(capsys, "-c", str(cfg), "migrate", command, "m", "--json")
        assert code == 1
        doc = json.loads(out)
        assert doc["ok"] is False and "Rerun with --yes to confirm (--json does not ask)" in doc["error"], doc
