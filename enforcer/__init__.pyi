from ._enforcer import Enforcer, Guard, Snapshot, canonical_request, privileged
from ._environ import GuardedEnviron
from ._errors import PolicyViolation
from ._events import EVENT_TABLE
from ._files import write_atomic
from ._grants import Grant, GrantError, GrantStore
from ._hook import current_plugin
from ._prompt import (
                      Answer,
                      CallbackPrompter,
                      DenyPrompter,
                      Prompter,
                      TerminalPrompter,
                      escape_for_terminal,
                      resolve_ask,
)
from ._protocols import AuditSink, GrantLookup, RememberedGrant

__all__ = ["AuditSink", "GrantLookup", "RememberedGrant",
    "EVENT_TABLE",
    "Answer",
    "CallbackPrompter",
    "canonical_request",
    "current_plugin",
    "DenyPrompter",
    "Enforcer",
    "escape_for_terminal",
    "Grant",
    "GrantError",
    "GrantStore",
    "Guard",
    "GuardedEnviron",
    "PolicyViolation",
    "privileged",
    "Prompter",
    "resolve_ask",
    "Snapshot",
    "TerminalPrompter",
    "write_atomic",
]
