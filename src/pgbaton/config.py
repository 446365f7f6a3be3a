"""The configuration file: one YAML document parsed into frozen, typed models.

Passwords never live in these models as plain fields that get printed: they are
read on demand from an environment variable, a password file, or left to the
client libraries (``~/.pgpass`` for PostgreSQL, ``~/.my.cnf`` for MySQL).
"""

from __future__ import annotations

import fnmatch
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from pgbaton.errors import ConfigError

_T = TypeVar("_T")
IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
DEFAULT_CONFIG = "pgbaton.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PasswordSource(_Model):
    """Where a password comes from.  At most one of the three may be set."""

    password_env: str | None = Field(None, description="environment variable holding the password")
    password_file: Path | None = Field(None, description="file whose first line is the password")
    password: SecretStr | None = Field(None, description="literal password (discouraged)")

    @model_validator(mode="after")
    def _one_source(self) -> PasswordSource:
        given = [n for n in ("password_env", "password_file", "password") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"set only one of {', '.join(given)}")
        return self

    def resolve_password(self, what: str) -> str | None:
        """The password, or None to let the client library find one (.pgpass, .my.cnf)."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"{what}.password_env: environment variable {self.password_env} is not set")
            return value
        if self.password_file:
            try:
                return self.password_file.expanduser().read_text(encoding="utf-8").splitlines()[0]
            except (OSError, IndexError) as exc:
                raise ConfigError(f"{what}.password_file: cannot read a password from {self.password_file}: "
                                  f"{exc.__class__.__name__}") from None
        if self.password is not None:
            return self.password.get_secret_value()
        return None


class TargetConfig(PasswordSource):
    """The PostgreSQL database that receives the replica and holds the catalog."""

    host: str = "127.0.0.1"
    port: int = Field(5432, ge=1, le=65535)
    dbname: str = "postgres"
    user: str = "postgres"
    catalog_schema: str = "pgbaton"
    connect_timeout: int = Field(10, ge=1)

    @field_validator("catalog_schema")
    @classmethod
    def _schema_name(cls, v: str) -> str:
        if not IDENT.match(v):
            raise ValueError("must be a lower-case identifier (letters, digits, _)")
        return v

    def conninfo(self, application_name: str = "pgbaton") -> str:
        """A libpq connection string; the password is added only when configured."""
        from psycopg.conninfo import make_conninfo

        params: dict[str, Any] = {
            "host": self.host, "port": self.port, "dbname": self.dbname, "user": self.user,
            "connect_timeout": self.connect_timeout, "application_name": application_name,
        }
        pw = self.resolve_password("target")
        if pw is not None:
            params["password"] = pw
        return make_conninfo(**params)


class OnError(StrEnum):
    disable_table = "disable_table"
    stop = "stop"


class ZeroDates(StrEnum):
    null = "null"
    sentinel = "sentinel"


class TableFilter(_Model):
    """Shell-style patterns over ``database.table``."""

    include: list[str] = Field(default_factory=lambda: ["*.*"])
    exclude: list[str] = Field(default_factory=list)

    def wants(self, database: str, table: str) -> bool:
        name = f"{database}.{table}"
        if not any(fnmatch.fnmatchcase(name, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.exclude)


class MySQLSourceConfig(PasswordSource):
    """A MySQL or MariaDB server read through its binlog."""

    type: Literal["mysql", "mariadb"] = "mariadb"
    host: str = "127.0.0.1"
    port: int = Field(3306, ge=1, le=65535)
    user: str = "root"
    my_cnf: Path | None = Field(None, description="option file with user/password, e.g. ~/.my.cnf")
    server_id: int = Field(4242, ge=1, le=2**32 - 1, description="replica server id, unique among readers")
    databases: dict[str, str] = Field(
        ..., description="MySQL database -> PostgreSQL schema", min_length=1,
    )
    tables: TableFilter = Field(default_factory=TableFilter)
    column_types: dict[str, str] = Field(
        default_factory=dict, description="per-column type override: 'db.table.column': 'pg type'",
    )
    tinyint1_as_boolean: bool = False
    zero_dates: ZeroDates = ZeroDates.null
    zero_date_sentinel: str = "0001-01-01 00:00:00"
    copy_workers: Annotated[int, Field(ge=1, le=64)] = 4
    copy_chunk_rows: Annotated[int, Field(ge=100)] = 20000
    copy_via_client: bool = Field(
        True, description="stream the snapshot through the mariadb/mysql client program when installed")
    batch_max_rows: Annotated[int, Field(ge=1)] = 50000
    batch_max_ms: Annotated[int, Field(ge=1)] = 100
    heartbeat_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    on_replay_error: OnError = OnError.disable_table
    log_retention_seconds: Annotated[float, Field(ge=0)] = 600.0
    log_vacuum_seconds: Annotated[float, Field(ge=0, description="VACUUM the log table after cleanups at most "
                                                                 "this often; 0: leave it to autovacuum")] = 60.0
    on_unknown_ddl: Literal["record", "stop"] = Field(
        "record", description="a DDL statement that cannot be applied: record it and mark the table, or stop")
    use_gtid: bool = False

    @field_validator("databases")
    @classmethod
    def _schemas(cls, v: dict[str, str]) -> dict[str, str]:
        for db, schema in v.items():
            if not schema or len(schema) > 63:
                raise ValueError(f"schema for database {db!r} must be 1 to 63 characters")
        return v

    @field_validator("column_types")
    @classmethod
    def _column_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if key.count(".") != 2:
                raise ValueError(f"key {key!r} must be 'database.table.column'")
        return v

    def pymysql_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"host": self.host, "port": self.port, "user": self.user}
        pw = self.resolve_password("source")
        if pw is not None:
            args["password"] = pw
        if self.my_cnf is not None:
            args["read_default_file"] = str(self.my_cnf.expanduser())
        return args


# -- PostgreSQL -> PostgreSQL migrations ---------------------------------------------------
class ClusterConfig(PasswordSource):
    """A PostgreSQL cluster taking part in a migration (source or target)."""

    host: str = "127.0.0.1"
    port: int = Field(5432, ge=1, le=65535)
    user: str = "postgres"
    dbname: str = Field("postgres", description="maintenance database; the migration catalog lives here on the target")
    connect_timeout: int = Field(10, ge=1)
    peer_host: str | None = Field(
        None, description="host name the other cluster uses to reach this one (subscriptions) [default: host]")

    def conninfo(self, dbname: str | None = None, application_name: str = "pgbaton", *,
                 for_peer: bool = False, what: str = "cluster") -> str:
        """A libpq connection string to one database; the password is added only when configured."""
        from psycopg.conninfo import make_conninfo

        params: dict[str, Any] = {
            "host": (self.peer_host or self.host) if for_peer else self.host, "port": self.port,
            "dbname": dbname or self.dbname, "user": self.user,
            "connect_timeout": self.connect_timeout, "application_name": application_name,
        }
        pw = self.resolve_password(what)
        if pw is not None:
            params["password"] = pw
        return make_conninfo(**params)


class SwitchMethod(StrEnum):
    none = "none"
    pgbouncer = "pgbouncer"
    script = "script"


class SwitchConfig(PasswordSource):
    """How client traffic moves from the source to the target at switchover."""

    method: SwitchMethod = SwitchMethod.none
    host: str = "127.0.0.1"
    port: int = Field(6432, ge=1, le=65535)
    user: str = Field("pgbouncer", description="a PgBouncer admin user")
    ini_file: Path | None = Field(None, description="pgbouncer.ini whose [databases] entries pgbaton rewrites")
    command: list[str] | None = Field(
        None, description="method script: the program and its first arguments (no shell); pgbaton appends "
                          "pause DB..., point HOST PORT DB... or resume DB...")
    timeout_seconds: float = Field(
        30.0, gt=0, description="switchover: how long the target may take to apply the frozen source's last changes")
    pause_timeout_seconds: float = Field(
        10.0, gt=0, description="switchover: how long PAUSE may wait for transactions in flight before the "
                                "switch is rolled back (a long transaction would otherwise hold it)")
    max_lag_bytes: int = Field(
        16 * 2**20, ge=0, description="switchover refuses to start when a database lags more than this")

    @model_validator(mode="after")
    def _needs_ini(self) -> SwitchConfig:
        if self.method is SwitchMethod.pgbouncer and self.ini_file is None:
            raise ValueError("switch.ini_file is required with method pgbouncer")
        if self.method is SwitchMethod.script and not self.command:
            raise ValueError("switch.command (a list: program and arguments) is required with method script")
        return self


class NoKeyPolicy(StrEnum):
    replica_identity_full = "replica_identity_full"
    refuse = "refuse"


class MigrationOptions(_Model):
    bin_dir: Path | None = Field(None, description="binaries of the target's major version (pg_dump, psql)")
    copy_roles: bool = Field(False, description="copy roles with pg_dumpall --roles-only before the schema")
    no_primary_key: NoKeyPolicy = NoKeyPolicy.replica_identity_full
    catalog_schema: str = "pgbaton_migrate"
    ddl_replication: bool = Field(True, description="replicate DDL in-band (event triggers and a queue table)")
    unreplicable_ddl: Literal["error", "warn"] = Field(
        "error", description="DDL run inside a function or DO block, whose text cannot be isolated: "
                             "refuse it (error) or let it run unreplicated with a warning (warn)")
    sync_timeout_seconds: Annotated[float, Field(gt=0)] = 600.0

    @field_validator("catalog_schema")
    @classmethod
    def _schema_name(cls, v: str) -> str:
        if not IDENT.match(v):
            raise ValueError("must be a lower-case identifier (letters, digits, _)")
        return v


class MigrationConfig(_Model):
    """One PostgreSQL -> PostgreSQL migration of one or many databases."""

    source: ClusterConfig
    target: ClusterConfig
    databases: list[str] = Field(..., min_length=1)
    switch: SwitchConfig = Field(default_factory=lambda: SwitchConfig.model_validate({}))
    options: MigrationOptions = Field(default_factory=lambda: MigrationOptions.model_validate({}))

    @field_validator("databases")
    @classmethod
    def _db_names(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a database is listed twice")
        for db in v:
            if not db or len(db) > 63:
                raise ValueError(f"database name {db!r} must be 1 to 63 characters")
        return v


class ObserveConfig(_Model):
    """`pgbaton serve`: Prometheus metrics and the read-only status page."""

    host: str = Field("127.0.0.1", description="listen address (loopback by default)")
    port: int = Field(9481, ge=0, le=65535, description="listen port (0: any free port)")
    token_env: str | None = Field(None, description="environment variable holding a bearer token the page and "
                                                    "/metrics then require")
    token_file: Path | None = Field(None, description="file whose first line is that token")
    sample_seconds: float = Field(5.0, gt=0, description="how often the page's lag history is sampled")
    history_seconds: float = Field(900.0, gt=0, description="how much lag history the page keeps and shows")
    ha_nodes: dict[str, ClusterConfig] = Field(
        default_factory=dict, description="HA cluster: node name -> its PostgreSQL, read for role, timeline, LSN")
    ha_resource: str | None = Field(None, description="the Pacemaker resource of the HA agent (promotion scores)")

    @model_validator(mode="after")
    def _one_token(self) -> ObserveConfig:
        if self.token_env and self.token_file:
            raise ValueError("set only one of token_env, token_file")
        return self

    def token(self) -> str | None:
        if self.token_env:
            value = os.environ.get(self.token_env)
            if not value:
                raise ConfigError(f"observe.token_env: environment variable {self.token_env} is not set")
            return value
        if self.token_file:
            try:
                return self.token_file.expanduser().read_text(encoding="utf-8").splitlines()[0].strip()
            except (OSError, IndexError) as exc:
                raise ConfigError(f"observe.token_file: cannot read a token from {self.token_file}: "
                                  f"{exc.__class__.__name__}") from None
        return None


class Config(_Model):
    # required, except in a file of PostgreSQL migrations only (each names its own clusters)
    target: TargetConfig = Field(default_factory=lambda: TargetConfig.model_validate({}))
    sources: dict[str, MySQLSourceConfig] = Field(default_factory=dict)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    migrations: dict[str, MigrationConfig] = Field(default_factory=dict)
    observe: ObserveConfig = Field(default_factory=lambda: ObserveConfig.model_validate({}))

    @model_validator(mode="before")
    @classmethod
    def _target_needed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "target" not in data and (data.get("sources") or not data.get("migrations")):
            raise ValueError("target: required key is missing")
        return data

    @model_validator(mode="after")
    def _schemas_owned_once(self) -> Config:
        """pgbaton's catalog schema and each source's schemas are nobody else's."""
        owner: dict[str, str] = {}
        for name, src in self.sources.items():
            for db, schema in src.databases.items():
                key = f"sources.{name}.databases.{db}"
                if schema == self.target.catalog_schema:
                    raise ValueError(f"{key}: schema {schema!r} is pgbaton's catalog schema (target.catalog_schema); "
                                     "map the database to a schema of its own")
                other = owner.setdefault(schema, name)
                if other != name:
                    raise ValueError(f"{key}: schema {schema!r} is already the target of source {other!r}; "
                                     "each source needs schemas of its own")
        return self

    @field_validator("sources", "migrations")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not IDENT.match(name):
                raise ValueError(f"name {name!r} must be a lower-case identifier of at most 40 characters")
        return v

    def source(self, name: str) -> MySQLSourceConfig:
        return _named("source", self.sources, name)

    def migration(self, name: str) -> MigrationConfig:
        return _named("migration", self.migrations, name)


def _named(kind: str, entries: dict[str, _T], name: str) -> _T:
    try:
        return entries[name]
    except KeyError:
        known = ", ".join(sorted(entries)) or "none"
        raise ConfigError(f"{kind} {name!r} is not in the configuration (configured: {known})") from None


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    msg = err.get("msg", "invalid")
    if err.get("type") == "extra_forbidden":
        return f"{loc}: unknown key (check the spelling; see docs/config.example.yaml)"
    if err.get("type") == "missing":
        return f"{loc}: required key is missing"
    if "input" in err and not isinstance(err["input"], dict | list) and "password" not in loc:
        return f"{loc}: {msg} (got {err['input']!r})"
    return f"{loc}: {msg}"


def parse_config(data: Any, origin: str = "configuration") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level with 'target' and 'sources'")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(e) for e in exc.errors())  # type: ignore[arg-type]
        raise ConfigError(f"{origin} is invalid:\n  {lines}") from None


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate the YAML configuration file."""
    path = Path(path or os.environ.get("PGBATON_CONFIG") or DEFAULT_CONFIG)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} not found (pass --config or set PGBATON_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_config(data, str(path))
