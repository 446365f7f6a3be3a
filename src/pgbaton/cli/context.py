"""What every command shares: the global options' state and the --json option."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from pgbaton.cli.output import stderr_level
from pgbaton.config import Config, load_config
from pgbaton.errors import PgbatonError


def _remember_json(value: bool) -> bool:
    if value:
        state.json = True  # main() then prints failures as JSON too
    return value


JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout, errors included.",
                                       callback=_remember_json)]


class State:
    config_path: Path | None = None
    debug: bool = False
    verbose: bool = False
    json: bool = False
    long_running: bool = False   # replica start, migrate run, serve ... in the foreground
    _config: Config | None = None

    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
            logging.getLogger().setLevel(stderr_level(self.debug, self.verbose, self._config.log_level,
                                                         self.long_running))
        return self._config

    def file_log_level(self, cfg: Config) -> int:
        """The level of a daemon's log file: the configured one (debug with --debug)."""
        return logging.DEBUG if self.debug else getattr(logging, cfg.log_level.upper())


state = State()


YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def confirm(question: str, yes: bool) -> None:
    """Ask ``question`` on the terminal unless ``--yes``; refused (an error naming --yes) with
    --json, where a prompt would break the JSON on stdout, and without a terminal to ask on."""
    if yes:
        return
    if state.json:
        raise PgbatonError(f"{question} Rerun with --yes to confirm (--json does not ask).")
    if not sys.stdin.isatty():
        raise PgbatonError(f"{question} Rerun with --yes to confirm (no terminal to ask on).")
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


def daemon_pid(pid_file: Path) -> int | None:
    """The pid a daemon wrote into its pid file, None when there is none (yet)."""
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
