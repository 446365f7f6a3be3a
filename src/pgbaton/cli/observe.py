"""``pgbaton serve`` and ``pgbaton metrics ...``: the status page and Prometheus metrics."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Annotated

import typer

from pgbaton.cli.context import JsonOpt, state
from pgbaton.cli.output import emit, out, warn

app = typer.Typer(no_args_is_help=True, help="Prometheus metrics of the replica, the migrations and the HA nodes.")

HostOpt = Annotated[str | None, typer.Option(help="Listen address [default: observe.host, 127.0.0.1].")]
PortOpt = Annotated[int | None, typer.Option(help="Listen port, 0 for any free one [default: observe.port, 9481].")]


def serve(host: str | None = None, port: int | None = None) -> None:
    """Serve the status page and /metrics until SIGTERM or Ctrl-C."""
    from pgbaton.observe.server import StatusServer, is_loopback

    cfg = state.config()
    server = StatusServer(cfg, host, port)
    listen = str(server.httpd.server_address[0])
    if not is_loopback(listen) and server.token is None:
        warn(f"listening on {listen} without a token: anyone who can reach it reads the status "
             "(set observe.token_env or observe.token_file)")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with server:
        out.print(f"pgbaton serve: status page {server.url}  metrics {server.url}metrics"
                  + ("  (token required)" if server.token else ""), soft_wrap=True, highlight=False)
        sys.stdout.flush()
        stop.wait()


@app.command("serve")
def metrics_serve(host: HostOpt = None, port: PortOpt = None) -> None:
    """Serve /metrics (and the status page) until stopped: the same server as `pgbaton serve`."""
    serve(host, port)


@app.command("show")
def metrics_show(as_json: JsonOpt = False) -> None:
    """Print the metrics once in Prometheus' text format (for node_exporter's textfile
    collector, see docs/observability.md), or with --json everything read. Exit 1 when a
    part could not be read."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest

    from pgbaton.observe.metrics import PgbatonCollector
    from pgbaton.observe.snapshot import take

    cfg = state.config()
    snap = take(cfg)
    if as_json:
        failed = "; ".join(f"{part}: {why}" for part, why in snap.errors.items()) or None
        # a part not read is a failure document's ok/error/type, with what was read beside it
        emit({"ok": not snap.errors, "error": failed, "type": "PartsNotRead" if failed else None,
              **snap.as_dict()}, True)
    else:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(PgbatonCollector(lambda: snap))
        sys.stdout.write(generate_latest(registry).decode())
    if snap.errors:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    @root.command("serve")
    def serve_cmd(host: HostOpt = None, port: PortOpt = None) -> None:
        """Serve the read-only status page and Prometheus /metrics until SIGTERM or Ctrl-C
        (loopback by default; see observe: in the configuration)."""
        serve(host, port)

    root.add_typer(app, name="metrics")
