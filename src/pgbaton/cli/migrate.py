"""``pgbaton migrate ...``: PostgreSQL -> PostgreSQL migration of one or many databases."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from pgbaton.cli.context import JsonOpt, YesOpt, confirm, daemon_pid, state
from pgbaton.cli.output import err, print_json
from pgbaton.config import Config
from pgbaton.migrate.model import DbStatus

app = typer.Typer(no_args_is_help=True, help="PostgreSQL -> PostgreSQL migration by logical replication.")

NameArg = Annotated[str, typer.Argument(help="Migration name from the configuration (migrations: NAME).")]


def _config() -> Config:
    return state.config()


def _json(data: Any) -> None:
    print_json(data)


@app.command("check")
def check_cmd(name: NameArg, as_json: JsonOpt = False) -> None:
    """Preflight: a verdict per item; exit 1 when any item fails."""
    from pgbaton.errors import PgbatonError
    from pgbaton.migrate.catalog import Catalog
    from pgbaton.migrate.lifecycle import Command, admit
    from pgbaton.migrate.plan import may_start, preflight
    from pgbaton.migrate.probe import connect, preflight_facts

    cfg = _config().migration(name)
    with connect(cfg.target, "target") as t:
        admission = admit(Command.check, Catalog(t, cfg.options.catalog_schema, name).state(), name)
    if not admission.act:
        raise PgbatonError(admission.message)
    verdicts = preflight(preflight_facts(cfg, name), cfg.options.no_primary_key)
    ok = may_start(verdicts)
    if as_json:
        _json({"migration": name, "ok": ok, "verdicts": [v.as_dict() for v in verdicts]})
    else:
        for v in verdicts:
            where = f"{v.database}: " if v.database else ""
            typer.echo(f"{v.status.value.upper():4}  {where}{v.item}: {v.detail}")
        typer.echo(f"migration {name}: " + ("ready to start" if ok else "NOT ready: fix the FAIL items"))
    if not ok:
        raise typer.Exit(1)


@app.command("start")
def start_cmd(
    name: NameArg,
    wait: Annotated[bool, typer.Option(help="Wait until every table is synced and caught up.")] = False,
    follow: Annotated[bool, typer.Option(
        "--follow", help="Then keep the migration healthy until stopped, as `migrate run`.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy the schema and set up publication, slot and subscription per database (safe to rerun)."""
    from pgbaton.migrate.execute import start

    cfg = _config()
    res = start(cfg, name)
    if wait:
        _wait_with_progress(cfg, name, show=not as_json or state.verbose)
    keep = (f"keep `pgbaton migrate run {name}` running until `migrate finish {name}` (`--daemon` runs it in "
            "the background; `start --follow` in the foreground): it adds the tables that replicated DDL creates "
            "to the subscription (else their rows are not copied until a switch) and repairs the streams")
    if as_json:
        _json({"migration": name, "steps": res.steps, "next": None if follow else keep})
    else:
        for db, steps in res.steps.items():
            typer.echo(f"{db}: {', '.join(steps) if steps else 'already set up'}")
        if not follow:
            typer.echo(f"note: {keep}")
    if follow:
        _keep_running(cfg, name, 2.0)


def progress_line(rows: list[DbStatus]) -> str:
    """One line of ``migrate start --wait``'s progress: per database its state and tables synced."""
    return ", ".join(f"{r.database} {r.state.value} {r.tables_synced}/{r.tables_total}"
                     + (f" lag {r.lag_bytes:,} B" if r.lag_bytes else "") for r in rows)


def _wait_with_progress(cfg: Config, name: str, show: bool, every: float = 2.0) -> None:
    """``wait_synced``, with a progress line on stderr every ``every`` seconds when it changed."""
    import threading

    from pgbaton.errors import PgbatonError
    from pgbaton.migrate.status import status, wait_synced

    failure: list[BaseException] = []
    done = threading.Event()

    def waiter() -> None:
        try:
            wait_synced(cfg, name)
        except BaseException as exc:  # noqa: B036 - handed to the main thread, raised there
            failure.append(exc)
        finally:
            done.set()

    started = time.monotonic()
    timeout = cfg.migration(name).options.sync_timeout_seconds
    if show:
        err.print(f"migration {name}: waiting until every table is synced and caught up (at most {timeout:.0f} s)",
                  soft_wrap=True, highlight=False)
    threading.Thread(target=waiter, name=f"wait-synced-{name}", daemon=True).start()
    last = ""
    while not done.wait(every):
        if not show:
            continue
        try:
            line = progress_line(status(cfg, name))
        except PgbatonError as exc:
            line = f"status not readable: {exc}"
        if line != last:
            err.print(f"  {time.monotonic() - started:5.0f} s  {line}", soft_wrap=True, highlight=False,
                      markup=False)
            last = line
    if failure:
        raise failure[0]
    if show:
        err.print(f"migration {name}: every table synced and caught up after {time.monotonic() - started:.1f} s",
                  soft_wrap=True, highlight=False)


