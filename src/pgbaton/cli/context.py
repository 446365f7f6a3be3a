"""What every command shares: the global options' state and the --json option."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from pgbaton.cli.output import stderr_level
from pgbaton.config import Config, load_config


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
