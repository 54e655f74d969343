"""The enforcer's collaborators, named: what it needs from an audit sink and a grant store.

The host's :class:`~promptline.enforcer.audit.AuditLog` and :class:`GrantStore` are the
real ones; a sandboxed child passes its own (decisions forwarded to the host, asks answered
by it) through the same shapes.
"""

from __future__ import annotations

from typing import Any, Protocol

from promptline.policy import Effect, Request, RuleRef


class AuditSettings(Protocol):
    log_allows: bool


class AuditSink(Protocol):
    """Where decisions worth keeping go. Deny and ask records must be durable (or handed to
    the host) before ``decision`` returns."""

    settings: AuditSettings

    def decision(self, plugin_id: str, plugin_version: str, action: str, resource: str,
                 decision: Any, request: dict[str, Any] | None = None, message: str = "") -> None: ...


class RememberedGrant(Protocol):
    effect: str

    def rule_ref(self) -> RuleRef: ...


class GrantLookup(Protocol):
    """The user's remembered answers ("always" / "never")."""

    def lookup(self, plugin_id: str, request: Request) -> RememberedGrant | None: ...

    def remember(self, plugin_id: str, request: Request, effect: Effect,
                 asked_by: RuleRef | None = None) -> RememberedGrant: ...
