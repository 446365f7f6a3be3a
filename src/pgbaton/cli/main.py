"""The `pgbaton` command line: thin wrappers over the package's functions."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pgbaton import __version__
from pgbaton.cli.context import JsonOpt, YesOpt, confirm, daemon_pid, state
from pgbaton.cli.output import (
    emit,
    err,
    error_document,
    error_line,
    is_long_running,
    out,
    print_json,
    setup_logging,
    stderr_level,
    wants_json,
    warn,
)
from pgbaton.errors import PgbatonError, explain_privilege

__all__ = ["app", "main", "setup_logging", "state"]

# plain help text: rich markup would eat "[default: ...]" in option help
app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Hand a live database over to PostgreSQL without downtime.")
catalog_app = typer.Typer(no_args_is_help=True, help="pgbaton's catalog schema in the target database.")
source_app = typer.Typer(no_args_is_help=True, help="Source databases (MySQL/MariaDB).")
replica_app = typer.Typer(no_args_is_help=True, help="The MySQL/MariaDB -> PostgreSQL replica.")
app.add_typer(catalog_app, name="catalog")
app.add_typer(source_app, name="source")
app.add_typer(replica_app, name="replica")

log = logging.getLogger("pgbaton")


def _print_version(value: bool) -> None:
    if value:
        out.print(f"pgbaton {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    config: Annotated[Path | None, typer.Option("--config", "-c", envvar="PGBATON_CONFIG",
                                                help="YAML configuration file [default: ./pgbaton.yaml]")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log INFO lines on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Debug logging and tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                          callback=_print_version)] = False,
) -> None:
    state.config_path = config
    state.debug = debug
    state.verbose = verbose
    state.json = False  # set again by the command's --json (a CLI called twice in one process)
    setup_logging(stderr_level(debug, verbose, long_running=state.long_running),
                  short=not (debug or verbose or state.long_running))


# -- catalog -----------------------------------------------------------------------------
@catalog_app.command("upgrade")
def catalog_upgrade(
    to: Annotated[int | None, typer.Option(help="Stop at this version [default: newest].")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply the catalog migrations that are missing (safe to rerun)."""
    from pgbaton.catalog import migrate
    from pgbaton.pgsql.conn import connect

    cfg = state.config()
    with connect(cfg.target) as conn:
        applied = migrate.upgrade(conn, cfg.target.catalog_schema, to)
        version = migrate.current_version(conn, cfg.target.catalog_schema)
    if not emit({"applied": applied, "version": version}, as_json):
        out.print(f"catalog {cfg.target.catalog_schema}: version {version}"
                  + (f" (applied {', '.join(map(str, applied))})" if applied else " (already current)"))


@catalog_app.command("version")
def catalog_version(as_json: JsonOpt = False) -> None:
    """Show the catalog version in the target and the newest this pgbaton knows."""
    from pgbaton.catalog import migrate
    from pgbaton.pgsql.conn import connect

    cfg = state.config()
    with connect(cfg.target) as conn:
        have = migrate.current_version(conn, cfg.target.catalog_schema)
    data = {"schema": cfg.target.catalog_schema, "version": have, "newest": migrate.latest_version()}
    if not emit(data, as_json):
        out.print(f"catalog {data['schema']}: version {have}, newest known {data['newest']}")


