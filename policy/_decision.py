"""Decisions: the immutable answer of a PolicySet to one request."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

MAX_RULES = 64            # rules one decision may cite on the wire
MAX_TEXT = 4096           # characters of any string field read from the wire


def _text(data: dict, key: str, default: str = "") -> str:
    value = data.get(key, default)
    if type(value) is not str:
        raise ValueError(f"`{key}` must be a string")
    return value[:MAX_TEXT]


def _enum(cls: type[enum.Enum], data: dict, key: str, default: str | None = None) -> Any:
    try:
        return cls(data.get(key, default))
    except ValueError:
        raise ValueError(f"`{key}` must be one of {', '.join(m.value for m in cls)}") from None


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

    @classmethod
    def from_dict(cls, data: Any) -> RuleRef:
        """The inverse of :meth:`to_dict`, validated (wire input is hostile): ValueError
        names the first bad field."""
        if type(data) is not dict:
            raise ValueError("a rule must be an object")
        mode = _text(data, "mode", "enforce") or "enforce"
        if mode not in ("enforce", "audit"):
            raise ValueError("`mode` must be enforce or audit")
        return cls(_text(data, "id"), _enum(Effect, data, "effect"), _text(data, "layer"),
                   _text(data, "origin"), _text(data, "message"), mode)


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

    @classmethod
    def from_dict(cls, data: Any) -> Decision:
        """The inverse of :meth:`to_dict`, validated (wire input is hostile): ValueError
        names the first bad field."""
        if type(data) is not dict:
            raise ValueError("a decision must be an object")
        rules, errors = data.get("rules", []), data.get("errors", [])
        if type(rules) is not list or len(rules) > MAX_RULES:
            raise ValueError(f"`rules` must be a list of at most {MAX_RULES}")
        if type(errors) is not list or len(errors) > MAX_RULES or not all(type(e) is str for e in errors):
            raise ValueError("`errors` must be a short list of strings")
        would_deny = data.get("would_deny", False)
        if type(would_deny) is not bool:
            raise ValueError("`would_deny` must be true or false")
        return cls(_enum(Verdict, data, "verdict"), _enum(DecidedBy, data, "decided_by", "rule"),
                   _text(data, "policy_version"), tuple(RuleRef.from_dict(r) for r in rules),
                   tuple(e[:MAX_TEXT] for e in errors), _text(data, "hint"), would_deny)
