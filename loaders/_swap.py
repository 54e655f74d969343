"""Rebuild-then-swap: the one way a running host changes its policy (docs/design.md §9)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from promptline.policy import PolicyError

STALE = "the policy files changed while they were compiled; compiling again"
"""``rebuild_and_swap``'s answer when ``settled()`` said the files changed meanwhile."""


def rebuild_and_swap(build: Callable[[], Any], install: Callable[[Any], None], *, audit_log: Any = None,
                     current: Any = None, settled: Callable[[], bool] | None = None) -> str:
    """Compile a new PolicySet with ``build()`` aside; only if that succeeds (and
    ``settled()``, asked after the build, confirms the files did not change meanwhile),
    ``install`` it (one reference swap). On any error the current policy stays in force.
    The outcome is recorded as a ``policy_reload`` audit record. Returns "" when the new
    policy is in force, ``STALE`` (nothing recorded, nothing changed) when the files changed
    during the build, else why the reload failed."""
    try:
        new = build()
    except Exception as exc:  # noqa: BLE001 - whatever a hostile file makes the compiler raise
        why = str(exc) if isinstance(exc, (PolicyError, OSError)) else (
            f"cannot compile the policy ({type(exc).__name__}: {str(exc)[:200]}) — fix the "
            f"file and save it again")
        _record(audit_log, False, getattr(current, "version", "") or "", why)
        return why
    if settled is not None and not settled():
        return STALE
    install(new)
    _record(audit_log, True, new.version, "")
    return ""


def _record(audit_log: Any, ok: bool, version: str, error: str) -> None:
    if audit_log is None:
        return
    try:
        audit_log.policy_reload(ok, version, error)
    except Exception:  # noqa: BLE001 - the outcome stands; the writer counts its own errors
        import logging
        logging.getLogger("promptline.reload").exception("could not record the policy reload")
