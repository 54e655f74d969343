"""Rebuild-then-swap: the one way a running host changes its policy (docs/design.md §9)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from promptline.policy import PolicyError


def rebuild_and_swap(build: Callable[[], Any], install: Callable[[Any], None], *, audit_log: Any = None,
                     current: Any = None) -> str:
    """Compile a new PolicySet with ``build()`` aside; only if that succeeds, ``install`` it
    (one reference swap). On error the current policy stays in force. Either way the outcome
    is recorded as a ``policy.reload`` audit record. Returns "" or why the reload failed."""
    try:
        new = build()
    except (PolicyError, OSError) as exc:
        if audit_log is not None:
            audit_log.policy_reload(False, getattr(current, "version", "") or "", str(exc))
        return str(exc)
    install(new)
    if audit_log is not None:
        audit_log.policy_reload(True, new.version)
    return ""
