"""pgbaton's exceptions.  The CLI prints their message; a traceback only with --debug."""

from __future__ import annotations


class PgbatonError(Exception):
    """Base of every error pgbaton reports to its user."""


class ConfigError(PgbatonError):
    """The configuration file is missing, unreadable or invalid."""


class CatalogError(PgbatonError):
    """pgbaton's catalog schema is missing, too new or inconsistent."""


class SourceError(PgbatonError):
    """A source database cannot be used as configured."""


class SourceUnavailable(SourceError):
    """The source went away while replicating (restart, network): worth retrying."""


class ReplayError(PgbatonError):
    """A change could not be applied to the target."""


class DDLError(PgbatonError):
    """A DDL statement could not be parsed or translated."""

