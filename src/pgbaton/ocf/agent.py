"""The agent's context: configuration, cluster attributes and the time budget of one call."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import time
from dataclasses import dataclass, field

from pgbaton.ha.config import NodeConfig
from pgbaton.ocf.attrs import Attributes, attributes_for
from pgbaton.ocf.codes import Rc
from pgbaton.ocf.env import Call, node_config

log = logging.getLogger(__name__)

TOOLS = ("pg_ctl", "pg_controldata", "pg_basebackup", "pg_rewind", "pg_isready", "postgres")


@dataclass
class Agent:
    call: Call
    cfg: NodeConfig
    attrs: Attributes
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def from_call(cls, call: Call) -> Agent:
        return cls(call, node_config(call.env), attributes_for(call.resource, call.env))

    def remaining(self, margin: float = 5.0) -> float:
        """Seconds left of this action's timeout, keeping a margin to report back."""
        return max(self.call.timeout_s - (time.monotonic() - self.started) - margin, 1.0)

    @property
    def probe(self) -> bool:
        return self.call.interval_ms == 0


class Invalid(Exception):
    def __init__(self, rc: Rc, message: str) -> None:
        super().__init__(message)
        self.rc = rc


def validate(call: Call) -> Agent:
    """Parse and check the configuration; raises Invalid with the OCF code to return."""
    try:
        agent = Agent.from_call(call)
    except (ValueError, KeyError) as exc:
        raise Invalid(Rc.ERR_CONFIGURED, f"invalid parameters: {exc}") from None
    cfg = agent.cfg
    missing = [t for t in TOOLS if not os.access(cfg.bindir / t, os.X_OK)]
    if missing:
        raise Invalid(Rc.ERR_INSTALLED, f"missing in {cfg.bindir}: {', '.join(missing)}")
    try:
        pwd.getpwnam(cfg.system_user)
    except KeyError:
        raise Invalid(Rc.ERR_INSTALLED, f"no system user {cfg.system_user}") from None
    if not shutil.which("runuser") and os.geteuid() == 0:
        raise Invalid(Rc.ERR_INSTALLED, "runuser is missing")
    if not cfg.nodes:
        raise Invalid(Rc.ERR_CONFIGURED, "node_hosts is empty")
    if cfg.node not in cfg.nodes:
        raise Invalid(Rc.ERR_CONFIGURED, f"this node {cfg.node!r} is not in node_hosts ({', '.join(cfg.nodes)})")
    if "OCF_RESKEY_CRM_meta_clone_max" in call.env and call.env.get("OCF_RESKEY_CRM_meta_notify") != "true":
        raise Invalid(Rc.ERR_CONFIGURED, "the promotable clone needs meta notify=true")
    return agent
