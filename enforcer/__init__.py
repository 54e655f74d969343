"""The runtime: Enforcer.check(), audit-hook guards, prompts and the audit log.

Importing this package has no side effects; ``Enforcer.install()`` adds the audit hook.
"""

from ._enforcer import Enforcer, Guard, Snapshot, privileged
from ._environ import GuardedEnviron
from ._errors import PolicyViolation
from ._events import TABLE_ROWS as EVENT_TABLE
from ._grants import Grant, GrantError, GrantStore
from ._hook import current_plugin
from ._prompt import (Answer, CallbackPrompter, DenyPrompter, Prompter, TerminalPrompter,
                      escape_for_terminal, resolve_ask)

__all__ = ["EVENT_TABLE", "Answer", "CallbackPrompter", "DenyPrompter", "Enforcer", "Grant",
           "GrantError", "GrantStore", "Guard", "GuardedEnviron", "PolicyViolation", "Prompter",
           "Snapshot", "TerminalPrompter", "current_plugin", "escape_for_terminal", "privileged",
           "resolve_ask"]
