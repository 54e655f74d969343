"""The runtime: Enforcer.check(), audit-hook guards, prompts and the audit log.

Importing this package has no side effects; ``Enforcer.install()`` adds the audit hook.
"""

import lazy_loader as _lazy

# PEP 562 lazy exports: the names and their modules are listed once, in __init__.pyi
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
