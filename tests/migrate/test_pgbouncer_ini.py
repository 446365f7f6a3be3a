"""Rewriting PgBouncer's [databases] entries: pure, no server."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pgbaton.migrate.switch_pgbouncer import format_connstr, parse_connstr, rewrite_databases, write_atomically

INI = """\
;; comment kept
[databases]
shop = host=old port=5432 dbname=shop user=app password='se cret''s' pool_size=20
crm=host=old port=5432
other = host=elsewhere port=5433
* = host=fallback

[pgbouncer]
listen_port = 6432
"""


def test_parse_and_format_round_trip() -> None:
    pairs = parse_connstr("host=old port=5432 password='se cret''s' dbname=shop")
    assert pairs == [("host", "old"), ("port", "5432"), ("password", "se cret's"), ("dbname", "shop")]
    assert parse_connstr(format_connstr(pairs)) == pairs


def test_rewrite_points_only_the_listed_databases_and_keeps_the_rest() -> None:
    out = rewrite_databases(INI, ["shop", "crm", "billing"], "new", 6000)
    lines = out.splitlines()
    assert lines[0] == ";; comment kept"
    assert "shop = host=new port=6000 dbname=shop user=app password='se cret''s' pool_size=20" in lines
    assert "crm = host=new port=6000 dbname=crm" in lines
    assert "other = host=elsewhere port=5433" in lines and "* = host=fallback" in lines
    # a database without an entry gets one, inside [databases]
    assert lines.index("billing = host=new port=6000 dbname=billing") < lines.index("[pgbouncer]")
    assert "listen_port = 6432" in lines
    assert rewrite_databases(out, ["shop", "crm", "billing"], "new", 6000) == out  # idempotent


def test_rewrite_without_a_databases_section_adds_one() -> None:
    out = rewrite_databases("[pgbouncer]\nlisten_port = 1", ["a"], "h", 1)
    assert out == "[pgbouncer]\nlisten_port = 1\n[databases]\na = host=h port=1 dbname=a\n"


def test_write_atomically_keeps_the_mode(tmp_path: Path) -> None:
    ini = tmp_path / "pgbouncer.ini"
    ini.write_text("old")
    ini.chmod(0o640)
    write_atomically(ini, "new")
    assert ini.read_text() == "new" and stat.S_IMODE(ini.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["pgbouncer.ini"]
