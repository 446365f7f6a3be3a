"""A configuration file of PostgreSQL migrations only needs no top-level `target` (the MySQL replica's)."""

from __future__ import annotations

import pytest

from pgbaton.config import parse_config
from pgbaton.errors import ConfigError

MIGRATION = {"source": {"port": 5001}, "target": {"port": 5002}, "databases": ["a"]}


def test_a_migration_only_configuration_is_valid() -> None:
    cfg = parse_config({"migrations": {"to18": MIGRATION}})
    assert cfg.migration("to18").target.port == 5002


@pytest.mark.parametrize("data", [{}, {"log_level": "info"}, {"sources": {"shop": {"databases": {"a": "a"}}},
                                                               "migrations": {"to18": MIGRATION}}])
def test_target_is_still_required_without_migrations_or_with_sources(data: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="target: required key is missing"):
        parse_config(data)