def _keep_running(cfg: Config, name: str, interval: float, pid_file: Path | None = None) -> None:
    import os
    import signal
    import threading

    from pgbaton.migrate.tend import run

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if pid_file is not None:
        pid_file.write_text(f"{os.getpid()}\n")
    try:
        run(cfg, name, stop, interval=interval)
    finally:
        if pid_file is not None and pid_file.exists() and pid_file.read_text().strip() == str(os.getpid()):
            pid_file.unlink()


@app.command("run")
def run_cmd(
    name: NameArg,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between two repair passes.")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    daemon: Annotated[bool, typer.Option("--daemon", "-d", help="Detach and run in the background.")] = False,
    pid_file: Annotated[Path | None, typer.Option(
        help="PID file [default: /tmp/pgbaton-migrate-NAME.pid].")] = None,
    log_file: Annotated[Path | None, typer.Option(help="Log file of the daemon [default: next to the pid file].")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Keep the migration healthy until stopped (SIGTERM, Ctrl-C, `migrate stop`): repair what is
    missing, add new tables."""
    from pgbaton.migrate.tend import tend

    cfg = _config()
    cfg.migration(name)
    if once:
        done = tend(cfg, name)
        if as_json:
            _json({"migration": name, "repaired": done})
        else:
            typer.echo("\n".join(done) if done else "all well")
        return
    if daemon:
        from pgbaton.cli.output import setup_logging
        from pgbaton.replica.daemon import detach

        pid_path = pid_file or _pid_file(name)
        level = state.file_log_level(cfg)
        detach(pid_path, log_file, lambda p: setup_logging(level, path=p),
               lambda p: _keep_running(cfg, name, interval, p), f"migration {name}")
        if as_json:
            _json({"ok": True, "migration": name, "daemon": True, "pid": daemon_pid(pid_path),
                   "pid_file": str(pid_path), "log_file": str(log_file or pid_path.with_suffix(".log"))})
        else:
            typer.echo(f"migration {name}: running in the background (pid file {pid_path})")
        return
    _keep_running(cfg, name, interval, pid_file)
    if as_json:
        _json({"ok": True, "migration": name, "daemon": False, "stopped": True})


def _pid_file(name: str) -> Path:
    from pgbaton.replica.daemon import default_pid_file

    return default_pid_file(f"migrate-{name}")


@app.command("stop")
def stop_cmd(
    name: NameArg,
    pid_file: Annotated[Path | None, typer.Option(help="PID file given to `migrate run`.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Stop a `migrate run` started with --daemon (the streams go on; only the repairs pause)."""
    from pgbaton.replica.daemon import stop_pid

    _config().migration(name)
    message = stop_pid(pid_file or _pid_file(name), f"migration {name} run", timeout)
    if as_json:
        _json({"ok": True, "migration": name, "message": message})
    else:
        typer.echo(message)


@app.command("status")
def status_cmd(name: NameArg, as_json: JsonOpt = False) -> None:
    """Per database: the stream running now (forward; reverse after a switchover), state, tables, lag."""
    from pgbaton.migrate.status import migration_state, status, switch_history

    rows = [r.as_dict() for r in status(_config(), name)]
    current = migration_state(_config(), name)
    switches = switch_history(_config(), name)
    if as_json:
        _json({"migration": name, "state": current, "databases": rows, "switches": switches})
        return
    typer.echo(f"migration {name}: {current}")
    if switches:
        last = switches[-1]
        typer.echo(f"last switch: {last['direction']} {last['outcome']}, ended {last['ended_at'] or '-'}, paused "
                   + ("-" if last["paused_seconds"] is None else f"{last['paused_seconds']:.3f} s"))
    for r in rows:
        lag_s = "-" if r["lag_seconds"] is None else f"{r['lag_seconds']:.3f} s"
        lag_b = "-" if r["lag_bytes"] is None else f"{r['lag_bytes']} B"
        typer.echo(f"{r['database']} ({r['direction']}): {r['state']}, "
                   f"tables {r['tables_synced']}/{r['tables_total']}, lag {lag_b} / {lag_s}"
                   + "".join(f"; {e}" for e in r["errors"]))  # type: ignore[attr-defined]


@app.command("sync-sequences")
def sync_sequences_cmd(name: NameArg, as_json: JsonOpt = False) -> None:
    """Move every target sequence forward to its source value (never backwards)."""
    from pgbaton.migrate.sequences import sync_sequences

    done = sync_sequences(_config(), name)
    if as_json:
        _json({"migration": name, "sequences": done})
        return
    for db, seqs in done.items():
        typer.echo(f"{db}: " + (", ".join(f"{k}={v}" for k, v in seqs.items()) or "nothing to move"))


def _report_switch(name: str, run: Any, direction: str, as_json: bool) -> None:
    """Run the switch and report every outcome (done, refused, rolled back, failed), as JSON with --json."""
    from pgbaton.errors import PgbatonError
    from pgbaton.migrate.switch_exec import SwitchFailed, SwitchResult

    error: PgbatonError | None = None
    try:
        res = run()
    except SwitchFailed as exc:
        res, error = exc.result, exc
    except PgbatonError as exc:
        if not as_json:
            raise
        res, error = SwitchResult(name, switched=False, direction=direction, reasons=[str(exc)]), exc
    done = "switched over" if res.direction == "switchover" else "switched back"
    if as_json:
        # the error document's keys (ok, error, type) beside the switch's outcome
        _json({"ok": res.switched, **res.as_dict(), "error": str(error) if error else None,
               "type": type(error).__name__ if error else None})
    elif res.switched:
        typer.echo(f"migration {name}: {done}" + (f" ({', '.join(res.steps)})" if res.steps else "")
                   + (f"; clients paused {res.paused_seconds:.3f} s" if res.paused_seconds is not None else ""))
    else:
        typer.echo(f"migration {name}: NOT {done}")
        for reason in res.reasons:
            typer.echo(f"  {reason}")
    if not res.switched:
        raise typer.Exit(1)


CancelOpt = Annotated[bool, typer.Option(
    "--cancel-at-deadline", help="At switch.pause_timeout_seconds, end the client transactions still holding "
                                 "the pause (they fail) instead of rolling the switch back.")]


@app.command("switchover")
def switchover_cmd(name: NameArg, cancel_at_deadline: CancelOpt = False, as_json: JsonOpt = False) -> None:
    """Move the clients to the target: pause, freeze the source, drain, reverse the replication, switch."""
    from pgbaton.migrate.switch_exec import switchover

    cfg = _config()
    _report_switch(name, lambda: switchover(cfg, name, cancel_at_deadline=cancel_at_deadline), "switchover", as_json)


@app.command("switchback")
def switchback_cmd(name: NameArg, cancel_at_deadline: CancelOpt = False, as_json: JsonOpt = False) -> None:
    """After a switchover: move the clients back to the source over the reverse stream."""
    from pgbaton.migrate.switch_exec import switchback

    cfg = _config()
    _report_switch(name, lambda: switchback(cfg, name, cancel_at_deadline=cancel_at_deadline), "switchback", as_json)


@app.command("finish")
def finish_cmd(
    name: NameArg,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """End the migration: drop every slot, publication and subscription on both sides and the catalog rows."""
    from pgbaton.migrate.finish import finish

    cfg = _config()
    cfg.migration(name)
    confirm(f"End migration {name} for good (no replication either way afterwards)?", yes)
    done = finish(cfg, name)
    if as_json:
        _json({"migration": name, "removed": done})
        return
    typer.echo("\n".join(done) if done else "nothing to remove")


@app.command("abort")
def abort_cmd(
    name: NameArg,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Undo `start`: drop slots, publications, subscriptions and the target databases pgbaton created."""
    from pgbaton.migrate.execute import abort

    cfg = _config()
    cfg.migration(name)
    confirm(f"Drop everything migration {name} created, including target databases?", yes)
    done = abort(cfg, name)
    if as_json:
        _json({"migration": name, "removed": done})
        return
    typer.echo("\n".join(done) if done else "nothing to remove")
