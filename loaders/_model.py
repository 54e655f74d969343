"""A model plugin's provider as the host sees it (small: the sandboxed child imports it too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelInfo:
    """A model plugin's provider as the host sees it: its name and whether it can be used now."""

    name: str
    available: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "available": self.available, "reason": self.reason}

    @classmethod
    def from_dict(cls, value: Any) -> ModelInfo:
        """Parse a child's answer; anything malformed is an unavailable model."""
        if not isinstance(value, dict):
            return cls("", False, "malformed answer")
        name, available, reason = value.get("name"), value.get("available"), value.get("reason", "")
        if not isinstance(name, str) or not isinstance(available, bool) or not isinstance(reason, str):
            return cls("", False, "malformed answer")
        return cls(name[:128], available, reason[:512])


def describe_model(provider: Any, available: Any) -> ModelInfo:
    """ModelInfo from a provider object and what ``is_available`` returned (only True counts)."""
    name = getattr(provider, "name", "")
    name = name[:128] if isinstance(name, str) else ""
    if available is True:
        return ModelInfo(name, True)
    return ModelInfo(name, False, "is_available() returned False" if available is False
                     else f"is_available() returned `{type(available).__name__}`, not a bool")


__all__ = ["ModelInfo", "describe_model"]
