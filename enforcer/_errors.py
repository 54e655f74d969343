"""The enforcer's exception.

    PromptLineError (policy)
     └── PolicyViolation      also a PermissionError: a guarded call was refused by policy
"""

from __future__ import annotations

from promptline.policy import Decision, PromptLineError, Request


class PolicyViolation(PermissionError, PromptLineError):
    """A guarded call was refused. Carries the plugin, the request and the ``Decision``."""

    code = "policy-violation"

    def __init__(self, plugin: str, request: Request, decision: Decision) -> None:
        self.plugin = plugin
        self.request = request
        self.decision = decision
        super().__init__(render(plugin, request, decision))

    def __reduce__(self):
        return (type(self), (self.plugin, self.request, self.decision))

    def __str__(self) -> str:
        return render(self.plugin, self.request, self.decision)


def render(plugin: str, request: Request, decision: Decision) -> str:
    """``plugin `p` may not fs.read `/etc/shadow`: rule `x` (file:line): msg — to allow it: ...``"""
    verdict = "was not allowed to" if decision.verdict.value == "ask" else "may not"
    text = f"plugin `{plugin}` {verdict} {request.action} `{request.resource}`: {decision.reason()}"
    if decision.errors:
        text += f" (errors: {'; '.join(decision.errors)})"
    if decision.hint and not decision.rules:
        text += f" — to allow it, add to the plugin's manifest: {decision.hint}"
    return text
