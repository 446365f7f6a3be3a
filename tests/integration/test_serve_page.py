"""The status page in a real browser (headless Chromium) while a replica runs: it loads,
its script fetches the status and draws what the replica, the tables and an HA node
show.  A screenshot is kept in the test's temporary folder."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pgbaton.config import Config
from pgbaton.observe.server import StatusServer
from pgbaton.replica.init import add_source, init_replica
from pgbaton.sandbox.servers import MariaDBServer, PostgresServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/bootstrap.sh does)")
LONG = "shipments_with_a_name_too_long_for_a_narrow_column"


class Rows(HTMLParser):
    """The text of each cell of each <tr> that has data-* attributes, keyed by them."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[dict[str, str], list[str]]] = []
        self.body: dict[str, str] = {}
        self._row: tuple[dict[str, str], list[str]] | None = None
        self._cell: list[str] | None = None
        self.text: list[str] = []      # what a reader sees (no script or style)
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("script", "style"):
            self._hidden += 1
        if tag == "body":
            self.body = a
        if tag == "tr" and any(k.startswith("data-") for k in a):
            self._row = ({k: v for k, v in a.items() if k.startswith("data-")}, [])
            self.rows.append(self._row)
        if tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row[1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def find(self, **attrs: str) -> list[str]:
        want = {f"data-{k}": v for k, v in attrs.items()}
        for a, cells in self.rows:
            if all(a.get(k) == v for k, v in want.items()):
                return cells
        raise AssertionError(f"no row with {want}: {self.rows}")


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-dev-shm-usage", "--window-size=1400,1000", "--virtual-time-budget=8000", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def cfg(pg_db: str, my_db: str, mariadb: MariaDBServer, pg15: PostgresServer) -> Config:
    my_exec(mariadb, my_db, [
        f"CREATE TABLE {LONG} (id int PRIMARY KEY, weight int NOT NULL)",
        "CREATE TABLE carriers (id int PRIMARY KEY, name varchar(40))",
        "INSERT INTO carriers VALUES (1, 'post'), (2, 'rail')",
    ])
    base = make_config(pg_db, mariadb, my_db, source="shop")
    data = base.model_dump(mode="json", exclude_none=True)
    data["observe"] = {"port": 0, "sample_seconds": 0.5,
                       "ha_nodes": {"node1": {"host": "127.0.0.1", "port": pg15.port, "user": "postgres"}}}
    c = Config.model_validate(data)
    add_source(c, "shop")
    init_replica(c, "shop", show_progress=False)
    return c


def test_page_shows_a_running_replica(cfg: Config, my_db: str, mariadb: MariaDBServer, tmp_path: Path) -> None:
    with ReplicaThread(cfg, "shop"), StatusServer(cfg) as server:
        my_exec(mariadb, my_db, [f"INSERT INTO {LONG} VALUES ({i}, {i * 10})" for i in range(1, 31)])
        my_exec(mariadb, my_db, ["UPDATE carriers SET name = 'road' WHERE id = 2"])
        wait_until(lambda: caught_up(cfg, "shop"), what="replica caught up")
        # a few samples of lag history for the chart
        wait_until(lambda: len(server.observer.history.as_dict().get("replica/shop", [])) >= 3, 30, "history")
        wait_until(lambda: server.observer.snapshot(max_age=0).sources[0].status["rows_replayed"] == 31, 10)

        proc = _chromium("--dump-dom", server.url)
        assert proc.returncode == 0, proc.stderr[-2000:]
        page = Rows()
        page.feed(proc.stdout)
        assert page.body.get("data-loaded") == "yes", proc.stdout[:3000]
        text = " ".join(page.text)
        assert "could not be read" not in text and "cannot load" not in text, text

        source = page.find(source="shop")
        assert source[0] == "shop" and source[1] == "running"
        assert source[2] == "0.000"                       # read lag s
        assert source[5] == "0"                           # pending changes
        assert source[6] == "31"                          # rows replayed
        assert page.find(table=f"{my_db}.{LONG}")[:4] == [f"{my_db}.{LONG}", f"app.{LONG}", "replicating", "30"]
        assert page.find(table=f"{my_db}.carriers")[2:4] == ["replicating", "1"]
        node = page.find(node="node1")
        assert node[1:3] == ["up", "primary"] and node[3] == "1"
        assert "no migration configured" in text
        assert "<polyline" in proc.stdout                 # the lag chart was drawn

        shot = tmp_path / "status-page.png"
        proc = _chromium(f"--screenshot={shot}", server.url)
        assert proc.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
        print(f"screenshot of the status page: {shot}")


def test_page_with_a_token(cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("page-token-123\n")
    data = cfg.model_dump(mode="json", exclude_none=True)
    data["observe"] = {**data["observe"], "token_file": str(token_file)}
    with StatusServer(Config.model_validate(data)) as server:
        proc = _chromium("--dump-dom", server.url)
        assert "token is required" in proc.stdout
        proc = _chromium("--dump-dom", server.url + "?token=page-token-123")
        page = Rows()
        page.feed(proc.stdout)
        assert page.body.get("data-loaded") == "yes"
        assert page.find(source="shop")[1] == "initialized"
