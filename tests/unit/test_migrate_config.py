"""The `migrations:` configuration section and the dump cleaning of the schema copy."""

from __future__ import annotations

import pytest

from pgbaton.config import SwitchMethod, parse_config
from pgbaton.errors import ConfigError
from pgbaton.migrate.schema import clean_dump

BASE = {"target": {"port": 5433}}


def test_migrations_default_to_none_and_parse() -> None:
    assert parse_config(BASE).migrations == {}
    cfg = parse_config({**BASE, "migrations": {"to18": {
        "source": {"port": 5432, "peer_host": "db-old"}, "target": {"port": 5434, "password_env": "PGPW"},
        "databases": ["shop", "crm"],
        "switch": {"method": "pgbouncer", "ini_file": "/etc/pgbouncer/pgbouncer.ini"}}}})
    m = cfg.migration("to18")
    assert m.databases == ["shop", "crm"] and m.switch.method is SwitchMethod.pgbouncer
    assert m.options.catalog_schema == "pgbaton_migrate"
    assert m.options.ddl_replication and m.options.unreplicable_ddl == "error"
    assert "host=db-old" in m.source.conninfo("shop", for_peer=True)
    assert "host=127.0.0.1" in m.source.conninfo("shop")


@pytest.mark.parametrize(
    ("migration", "expected"),
    [
        ({"source": {}, "target": {}, "databases": []}, "databases"),
        ({"source": {}, "target": {}, "databases": ["a", "a"]}, "listed twice"),
        ({"source": {}, "target": {}, "databases": ["a"], "switch": {"method": "pgbouncer"}}, "ini_file"),
        ({"source": {}, "target": {}, "databases": ["a"], "colour": 1}, "unknown key"),
        ({"target": {}, "databases": ["a"]}, "source: required key is missing"),
        ({"source": {}, "target": {}, "databases": ["a"], "options": {"unreplicable_ddl": "ignore"}},
         "options.unreplicable_ddl"),
    ],
)
def test_errors_name_the_key(migration: dict, expected: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as exc:
        parse_config({**BASE, "migrations": {"m": migration}})
    assert expected in str(exc.value)


def test_unknown_migration_name_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="not in the configuration"):
        parse_config(BASE).migration("nope")


def test_clean_dump_drops_private_column_options_only() -> None:
    dump = ("CREATE TABLE public.t (id int);\n"
            "ALTER TABLE ONLY public.t ALTER COLUMN id SET (pg_attver=26493672);\n"
            "ALTER TABLE ONLY public.t ALTER COLUMN id SET (n_distinct=-1, pg_attver=1);\n")
    text, dropped = clean_dump(dump)
    assert "pg_attver" not in text and dropped == ["pg_attver"]
    assert "ALTER TABLE ONLY public.t ALTER COLUMN id SET (n_distinct=-1);\n" in text
    assert text.startswith("CREATE TABLE public.t (id int);\n")