@catalog_app.command("drop")
def catalog_drop(
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove the catalog once no source is left in it (after the last detach or source drop)."""
    from pgbaton.catalog import migrate
    from pgbaton.pgsql.conn import connect

    cfg = state.config()
    schema = cfg.target.catalog_schema
    confirm(f"Remove pgbaton's catalog schema {schema} from database {cfg.target.dbname}?", yes)
    with connect(cfg.target) as conn:
        dropped = migrate.drop(conn, schema)
    if not emit({"ok": True, "schema": schema, "dropped": dropped}, as_json):
        out.print(f"catalog {schema}: " + (f"removed ({', '.join(dropped)})" if dropped else "nothing to remove"))


# -- source ------------------------------------------------------------------------------
@source_app.command("add")
def source_add(name: Annotated[str, typer.Argument(help="Source name from the configuration.")],
               as_json: JsonOpt = False) -> None:
    """Check a configured source and register it in the catalog (safe to rerun)."""
    from pgbaton.replica.init import add_source

    warnings = add_source(state.config(), name)
    if emit({"ok": True, "source": name, "registered": True, "warnings": warnings}, as_json):
        return
    for w in warnings:
        warn(w)
    out.print(f"source {escape(name)} registered")


@source_app.command("list")
def source_list(as_json: JsonOpt = False) -> None:
    """List configured sources and their state."""
    from pgbaton.replica.status import status

    rows = status(state.config(), probe_source=False)
    if emit([{k: r.get(k) for k in ("source", "state", "running")} for r in rows], as_json):
        return
    for r in rows:
        out.print(f"{r['source']}: {r['state']}{' (running)' if r.get('running') else ''}")


# -- replica -----------------------------------------------------------------------------
@replica_app.command("init")
def replica_init(
    source: Annotated[str, typer.Option("--source", "-s", help="Source name.")],
    force: Annotated[bool, typer.Option(help="Re-initialize a source that was initialized before.")] = False,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress",
                                                  help="Progress bar [default: on a terminal].")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create the source's tables on the target and copy a consistent snapshot."""
    from pgbaton.replica.init import init_replica

    res = init_replica(state.config(), source, force=force, show_progress=progress)
    data = {"source": source, "tables": res.tables, "rows": res.rows, "bytes": res.bytes,
            "seconds": round(res.seconds, 3), "copy_seconds": round(res.copy_seconds, 3),
            "rows_per_second": round(res.rows / res.seconds) if res.seconds else None,
            "position": res.position, "warnings": res.warnings, "tables_detail": res.per_table,
            "cascading_foreign_keys": res.cascading_foreign_keys}
    if emit(data, as_json):
        return
    t = Table(title=f"replica init: {source}")
    for col in ("table", "rows", "MiB", "copy s", "index s"):
        t.add_column(col, justify="right" if col != "table" else "left")
    for r in sorted(res.per_table, key=lambda r: r["table"]):
        t.add_row(escape(r["table"]), f"{r['rows']:,}", f"{r['bytes'] / 2**20:.1f}", f"{r['copy_seconds']:.2f}",
                  f"{r['index_seconds']:.2f}")
    out.print(t)
    out.print(f"{res.tables} tables, {res.rows:,} rows, {res.bytes / 2**20:.1f} MiB in {res.seconds:.2f} s "
              f"({data['rows_per_second'] or 0:,} rows/s); binlog position {res.position}")
    for fk in res.cascading_foreign_keys:
        out.print(f"cascading foreign key reproduced by replay: {escape(fk)}")


@replica_app.command("start")
def replica_start(
    source: Annotated[str, typer.Option("--source", "-s", help="Source name.")],
    daemon: Annotated[bool, typer.Option("--daemon", "-d", help="Detach and run in the background.")] = False,
    pid_file: Annotated[Path | None, typer.Option(help="PID file [default: /tmp/pgbaton-SOURCE.pid].")] = None,
    log_file: Annotated[Path | None, typer.Option(help="Log file of the daemon [default: next to the pid file].")]
    = None,
    from_: Annotated[str | None, typer.Option("--from", help="Start at this binlog position (FILE:POS or GTID), "
                                                             "for tables loaded some other way.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Follow the binlog and replay changes until stopped (SIGTERM or `replica stop`)."""
    from pgbaton.replica import daemon as d

    cfg = state.config()
    cfg.source(source)
    started_at: str | None = None
    if from_:
        from pgbaton.replica.position import start_from

        started_at = str(start_from(cfg, source, from_))
        if not as_json:
            out.print(f"source {source}: starting at {escape(started_at)}")
    path = pid_file or d.default_pid_file(source)
    if daemon:
        level = state.file_log_level(cfg)
        d.start_daemon(cfg, source, pid_file, log_file, lambda p: setup_logging(level, path=p))
        if not emit({"ok": True, "source": source, "daemon": True, "pid": daemon_pid(path), "pid_file": str(path),
                     "log_file": str(log_file or path.with_suffix(".log")), "from": started_at}, as_json):
            out.print(f"source {source}: replica started in the background (pid file {path})")
        return
    err.print(f"source {escape(source)}: replica running in the foreground until Ctrl-C, SIGTERM or `pgbaton "
              f"replica stop -s {escape(source)}`", soft_wrap=True, highlight=False)
    d.run_foreground(cfg, source, pid_file)
    emit({"ok": True, "source": source, "daemon": False, "stopped": True, "from": started_at}, as_json)


@replica_app.command("stop")
def replica_stop(
    source: Annotated[str, typer.Option("--source", "-s", help="Source name.")],
    pid_file: Annotated[Path | None, typer.Option(help="PID file given to `replica start`.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Stop a running replica cleanly; it resumes where it stopped on the next start."""
    from pgbaton.replica import daemon as d

    cfg = state.config()
    cfg.source(source)
    message = d.stop(cfg, source, pid_file, timeout)
    if not emit({"ok": True, "source": source, "message": message}, as_json):
        out.print(escape(message), soft_wrap=True)


@replica_app.command("verify")
def replica_verify(
    source: Annotated[str, typer.Option("--source", "-s", help="Source name.")],
    tables: Annotated[str | None, typer.Option(help="Comma-separated tables (db.table or table) [default: all].")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare target tables with the source (counts, checksums, differing rows). Exit 1 if any differ."""
    from pgbaton.replica.verify import verify

    rows = verify(state.config(), source, tables.split(",") if tables else None)
    bad = [r for r in rows if not r["equal"]]
    if not emit(rows, as_json):
        t = Table(title=f"verify: {source}")
        for col in ("table", "source rows", "target rows", "missing", "extra", "result"):
            t.add_column(col)
        for r in rows:
            t.add_row(escape(r["table"]), f"{r['source_rows']:,}", f"{r['target_rows']:,}", str(r["missing_on_target"]),
                      str(r["extra_on_target"]), "[green]equal[/]" if r["equal"] else "[red]DIFFERENT[/]")
        out.print(t)
    if bad:
        raise typer.Exit(1)


def _table_list(tables: str) -> list[str]:
    names = [t.strip() for t in tables.split(",") if t.strip()]
    if not names:
        raise PgbatonError("--tables: give db.table or table names separated by commas, or 'disabled'")
    return names


@replica_app.command("sync-tables")
def replica_sync_tables(
    source: Annotated[str, typer.Option("--source", "-s", help="Source name.")],
    tables: Annotated[str, typer.Option(help="Comma-separated tables (db.table or table), or 'disabled'.")],
    as_json: JsonOpt = False,
) -> None:
    """Copy tables again from a fresh snapshot while the replica keeps running (also adds excluded tables)."""
    from pgbaton.replica.sync import sync_tables

    res = sync_tables(state.config(), source, _table_list(tables))
    data = {"source": source, "tables": res.tables, "rows": res.rows, "position": res.position,
            "replica_running": res.online, "caught_up_batches": res.caught_up_batches, "detail": res.per_table}
    if emit(data, as_json):
        return
    if not res.tables:
        out.print(f"source {source}: no table to sync")
        return
    out.print(f"source {source}: {', '.join(res.tables)} copied again ({res.rows:,} rows) at {res.position}; "
              "replicating")


@replica_app.command("disable-tables")
def replica_disable_tables(
    source: Annotated[str, typer.Option("--source", "-s", help="Source name.")],
    tables: Annotated[str, typer.Option(help="Comma-separated tables (db.table or table).")],
    as_json: JsonOpt = False,
) -> None:
    """Stop replicating some tables (their target tables stay as they are). Safe to rerun."""
    from pgbaton.replica.tables import disable_tables

    done = disable_tables(state.config(), source, _table_list(tables))
    if emit({"ok": True, "source": source, "disabled": done}, as_json):
        return
    out.print(f"source {source}: " + (f"disabled {', '.join(done)}" if done else "already disabled"))


@replica_app.command("enable-tables")
def replica_enable_tables(
    source: Annotated[str, typer.Option("--source", "-s", help="Source name.")],
    tables: Annotated[str, typer.Option(help="Comma-separated tables (db.table or table), or 'disabled'.")],
    as_json: JsonOpt = False,
) -> None:
    """Replicate disabled tables again: same as sync-tables (they are copied again)."""
    from pgbaton.replica.tables import enable_tables

    res = enable_tables(state.config(), source, _table_list(tables))
    if emit({"ok": True, "source": source, "enabled": res.tables, "rows": res.rows, "position": res.position},
            as_json):
        return
    out.print(f"source {source}: " + (f"{', '.join(res.tables)} enabled (copied at {res.position})"
                                      if res.tables else "no table to enable"))


@replica_app.command("detach")
def replica_detach(
    source: Annotated[str, typer.Option("--source", "-s", help="Source name.")],
    yes: YesOpt = False,
    foreign_keys: Annotated[bool, typer.Option("--foreign-keys/--no-foreign-keys",
                                               help="Create the source's foreign keys (reads the source).")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Stop following the source for good: the target tables become a standalone database."""
    from pgbaton.replica.detach import detach, summary

    cfg = state.config()
    cfg.source(source)
    confirm(f"Detach source {source}? Its replica ends for good and pgbaton's objects for it are removed.", yes)
    res = detach(cfg, source, foreign_keys=foreign_keys)
    if emit(summary(res), as_json):
        return
    for w in res.warnings:
        warn(w)
    if not res.removed:
        out.print(f"source {source}: not registered (already detached)")
        return
    out.print(f"source {source} detached: {res.replayed_events:,} stored changes applied, "
              f"{len(res.sequences)} sequence(s) set, {len(res.foreign_keys)} foreign key(s) created")


@source_app.command("drop")
def source_drop(
    name: Annotated[str, typer.Argument(help="Source name.")],
    drop_tables: Annotated[bool, typer.Option("--drop-tables", help="Drop its target tables too.")] = False,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove a source from the catalog: its log, batches, table list and errors (safe to rerun)."""
    from pgbaton.replica.detach import drop_source

    cfg = state.config()
    cfg.source(name)
    confirm(f"Remove source {name} from the catalog{' and drop its target tables' if drop_tables else ''}?", yes)
    done = drop_source(cfg, name, drop_tables=drop_tables)
    if emit({"ok": True, "source": name, "removed": done, "tables_dropped": drop_tables and done}, as_json):
        return
    out.print(f"source {name} " + ("removed" if done else "was not registered"))


@app.command("maintenance")
def maintenance_cmd(
    source: Annotated[str | None, typer.Option("--source", "-s", help="Only this source.")] = None,
    retention: Annotated[float | None, typer.Option(help="Seconds replayed batches are kept "
                                                          "[default: log_retention_seconds].")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete replayed batches past their retention and VACUUM the log and catalog tables."""
    from pgbaton.replica.maintenance import maintenance

    rows = maintenance(state.config(), source, retention_seconds=retention)
    if emit(rows, as_json):
        return
    for r in rows:
        out.print(f"{r['source']}: {r['batches_removed']:,} replayed batch(es) removed; log table "
                  f"{r['log_bytes_before'] / 2**20:.1f} -> {r['log_bytes_after'] / 2**20:.1f} MiB")


# -- status / errors ---------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return escape(str(v))


@app.command("status")
def status_cmd(
    source: Annotated[str | None, typer.Option("--source", "-s", help="Only this source, with its tables.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """State, read lag and replay lag of each source."""
    from pgbaton.replica.status import status, table_status

    cfg = state.config()
    rows = status(cfg, source)
    tables = table_status(cfg, source) if source else None
    if as_json:
        data: Any = rows if source is None else {**rows[0], "tables": tables}
        emit(data, True)
        return
    for renderable in status_report(rows, source, tables):
        out.print(renderable, soft_wrap=not isinstance(renderable, Table))


def status_report(rows: list[dict[str, Any]], source: str | None,
                  tables: list[dict[str, Any]] | None) -> list[Table | str]:
    """What `status` prints: the sources table, a line per source, the tables of one source."""
    t = Table(title="pgbaton status")
    for col in ("source", "state", "read lag s", "replay lag s", "pending", "rows replayed", "tables", "errors"):
        t.add_column(col, justify="left" if col in ("source", "state") else "right")
    for r in rows:
        state_txt = r["state"] + (" (running)" if r.get("running") and r["state"] != "running" else "")
        tables_txt = f"{r.get('tables_replicated', 0)}" + (f" +{r['tables_disabled']} disabled"
                                                          if r.get("tables_disabled") else "")
        t.add_row(_fmt(r["source"]), state_txt, _fmt(r.get("read_lag_s")), _fmt(r.get("replay_lag_s")),
                  _fmt(r.get("pending_events")), _fmt(r.get("rows_replayed")), tables_txt, _fmt(r.get("errors")))
    parts: list[Table | str] = [t]
    for r in rows:
        parts.append(f"[dim]{_fmt(r['source'])}: read {_fmt(r.get('read_position'))} / source head "
                     f"{_fmt(r.get('source_head'))} ({_fmt(r.get('read_lag_bytes'))} bytes behind), "
                     f"last event {_fmt(r.get('last_event_at'))}[/]")
        if r.get("source_error"):
            parts.append(f"[yellow]{escape(r['source'])}: source not reachable: {escape(r['source_error'])}[/]")
    if tables:
        tt = Table(title=f"tables of {escape(source or '')}")
        for col in ("source_table", "target_table", "state", "rows_copied", "last_error"):
            tt.add_column(col.replace("_", " "))
        for r in tables:
            tt.add_row(_fmt(r["source_table"]), _fmt(r["target_table"]), r["state"], _fmt(r["rows_copied"]),
                       escape(r["last_error"] or ""))
        parts.append(tt)
    return parts


@app.command("errors")
def errors_cmd(
    source: Annotated[str | None, typer.Option("--source", "-s")] = None,
    limit: Annotated[int, typer.Option(help="Newest N errors.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Replay and DDL errors, newest first, with the change that failed."""
    from pgbaton.replica.status import errors

    rows = errors(state.config(), source, limit)
    if emit(rows, as_json):
        return
    if not rows:
        out.print("no errors")
        return
    for r in rows:
        out.print(f"[bold]#{r['id']}[/] {r['at']} {r['source']} {r['kind']} {escape(r['table'] or '')} "
                  f"batch {r['batch_id']}: {escape(r['message'])}", soft_wrap=True)
        if r["change"]:
            out.print(f"    change: {escape(json.dumps(r['change'], default=str)[:2000])}", soft_wrap=True)


def _mount_subcommands() -> None:
    from pgbaton.cli.ha import app as ha_app
    from pgbaton.cli.migrate import app as migrate_app
    from pgbaton.cli.observe import register

    register(app)

    app.add_typer(ha_app, name="ha", help="Two-node PostgreSQL high availability (Pacemaker).")
    app.add_typer(migrate_app, name="migrate", help="PostgreSQL -> PostgreSQL migration by logical replication.")


_mount_subcommands()


def main(argv: list[str] | None = None) -> None:
    """Entry point: pgbaton's errors print one clean line (one JSON document with --json),
    a traceback only with --debug."""
    args = sys.argv[1:] if argv is None else argv
    as_json = wants_json(args)
    state.long_running = is_long_running(args)
    try:
        code = app(args=args, prog_name="pgbaton", standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C (KeyboardInterrupt) into this exit code, silently
            raise KeyboardInterrupt
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.TyperException as exc:          # usage errors: unknown option, missing value
        if (as_json or state.json) and not exc.__class__.__name__ == "NoArgsIsHelpError":
            print_json(error_document(exc))
        else:
            exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)
    except typer.Abort:
        if as_json or state.json:
            print_json({"ok": False, "error": "aborted", "type": "Abort"})
        else:
            err.print("aborted")
        sys.exit(1)
    except PgbatonError as exc:
        if state.debug:
            log.exception("failed")
        if as_json or state.json:
            print_json(error_document(exc))
        else:
            error_line(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        if as_json or state.json:
            print_json({"ok": False, "error": "interrupted", "type": "KeyboardInterrupt"})
        else:
            err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if state.debug:
            raise
        # a permission error names the user, the object and the grant to add
        exc = explain_privilege(exc, state._config) or exc
        if isinstance(exc, PgbatonError):
            if as_json or state.json:
                print_json(error_document(exc))
            else:
                error_line(str(exc))
            sys.exit(1)
        if as_json or state.json:
            print_json(error_document(exc))
        else:
            error_line(f"{exc.__class__.__name__}: {exc} (run with --debug for a traceback)")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
