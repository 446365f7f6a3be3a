"""`pgbaton serve`: one small read-only HTTP server for people and for Prometheus.

    /             the status page (refreshes itself)
    /api/status   the latest look and the lag history, as JSON (what the page shows)
    /metrics      Prometheus metrics, read when scraped
    /healthz      "ok" (no token needed)

Loopback by default.  With a token configured every path but /healthz wants it, as
``Authorization: Bearer TOKEN`` or ``?token=TOKEN`` (the page passes on the one in its
own address).  Nothing is ever written to any server.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from pgbaton.config import Config
from pgbaton.observe import snapshot
from pgbaton.observe.history import LagHistory
from pgbaton.observe.metrics import PgbatonCollector
from pgbaton.observe.page import PAGE

log = logging.getLogger(__name__)


class Observer:
    """Takes looks at what pgbaton runs, at most one at a time, and keeps the lag history."""

    def __init__(self, cfg: Config, take: Callable[[Config], snapshot.Snapshot] | None = None) -> None:
        self.cfg = cfg
        self._take = take or snapshot.Looker()
        self._lock = threading.Lock()
        self._last: snapshot.Snapshot | None = None
        self.history = LagHistory(cfg.observe.history_seconds)

    def snapshot(self, max_age: float = 0.0) -> snapshot.Snapshot:
        with self._lock:
            if self._last is None or time.time() - self._last.taken_at > max_age:
                self._last = self._take(self.cfg)
                self.history.add(self._last)
            return self._last

    def run_sampler(self, stop: threading.Event) -> None:
        interval = self.cfg.observe.sample_seconds
        while not stop.is_set():
            try:
                self.snapshot(max_age=interval / 2)
            except Exception:  # the page must keep going; the next look may work
                log.exception("observe: sampling failed")
            stop.wait(interval)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_TOKEN_IN_QUERY = re.compile(r"([?&])token=[^&\s]*")


def _handler(observer: Observer, registry: CollectorRegistry, token: str | None) -> type[BaseHTTPRequestHandler]:
    refresh = min(observer.cfg.observe.sample_seconds, 5.0)

    class Handler(BaseHTTPRequestHandler):
        server_version = "pgbaton"

        def log_message(self, format: str, *args: Any) -> None:
            # the request line may carry ?token=...: never into a log line
            log.debug("serve: " + format, *(_TOKEN_IN_QUERY.sub(r"\1token=***", a) if isinstance(a, str) else a
                                            for a in args))

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def _authorized(self, query: dict[str, list[str]]) -> bool:
            if token is None:
                return True
            given = ""
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                given = auth[len("Bearer "):].strip()
            elif query.get("token"):
                given = query["token"][0]
            return hmac.compare_digest(given.encode(), token.encode())

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/healthz":
                self._send(200, b"ok\n", "text/plain; charset=utf-8")
                return
            if not self._authorized(query):
                self._send(401, b"a token is required: ?token=... or Authorization: Bearer ...\n",
                           "text/plain; charset=utf-8")
                return
            try:
                if url.path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif url.path == "/api/status":
                    snap = observer.snapshot(max_age=observer.cfg.observe.sample_seconds)
                    doc = {**snap.as_dict(), "history": observer.history.as_dict(), "refresh_seconds": refresh}
                    self._send(200, json.dumps(doc, default=str).encode(), "application/json")
                elif url.path in ("/", "/index.html"):
                    self._send(200, PAGE.replace("__REFRESH_MS__", str(int(refresh * 1000))).encode(),
                               "text/html; charset=utf-8")
                else:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")
            except Exception as exc:  # one failed request never stops the server
                log.exception("serve: %s failed", url.path)
                self._send(500, f"{exc.__class__.__name__}: {exc}\n".encode(), "text/plain; charset=utf-8")

    return Handler


class StatusServer:
    """The HTTP server and its sampler thread; ``start`` returns once it listens."""

    def __init__(self, cfg: Config, host: str | None = None, port: int | None = None,
                 take: Callable[[Config], snapshot.Snapshot] | None = None) -> None:
        self.observer = Observer(cfg, take)
        self.registry = CollectorRegistry(auto_describe=False)
        # the metrics read a look at most a second old: a scrape and the page at once share it
        self.registry.register(PgbatonCollector(lambda: self.observer.snapshot(max_age=1.0)))
        self.token = cfg.observe.token()
        self.httpd = ThreadingHTTPServer((host or cfg.observe.host, cfg.observe.port if port is None else port),
                                         _handler(self.observer, self.registry, self.token))
        self.httpd.daemon_threads = True
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def start(self) -> None:
        for target, name in ((self.httpd.serve_forever, "serve-http"),
                             (lambda: self.observer.run_sampler(self._stop), "serve-sampler")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for t in self._threads:
            t.join(timeout=10)

    def __enter__(self) -> StatusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
