"""Install the OCF agent: a thin executable that runs this package's agent."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

from pgbaton.ocf.metadata import meta_data

log = logging.getLogger(__name__)

OCF_ROOT = Path("/usr/lib/ocf")
PROVIDER = "pgbaton"


def agent_script(python: str, name: str = "pgsql") -> str:
    """The executable: meta-data answered by the shell (fast, any user), everything else by Python."""
    return (
        "#!/bin/sh\n"
        "# pgbaton OCF resource agent (PostgreSQL promotable clone); written by `pgbaton ha install-agent`.\n"
        "if [ \"$1\" = \"meta-data\" ]; then\n"
        "cat <<'PGBATON_META_DATA'\n"
        f"{meta_data(name)}"
        "PGBATON_META_DATA\n"
        "exit 0\n"
        "fi\n"
        "# the agent acts on promote notifications only: the others (several per failover) cost no Python start\n"
        "if [ \"$1\" = \"notify\" ] && [ \"${OCF_RESKEY_CRM_meta_notify_operation:-}\" != \"promote\" ]; then\n"
        "exit 0\n"
        "fi\n"
        f"OCF_TYPE={shlex.quote(name)} exec {shlex.quote(python)} -m pgbaton.ocf \"$@\"\n"
    )


def install_agent(name: str = "pgsql", ocf_root: Path = OCF_ROOT, python: str | None = None) -> Path:
    """Write ``<ocf_root>/resource.d/pgbaton/<name>`` (mode 755); returns its path."""
    target = ocf_root / "resource.d" / PROVIDER / name
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    tmp = target.with_name(f".{name}.tmp")
    tmp.write_text(agent_script(python or sys.executable, name), encoding="utf-8")
    tmp.chmod(0o755)
    tmp.replace(target)
    log.info("installed OCF agent ocf:%s:%s at %s", PROVIDER, name, target)
    return target
