"""One child's wall on the host: the egress proxy's decisions and the seccomp supervisor,
both speaking for one plugin to the host's Enforcer and audit log.

:func:`make_wall` is called for every start of the child; the Wall it returns owns the
channel the child inherits. What the proxy decides is an ordinary ``net.connect`` request
(``Enforcer.check``: the same PolicySet decision as the in-child enforcer and the audit
hook; its denies are logged by the Enforcer). Refusals that are no policy decision
(malformed proxy requests, unknown names, seccomp refusals) are written here.
"""

from __future__ import annotations

import logging
from typing import Any

from promptline.policy import DecidedBy, Decision, Request, Verdict

from ._egress import Wall
from ._netns import probe
from ._supervisor import Supervisor

log = logging.getLogger("promptline.process")
_probe_result: list[str | None] = []


def netns_problem() -> str | None:
    """Why this host cannot give children a network namespace (None: it can); probed once."""
    if not _probe_result:
        try:
            _probe_result.append(probe())
        except OSError as exc:
            _probe_result.append(str(exc))
    return _probe_result[0]


def make_wall(plugin_id: str, version: str, *, enforcer: Any, audit: Any, exec_guard: bool) -> Wall:
    enforcer_logs = audit is not None and getattr(enforcer, "audit_log", None) is audit

    def record(action: str, resource: str, reason: str) -> None:
        log.warning("plugin `%s`: %s `%s` refused: %s", plugin_id, action, resource[:200], reason)
        if audit is None:
            return
        d = Decision(Verdict.DENY, DecidedBy.DEFAULT, "", (), (reason,))
        audit.decision(plugin_id, version, action, resource, d.to_dict(),
                       message=f"refused by the sandbox: {reason}")

    def decide(host: str, port: int) -> str | None:
        request = Request("net.connect", plugin_id, host=host, port=port, scheme="tcp")
        check = getattr(enforcer, "check", None)
        if not callable(check):
            record("net.connect", f"{host}:{port}", "no host enforcer to decide egress")
            return "no host enforcer to decide egress"
        d = check(plugin_id, request)
        if d.allowed:
            return None
        why = f"{plugin_id} may not net.connect {host}:{port}"
        if not enforcer_logs and audit is not None:
            audit.decision(plugin_id, version, "net.connect", f"{host}:{port}", d.to_dict(),
                           request=request.to_dict(), message="decided by the host's egress proxy")
        return why

    def on_listener(fd: int) -> None:
        Supervisor(plugin_id, fd, record=record, exec_once=exec_guard and wall.starter_execs)

    wall = Wall(plugin_id, decide=decide, record=record, on_listener=on_listener)
    return wall
