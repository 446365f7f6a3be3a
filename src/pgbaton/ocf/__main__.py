"""``python -m pgbaton.ocf ACTION``: what the installed OCF agent executes."""

from __future__ import annotations

import logging
import os
import sys

from pgbaton.ocf.actions import ACTIONS
from pgbaton.ocf.agent import Invalid, validate
from pgbaton.ocf.codes import Rc
from pgbaton.ocf.env import Call
from pgbaton.ocf.metadata import meta_data

log = logging.getLogger("pgbaton.ocf")

USAGE = "usage: {prog} {{start|stop|monitor|promote|demote|notify|reload|meta-data|validate-all|methods}}"


def _setup_logging(call: Call) -> None:
    level = logging.DEBUG if os.environ.get("PGBATON_DEBUG") else logging.INFO
    fmt = f"pgbaton-ocf[{os.getpid()}] {call.resource} {call.action}: %(levelname)s %(message)s"
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    logfile = os.environ.get("PGBATON_OCF_LOG")
    if logfile:
        handlers.append(logging.FileHandler(logfile))
    logging.basicConfig(level=level, format="%(asctime)s " + fmt, handlers=handlers, force=True)


def run(action: str, call: Call | None = None) -> Rc:
    call = call or Call(action)
    if action == "meta-data":
        sys.stdout.write(meta_data(os.environ.get("OCF_TYPE", "pgsql")))
        return Rc.SUCCESS
    if action in ("methods", "usage"):
        sys.stdout.write("\n".join([*ACTIONS, "meta-data", "methods"]) + "\n")
        return Rc.SUCCESS
    handler = ACTIONS.get(action)
    if handler is None:
        sys.stderr.write(USAGE.format(prog="pgsql") + "\n")
        return Rc.ERR_UNIMPLEMENTED
    _setup_logging(call)
    try:
        agent = validate(call)
    except Invalid as exc:
        # a node without the software cannot run the resource: say so for probes and stops
        if exc.rc is Rc.ERR_INSTALLED and action == "stop":
            return Rc.SUCCESS
        if exc.rc is Rc.ERR_INSTALLED and action == "monitor" and call.interval_ms == 0:
            return Rc.NOT_RUNNING
        log.error("%s", exc)
        return exc.rc
    try:
        rc = handler(agent)
    except Exception:
        log.exception("%s failed", action)
        return Rc.ERR_GENERIC
    log.debug("%s -> %s", action, rc.name)
    return rc


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write(USAGE.format(prog="pgsql") + "\n")
        return int(Rc.ERR_ARGS)
    return int(run(args[0]))


if __name__ == "__main__":
    sys.exit(main())
