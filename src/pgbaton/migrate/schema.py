"""Copy roles and the schema of one database with the target's pg_dump and psql."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from psycopg.conninfo import make_conninfo

from pgbaton.config import ClusterConfig, MigrationConfig
from pgbaton.errors import PgbatonError
from pgbaton.migrate.probe import NO_CAPTURE

log = logging.getLogger(__name__)


def tool(cfg: MigrationConfig, name: str) -> str:
    """A client program of the target's major version: options.bin_dir, else PATH."""
    if cfg.options.bin_dir is not None:
        path = Path(cfg.options.bin_dir) / name
        if not path.exists():
            raise PgbatonError(f"options.bin_dir: {path} does not exist")
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise PgbatonError(f"{name} is not on PATH; set options.bin_dir to the target's binaries")
    return found


def _dsn(cluster: ClusterConfig, dbname: str) -> str:
    """Connection string without the password (that goes through PGPASSWORD, not the argv)."""
    return make_conninfo(host=cluster.host, port=cluster.port, user=cluster.user, dbname=dbname,
                         connect_timeout=cluster.connect_timeout, application_name="pgbaton-migrate")


def _env(cluster: ClusterConfig, side: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} {NO_CAPTURE}".strip()
    pw = cluster.resolve_password(side)
    if pw is not None:
        env["PGPASSWORD"] = pw
    return env


# column options core PostgreSQL knows; anything else (a build's private stamp) the target may reject
_KNOWN_ATTOPTIONS = frozenset({"n_distinct", "n_distinct_inherited"})
_SET_ATTOPTIONS = re.compile(r"^(ALTER TABLE (?:ONLY )?.+ ALTER COLUMN .+ SET )\((.*)\);$")


def clean_dump(text: str) -> tuple[str, list[str]]:
    """Drop column options that core PostgreSQL does not define; return the text and what was dropped.

    Some builds stamp private options on every column (seen: ``pg_attver`` on a Debian 15 build);
    pg_dump carries them and a target of another build refuses them.
    """
    lines, dropped = [], []
    for line in text.splitlines(keepends=True):
        m = _SET_ATTOPTIONS.match(line.rstrip("\n"))
        if m:
            opts = [o.strip() for o in m.group(2).split(",")]
            keep = [o for o in opts if o.split("=", 1)[0].strip() in _KNOWN_ATTOPTIONS]
            dropped += [o for o in opts if o not in keep]
            if not keep:
                continue
            line = f"{m.group(1)}({', '.join(keep)});\n"
        lines.append(line)
    return "".join(lines), sorted(set(o.split("=", 1)[0] for o in dropped))


def _pipe(dump: list[str], dump_env: dict[str, str], restore: list[str], restore_env: dict[str, str],
          what: str) -> None:
    producer = subprocess.run(dump, capture_output=True, env=dump_env, check=False)
    if producer.returncode != 0:
        raise PgbatonError(f"{what}: pg_dump failed: {producer.stderr.decode(errors='replace').strip()[:2000]}")
    text, dropped = clean_dump(producer.stdout.decode())
    if dropped:
        log.warning("%s: column options unknown to core PostgreSQL not copied: %s", what, ", ".join(dropped))
    consumer = subprocess.run(restore, input=text.encode(), capture_output=True, env=restore_env, check=False)
    if consumer.returncode != 0:
        raise PgbatonError(f"{what}: restore failed: {consumer.stderr.decode(errors='replace').strip()[:2000]}")


def copy_roles(cfg: MigrationConfig) -> None:
    """Roles of the source cluster; roles that already exist on the target are kept as they are."""
    dump = [tool(cfg, "pg_dumpall"), "--roles-only", "-d", _dsn(cfg.source, cfg.source.dbname)]
    # without ON_ERROR_STOP: "role already exists" for roles present on both sides is expected
    restore = [tool(cfg, "psql"), "-X", "-q", "-d", _dsn(cfg.target, cfg.target.dbname)]
    _pipe(dump, _env(cfg.source, "source"), restore, _env(cfg.target, "target"), "roles")


def copy_schema(cfg: MigrationConfig, dbname: str, snapshot: str | None = None) -> None:
    """The schema of one database into the (empty) target database of the same name.

    ``snapshot``: an exported snapshot of the source to dump (so the caller knows exactly what it holds).
    """
    dump = [tool(cfg, "pg_dump"), "--schema-only", "--no-publications", "--no-subscriptions",
            "-d", _dsn(cfg.source, dbname)]
    if snapshot is not None:
        dump += [f"--snapshot={snapshot}"]
    if not cfg.options.copy_roles:
        dump += ["--no-owner", "--no-privileges"]
    restore = [tool(cfg, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
               "-d", _dsn(cfg.target, dbname)]
    log.info("copying the schema of %s", dbname)
    _pipe(dump, _env(cfg.source, "source"), restore, _env(cfg.target, "target"), f"schema of {dbname}")
