"""Decisions: the immutable answer of a PolicySet to one request."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Effect(str, enum.Enum):
    """What a rule says when it matches."""

    DENY = "deny"
    ASK = "ask"
    ALLOW = "allow"


class Verdict(str, enum.Enum):
    """What a decision says: kept apart from Effect (a rule is not a decision)."""

    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"


class DecidedBy(str, enum.Enum):
    RULE = "rule"
    PROMPT_ONCE = "prompt-once"
    PROMPT_ALWAYS = "prompt-always"
    DEFAULT = "default"
    MODE_AUDIT = "mode-audit"


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A rule as a decision cites it."""

    id: str
    effect: Effect
    layer: str
    origin: str  # file:line
    message: str = ""
    mode: str = "enforce"

    def to_dict(self) -> dict:
        return {"id": self.id, "effect": self.effect.value, "layer": self.layer,
                "origin": self.origin, "message": self.message, "mode": self.mode}


@dataclass(frozen=True, slots=True)
class Decision:
    """Verdict plus everything needed to explain and audit it.

    ``rules`` are the deciding rules (all matching rules of the deciding effect);
    ``errors`` are evaluation errors met on the way (a failing deny counts as matching);
    ``hint`` names the manifest capability that would grant a default deny;
    ``would_deny`` is set when audit mode allowed what enforce mode would have refused.
    """

    verdict: Verdict
    decided_by: DecidedBy
    policy_version: str
    rules: tuple[RuleRef, ...] = ()
    errors: tuple[str, ...] = ()
    hint: str = ""
    would_deny: bool = False

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW

    @property
    def rule(self) -> RuleRef | None:
        return self.rules[0] if self.rules else None

    def reason(self) -> str:
        """One line: why this verdict."""
        if self.rules:
            r = self.rules[0]
            why = f"rule `{r.id}` ({r.origin})"
            if r.message:
                why += f": {r.message}"
        elif self.decided_by is DecidedBy.DEFAULT:
            why = "no rule allows it (default deny)"
        else:
            why = self.decided_by.value
        if self.would_deny:
            why += " [audit mode: would be denied]"
        return why

    def to_dict(self) -> dict:
        return {"verdict": self.verdict.value, "decided_by": self.decided_by.value,
                "policy_version": self.policy_version,
                "rules": [r.to_dict() for r in self.rules], "errors": list(self.errors),
                "hint": self.hint, "would_deny": self.would_deny}
