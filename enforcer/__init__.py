"""The runtime: Enforcer.check(), audit-hook guards, prompts and the audit log.

Importing this package has no side effects; ``Enforcer.install()`` adds the audit hook.
"""

from ._enforcer import Enforcer, Guard, Snapshot, privileged
from ._environ import GuardedEnviron
from ._errors import PolicyViolation
from ._events import TABLE_ROWS as EVENT_TABLE
from ._hook import current_plugin

__all__ = ["EVENT_TABLE", "Enforcer", "Guard", "GuardedEnviron", "PolicyViolation", "Snapshot",
           "current_plugin", "privileged"]
