"""Configuration: typed, validated, errors name the key; secrets are never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgbaton.config import load_config, parse_config
from pgbaton.errors import ConfigError

BASE = {"target": {"port": 5433, "dbname": "app"},
        "sources": {"shop": {"databases": {"shop": "shop"}, "port": 3307}}}


def test_valid_config_parses_with_defaults() -> None:
    cfg = parse_config(BASE)
    src = cfg.source("shop")
    assert src.copy_workers == 4 and src.on_replay_error.value == "disable_table"
    assert src.tables.wants("shop", "orders")
    assert cfg.target.catalog_schema == "pgbaton"


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"target": {"port": "abc"}}, "target.port"),
        ({"target": {"port": 70000}}, "target.port"),
        ({"sources": {"shop": {"databases": {"shop": "shop"}, "copy_workers": 0}}}, "sources.shop.copy_workers"),
        ({"sources": {"shop": {"databases": {"shop": "shop"}, "colour": 1}}}, "sources.shop.colour: unknown key"),
        ({"sources": {"shop": {}}}, "sources.shop.databases: required key is missing"),
        ({"sources": {"Bad-Name": {"databases": {"a": "a"}}}}, "Bad-Name"),
        ({"sources": {"shop": {"databases": {"a": "a"}, "on_replay_error": "ignore"}}}, "on_replay_error"),
    ],
)
def test_errors_name_the_key(patch: dict, expected: str) -> None:
    data = {**BASE, **patch}
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert expected in str(exc.value)


def test_bad_value_is_quoted_but_password_is_not() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({**BASE, "target": {"port": "abc", "password": "s3cret", "password_env": "X"}})
    text = str(exc.value)
    assert "'abc'" in text
    assert "s3cret" not in text


def test_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_text("from-file\nignored\n")
    cfg = parse_config({**BASE, "target": {"password_file": str(pwfile)}})
    assert cfg.target.resolve_password("target") == "from-file"
    assert "from-file" not in repr(cfg) or "password" not in repr(cfg)
    monkeypatch.setenv("PGB_PW", "from-env")
    cfg = parse_config({**BASE, "target": {"password_env": "PGB_PW"}})
    assert cfg.target.resolve_password("target") == "from-env"
    cfg = parse_config({**BASE, "target": {"password_env": "PGB_MISSING"}})
    with pytest.raises(ConfigError, match="PGB_MISSING is not set"):
        cfg.target.resolve_password("target")
    lit = parse_config({**BASE, "target": {"password": "lit"}})
    assert "lit" not in repr(lit) and "lit" not in str(lit.model_dump())


def test_two_password_sources_refused() -> None:
    with pytest.raises(ConfigError, match="set only one of"):
        parse_config({**BASE, "target": {"password": "a", "password_env": "B"}})


def test_table_filter_patterns() -> None:
    cfg = parse_config({**BASE, "sources": {"shop": {"databases": {"shop": "s"},
                        "tables": {"include": ["shop.*"], "exclude": ["shop.tmp_*"]}}}})
    f = cfg.source("shop").tables
    assert f.wants("shop", "orders") and not f.wants("shop", "tmp_x") and not f.wants("other", "orders")


def test_unknown_source_lists_known() -> None:
    with pytest.raises(ConfigError, match="configured: shop"):
        parse_config(BASE).source("nope")


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    example = Path(__file__).parents[2] / "docs" / "config.example.yaml"
    if example.exists():
        load_config(example)


def test_database_mapped_onto_the_catalog_schema_is_refused() -> None:
    import pytest as _pytest

    from pgbaton.config import parse_config as _parse
    from pgbaton.errors import ConfigError as _ConfigError

    base = {"target": {"host": "127.0.0.1", "dbname": "app", "catalog_schema": "pgbaton"}}
    with _pytest.raises(_ConfigError, match=r"sources\.shop\.databases\.shop: schema 'pgbaton' is pgbaton's catalog"):
        _parse({**base, "sources": {"shop": {"databases": {"shop": "pgbaton"}}}})
    with _pytest.raises(_ConfigError, match=r"sources\.two\.databases\.b: schema 'app' is already the target of "
                                            r"source 'one'"):
        _parse({**base, "sources": {"one": {"databases": {"a": "app"}, "server_id": 1},
                                    "two": {"databases": {"b": "app"}, "server_id": 2}}})
    ok = _parse({**base, "sources": {"one": {"databases": {"a": "app", "b": "app"}}}})
    assert ok.sources["one"].databases == {"a": "app", "b": "app"}


def test_example_configuration_loads_and_documents_every_key() -> None:
    """docs/config.example.yaml loads with the config model, names every key of every section
    (set or in a comment), and the values it gives the observe: section are the defaults."""
    import re
    from typing import get_args

    from pydantic import BaseModel

    from pgbaton.config import Config, ObserveConfig

    example = Path(__file__).parents[2] / "docs" / "config.example.yaml"
    text = example.read_text(encoding="utf-8")
    cfg = load_config(example)

    def models(tp: object) -> list[type[BaseModel]]:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return [tp]
        return [m for arg in get_args(tp) for m in models(arg)]

    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [Config]
    missing = []
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            if not re.search(rf"(^|[\s{{,#]){name}:", text, re.MULTILINE):
                missing.append(f"{model.__name__}.{name}")
            todo += models(field.annotation)
    assert not missing, f"keys not in docs/config.example.yaml: {missing}"

    defaults = ObserveConfig.model_validate({})
    for key in ("host", "port", "sample_seconds", "history_seconds"):
        assert getattr(cfg.observe, key) == getattr(defaults, key), key
    assert cfg.observe.token_env == "PGBATON_OBSERVE_TOKEN" and cfg.observe.token_file is None
    assert sorted(cfg.observe.ha_nodes) == ["node1", "node2"] and cfg.observe.ha_resource == "pgsql"
    assert cfg.observe.ha_nodes["node1"].password_env == "PG_MONITOR_PW"
    switch = cfg.migrations["to18"].switch
    for key in ("timeout_seconds", "pause_timeout_seconds", "max_lag_bytes"):
        assert getattr(switch, key) == type(switch).model_fields[key].default, key
