"""The host side of what a sandboxed child sends on its own: decision reports for the
host's audit log, and asks for the host's prompter.

A child speaks only for itself: every report and ask is taken as this plugin's, whatever
plugin it names. An ask with anything odd is denied. A decision report is written to the
host's audit log marked ``reported_by: child`` only when it holds up: a policy version the
host knows this child runs (the host compiles the child's policy itself, once), rules that
exist in that policy with the effect and origin cited, a verdict those rules (or an answer
the host gave) explain, and the action and resource of the request it decided. Anything
else is a protocol error, recorded as such (a ``lifecycle`` record, event
``protocol_error``, naming what was reported and why it was refused).

Nothing is dropped: reports are handled in order by the connection's reader thread, each
written before the next is read, so a flooding child is slowed down by its own pipe
(back-pressure) and every report reaches the chain before the tool call's answer does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from promptline.policy import DecidedBy, Decision, Effect, Request, Verdict

from ._protocol import BOOT_ENV, DECISION_NOTIFICATION, check_version, versioned

MAX_LOG_LINE = 2000                # characters of one `notifications/message` logged
_MAX_POLICIES = 4                  # versions of the child's policy kept for checking reports
_RELEARN_S = 1.0                   # an unknown version recompiles the child's policy at most this often
log = logging.getLogger("promptline.process")


def child_policy(spec: Any) -> Callable[[], Any] | None:
    """A function compiling the policy a Python child compiles at start (from its launch
    spec), or None for a command plugin (it runs no enforcer and reports nothing)."""
    raw = getattr(spec, "env", {}).get(BOOT_ENV)
    if not raw:
        return None
    boot = json.loads(raw)

    def compile_it() -> Any:
        from promptline.policy import load_policy_set
        return load_policy_set(boot.get("policy_files") or (), [boot["manifest"]],
                               grants=boot.get("grants"), home=boot.get("home"),
                               plugin_facts={boot["plugin_id"]: boot.get("facts") or {}})
    return compile_it


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
                 on_tools_changed: Any = None, child_policy: Callable[[], Any] | None = None,
                 tool_caller: Any = None) -> None:
        self.id = plugin_id
        self._tool_caller = tool_caller
        self.version = version
        self.enforcer = enforcer
        self.audit = audit
        self._on_tools_changed = on_tools_changed
        self._child_policy = child_policy   # compiles the policy the child compiles
        self._policies: dict[str, frozenset] = {}   # version -> the refs of its rules
        self._policy_lock = threading.Lock()
        self._granted: set = set()          # grant rules this host handed the child
        self._learned_at = 0.0
        self.reports = {"recorded": 0, "protocol_errors": 0}

    def child_started(self) -> None:
        """A (new) child is starting: compile its policy aside now, so reports are checked
        against what it read at start."""
        if self._child_policy is not None:
            threading.Thread(target=self._learn_policy, name=f"promptline-policy-{self.id}",
                             daemon=True).start()

    def _learn_policy(self) -> str | None:
        try:
            ps = self._child_policy()
        except Exception as exc:  # noqa: BLE001 - a policy the host cannot compile: reports fail
            log.warning("plugin `%s`: cannot compile its policy to check its reports: %s", self.id, exc)
            return None
        refs = frozenset(r.ref for r in ps.rules)
        with self._policy_lock:
            if len(self._policies) >= _MAX_POLICIES:
                self._policies.pop(next(iter(self._policies)))
            self._policies[ps.version] = refs
        return ps.version

    def _refs(self, version: str) -> frozenset | None:
        with self._policy_lock:
            refs = self._policies.get(version)
        if refs is None:
            now = time.monotonic()
            if now - self._learned_at >= _RELEARN_S:
                self._learned_at = now
                if self._learn_policy() == version:   # the files changed since the last compile
                    with self._policy_lock:
                        refs = self._policies.get(version)
        return refs

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
                self._granted.add(grant)
        else:
            out["answer"] = "once" if allowed else "deny"
        return out

    def call_tool(self, params: Any) -> dict[str, Any]:
        """The child's plugin calls a dependency's tool: handed to the manager as this
        plugin's call (``PluginConfig.tool_caller``); a ToolResult dict back, never raises."""
        from promptline.sdk import ToolError, ToolResult
        try:
            check_version(params)
            name, args = params.get("name"), params.get("args")
            if type(name) is not str or len(name) > 200 or (args is not None and type(args) is not dict):
                raise ValueError("`name` must be a tool name and `args` an object")
        except ValueError as exc:
            return ToolResult.failure(ToolError(f"malformed call: {str(exc)[:200]}", kind="invalid-arguments")).to_dict()
        if self._tool_caller is None:
            return ToolResult.failure(ToolError("no host to call other plugins through", tool=name,
                                                kind="unknown-tool")).to_dict()
        result = self._tool_caller(name, args or {})
        return result.to_dict() if isinstance(result, ToolResult) else ToolResult.from_dict(result).to_dict()

    def record_decision(self, params: Any) -> None:
        """A decision the child's enforcer took: recorded, marked as the child's, when it
        holds up; else recorded as a protocol error. Never raises."""
        audit = self.audit
        if audit is None:
            return
        try:
            action, resource, decision, request = self._checked_report(params)
        except ValueError as exc:
            self._protocol_error(params, str(exc))
            return
        try:
            audit.decision(self.id, self.version, action, resource, decision,
                           request=request.to_dict(),
                           message="decided in the plugin's sandboxed process",
                           extra={"reported_by": "child"})
            self.reports["recorded"] += 1
        except Exception as exc:  # noqa: BLE001 - the host keeps running; say it loudly
            log.error("plugin `%s`: could not write its decision to the audit log: %s", self.id, exc)

    def _checked_report(self, params: Any) -> tuple[str, str, dict, Request]:
        """(action, resource, decision dict, request) of a report; ValueError says what is
        wrong with it."""
        if self._child_policy is None:
            raise ValueError("this plugin's process runs no enforcer: it has no decisions to report")
        if type(params) is not dict:
            raise ValueError("the report is not an object")
        check_version(params)
        action, resource = params.get("action"), params.get("resource")
        if type(action) is not str or type(resource) is not str:
            raise ValueError("`action` and `resource` must be strings")
        request = Request.from_dict(params.get("request"), plugin=self.id)
        if request.action != action:
            raise ValueError(f"the report's action `{action[:64]}` is not its request's "
                             f"(`{request.action}`)")
        if request.resource != resource:
            raise ValueError("the report's resource is not its request's")
        decision = Decision.from_dict(params.get("decision"))
        refs = self._refs(decision.policy_version)
        if refs is None:
            raise ValueError(f"policy version `{decision.policy_version[:40]}` is not one this "
                             f"plugin's process runs")
        for ref in decision.rules:
            if ref not in refs and ref not in self._granted:
                raise ValueError(f"rule `{ref.id[:80]}` ({ref.origin[:120]}) is not in policy "
                                 f"version {decision.policy_version}")
        _check_verdict(decision)
        return action, resource, decision.to_dict(), request

    def _protocol_error(self, params: Any, why: str) -> None:
        self.reports["protocol_errors"] += 1
        p = params if type(params) is dict else {}
        d = p.get("decision") if type(p.get("decision")) is dict else {}
        what = " ".join(str(x)[:200] for x in (p.get("action", "?"), p.get("resource", "?"),
                                                d.get("verdict", "?")))
        log.warning("plugin `%s`: decision report refused: %s", self.id, why[:300])
        try:
            self.audit.lifecycle(self.id, self.version, "protocol_error",
                                 f"decision report refused ({why[:300]}); it said: {what}")
        except Exception as exc:  # noqa: BLE001
            log.error("plugin `%s`: could not record a protocol error: %s", self.id, exc)


def _check_verdict(d: Decision) -> None:
    """The verdict must be one the cited rules explain (ValueError otherwise)."""
    effects = {r.effect for r in d.rules}
    if d.verdict is Verdict.ALLOW:
        if d.decided_by is DecidedBy.DEFAULT:
            raise ValueError("an allow by default (nothing allows by default)")
        if d.decided_by is DecidedBy.RULE and Effect.ALLOW not in effects:
            raise ValueError("an allow by rule that cites no allow rule")
        if d.decided_by is DecidedBy.MODE_AUDIT and not d.would_deny:
            raise ValueError("an audit-mode allow that says nothing would be denied")
    elif d.verdict is Verdict.DENY:
        if d.decided_by is DecidedBy.RULE and Effect.DENY not in effects:
            raise ValueError("a deny by rule that cites no deny rule")
    elif d.decided_by is DecidedBy.RULE and Effect.ASK not in effects:
        raise ValueError("an ask by rule that cites no ask rule")
