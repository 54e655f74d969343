"""The host side of what a sandboxed child sends on its own: decision reports for the
host's audit log, and asks for the host's prompter.

A child speaks only for itself: every report and ask is taken as this plugin's, whatever
plugin it names, and anything malformed is refused (an ask) or logged and dropped (a report).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from promptline.policy import DecidedBy, Decision, Request, Verdict

from ._protocol import DECISION_NOTIFICATION, check_version, versioned

MAX_CHILD_DECISIONS_PER_S = 2000   # decision reports a child may send per second (a flood is cut)
MAX_LOG_LINE = 2000                # characters of one `notifications/message` logged
log = logging.getLogger("promptline.process")


def ask_arguments(plugin_id: str, params: Any) -> tuple[Request, Decision]:
    """A child's ``promptline/ask`` params as (Request, ASK Decision); raises ValueError
    on anything malformed. The request is always this plugin's."""
    check_version(params)
    request = Request.from_dict(params.get("request"), plugin=plugin_id)
    decision = Decision.from_dict(params.get("decision"))
    if decision.verdict is not Verdict.ASK:
        raise ValueError("only an `ask` decision is asked about")
    return request, decision


class HostBridge:
    """Answers one plugin's child: decision reports and asks.

    ``enforcer`` is the host's Enforcer (its ``ask`` reaches the user's prompter and grants);
    ``audit`` the host's audit sink (None: reports are not written).
    """

    def __init__(self, plugin_id: str, version: str, *, enforcer: Any, audit: Any,
                 on_tools_changed: Any = None) -> None:
        self.id = plugin_id
        self.version = version
        self.enforcer = enforcer
        self.audit = audit
        self._on_tools_changed = on_tools_changed
        self._budget = [MAX_CHILD_DECISIONS_PER_S, time.monotonic()]

    def notification(self, method: str, params: Any) -> None:
        if method == DECISION_NOTIFICATION:
            self.record_decision(params)
        elif method == "notifications/tools/list_changed":
            if self._on_tools_changed is not None:
                self._on_tools_changed()
        elif method == "notifications/message" and isinstance(params, dict):
            logging.getLogger(f"promptline.plugin.{self.id}").info("%s", str(params.get("data"))[:MAX_LOG_LINE])

    def answer_ask(self, params: Any) -> dict[str, Any]:
        """The child's enforcer met an ASK: the host's enforcer asks its prompter (and its
        GrantStore), always on behalf of this plugin whatever the child claims. Anything odd
        in what the child sent is a deny, never an exception."""
        deny = versioned({"answer": "deny", "verdict": "deny"})
        ask = getattr(self.enforcer, "ask", None)
        if not callable(ask):
            return deny
        try:
            request, decision = ask_arguments(self.id, params)
        except ValueError as exc:
            log.warning("plugin `%s`: malformed ask denied: %s", self.id, str(exc)[:200])
            return deny
        d = ask(self.id, request, decision)
        if d.verdict is Verdict.ALLOW:
            allowed = True
        elif d.verdict is Verdict.DENY:
            allowed = False
        else:
            return deny
        out: dict[str, Any] = versioned({"verdict": d.verdict.value, "decided_by": d.decided_by.value})
        grant = d.rules[-1] if d.rules and d.rules[-1] not in decision.rules and d.rules[-1].layer == "user" else None
        if d.decided_by is DecidedBy.PROMPT_ALWAYS or (d.decided_by is DecidedBy.RULE and grant is not None):
            # remembered (now or earlier): the child's decision says prompt-always, citing the grant
            out["answer"] = "always" if allowed else "never"
            if grant is not None:
                out["grant"] = grant.to_dict()
        else:
            out["answer"] = "once" if allowed else "deny"
        return out

    def record_decision(self, params: Any) -> None:
        """A decision the child's enforcer took; written under this plugin's id whatever the
        child claims (a child can only speak for itself)."""
        audit = self.audit
        if audit is None or not isinstance(params, dict):
            return
        action, resource, decision = params.get("action"), params.get("resource"), params.get("decision")
        request = params.get("request")
        budget = self._budget
        now = time.monotonic()
        if now - budget[1] >= 1.0:
            budget[0], budget[1] = MAX_CHILD_DECISIONS_PER_S, now
        if budget[0] <= 0:
            if budget[0] == 0:
                log.error("plugin `%s`: more than %d decision reports a second; dropping the rest "
                          "of this second", self.id, MAX_CHILD_DECISIONS_PER_S)
            budget[0] -= 1
            return
        budget[0] -= 1
        try:
            check_version(params)
        except ValueError as exc:
            log.warning("plugin `%s`: decision report refused: %s", self.id, exc)
            return
        if not (isinstance(action, str) and isinstance(resource, str) and isinstance(decision, dict)):
            log.warning("plugin `%s`: malformed decision report ignored", self.id)
            return
        request = dict(request, plugin=self.id) if isinstance(request, dict) else None
        try:
            audit.decision(self.id, self.version, action[:64], resource[:4096], decision, request=request,
                           message="decided in the plugin's sandboxed process")
        except Exception as exc:  # noqa: BLE001 - the host keeps running; say it loudly
            log.error("plugin `%s`: could not write its decision to the audit log: %s", self.id, exc)
