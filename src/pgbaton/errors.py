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


class PrivilegeError(PgbatonError):
    """A server refused an action for lack of a privilege: names the user, the object and the grant."""


def explain_privilege(exc: BaseException, cfg: object | None = None) -> PrivilegeError | None:
    """A permission error of PostgreSQL or MySQL, told as who lacks what and the GRANT that
    gives it; None for any other error.  ``cfg`` (a Config, when loaded) supplies the users."""
    import re

    import psycopg
    import pymysql

    target_user = getattr(getattr(cfg, "target", None), "user", None) or "the target user"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        text = (exc.diag.message_primary or str(exc)).strip()
        grant = "see docs/operations.md, 'Privileges'"
        m = re.match(r"permission denied for (schema|table|sequence|database|relation|view) (.+)$", text)
        if m:
            kind, obj = m.group(1), m.group(2)
            privs = {"schema": "USAGE, CREATE", "database": "CREATE", "sequence": "USAGE, SELECT, UPDATE"}
            on = "TABLE" if kind in ("table", "relation", "view") else kind.upper()
            what = privs.get(kind, "SELECT, INSERT, UPDATE, DELETE, TRUNCATE")
            grant = f"GRANT {what} ON {on} {obj} TO {target_user}"
        elif text.startswith("must be owner of"):
            grant = f"make {target_user} the owner (ALTER ... OWNER TO {target_user}) or run as the owner"
        elif "permission denied to create" in text:
            grant = f"ALTER ROLE {target_user} CREATEDB, or create the object beforehand"
        return PrivilegeError(f"target PostgreSQL user {target_user}: {text}; {grant}")
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and exc.args[0] in (1044, 1142, 1143, 1227, 1370):
        code, text = exc.args[0], str(exc.args[-1])
        users = [getattr(s, "user", None) for s in getattr(cfg, "sources", {}).values()] if cfg else []
        m = re.search(r"user '([^']*)'@'([^']*)'", text)
        who = f"'{m.group(1)}'@'{m.group(2)}'" if m else (users[0] if len(users) == 1 else "the source user")
        if code == 1227:
            need = re.search(r"need \(at least one of\) the (.+?) privilege", text)
            grant = f"GRANT {need.group(1) if need else 'REPLICATION SLAVE'} ON *.* TO {who}"
        elif code in (1142, 1143):
            obj = re.search(r"for (?:table|column '[^']*' in table) [`']?([^`']+)[`']?", text)
            grant = f"GRANT SELECT ON {obj.group(1) if obj else '<database>'}.* TO {who}"
        else:
            db = re.search(r"to database '([^']*)'", text)
            grant = f"GRANT SELECT, SHOW VIEW ON `{db.group(1) if db else '<database>'}`.* TO {who}"
        return PrivilegeError(f"source MySQL user {who}: {text}; {grant} (docs/replica.md lists the grants)")
    return None
