"""``pgbaton ha ...``: the Pacemaker resource agent for PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import typer

from pgbaton.ocf.install import OCF_ROOT, PROVIDER, install_agent
from pgbaton.ocf.metadata import meta_data

app = typer.Typer(help="High availability: the OCF agent that runs PostgreSQL under Pacemaker.", no_args_is_help=True)


@app.command("install-agent")
def install_agent_cmd(
    name: str = typer.Option("pgsql", help="Agent name: the resource is ocf:pgbaton:NAME."),
    ocf_root: Path = typer.Option(OCF_ROOT, help="OCF root directory."),  # noqa: B008
    python: str = typer.Option("", help="Python interpreter the agent runs (default: this one)."),
) -> None:
    """Install the agent as ocf:pgbaton:NAME (needs root for the default OCF root)."""
    path = install_agent(name, ocf_root, python or None)
    typer.echo(f"installed ocf:{PROVIDER}:{name} -> {path}")


@app.command("meta-data")
def meta_data_cmd(name: str = typer.Option("pgsql", help="Agent name.")) -> None:
    """Print the agent's OCF meta-data."""
    typer.echo(meta_data(name), nl=False)
