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



class TargetUnavailable(PgbatonError):
    """The target PostgreSQL cannot be reached (restart, network): worth retrying."""


# SQLSTATE classes of errors that a later attempt of the same work can get past:
# connection exceptions, transaction rollbacks (deadlock, serialization), insufficient
# resources (disk full, out of memory), operator intervention (shutdown, cancel).
_TRANSIENT_CLASSES = ("08", "40", "53", "57")
_TRANSIENT_STATES = {"55P03", "55006", "58000", "58030"}   # lock timeout, object in use, I/O errors


def is_transient(exc: BaseException) -> bool:
    """True for a PostgreSQL error that a retry (after a pause) may not meet again."""
    import psycopg

    if isinstance(exc, TargetUnavailable):
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        # no SQLSTATE: the connection itself failed or was closed under us
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES
