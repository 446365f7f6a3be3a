"""The agent's meta-data XML, valid against ra-api-1.dtd."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from pgbaton.ocf.env import PARAMETERS

AGENT_VERSION = "1.0"

LONGDESC = (
    "Runs PostgreSQL (15 or later) as a promotable clone: one primary and streaming standbys. "
    "start always starts a standby (rebuilding an empty or unusable data directory with a "
    "physical slot and pg_basebackup, or repairing a diverged one with pg_rewind); only promote "
    "makes a primary, and only a node that holds every acknowledged commit (recorded in the CIB, "
    "or at least as advanced as the nodes that do), the most advanced first, unless forced. The "
    "primary turns synchronous replication on while a standby streams and off while none does, "
    "recording a standby as out of sync before it stops waiting for it."
)

# name, timeout (s), interval (s) or None, role or None
ACTIONS: tuple[tuple[str, int, int | None, str | None], ...] = (
    ("start", 300, None, None),
    ("stop", 120, None, None),
    ("monitor", 20, 15, "Promoted"),
    ("monitor", 20, 16, "Unpromoted"),
    ("promote", 120, None, None),
    ("demote", 120, None, None),
    ("notify", 60, None, None),
    ("reload", 20, None, None),
    ("meta-data", 5, None, None),
    ("validate-all", 10, None, None),
)


def meta_data(name: str = "pgsql") -> str:
    out = [
        '<?xml version="1.0"?>',
        '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">',
        f'<resource-agent name={quoteattr(name)} version="{AGENT_VERSION}">',
        f"<version>{AGENT_VERSION}</version>",
        f'<longdesc lang="en">{escape(LONGDESC)}</longdesc>',
        '<shortdesc lang="en">PostgreSQL primary/standby pair, by pgbaton</shortdesc>',
        "<parameters>",
    ]
    for p in PARAMETERS:
        out += [
            f'<parameter name="{p.name}" required="{int(p.required)}" unique="{int(p.unique)}">',
            f'<longdesc lang="en">{escape(p.long)}</longdesc>',
            f'<shortdesc lang="en">{escape(p.short)}</shortdesc>',
            f'<content type="{p.kind}" default={quoteattr(p.default)}/>',
            "</parameter>",
        ]
    out += ["</parameters>", "<actions>"]
    for action, timeout, interval, role in ACTIONS:
        attrs = f'name="{action}" timeout="{timeout}s"'
        if interval is not None:
            attrs += f' interval="{interval}s"'
        if role is not None:
            attrs += f' role="{role}"'
        out.append(f"<action {attrs}/>")
    out += ["</actions>", "</resource-agent>"]
    return "\n".join(out) + "\n"
