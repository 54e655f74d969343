"""PromptLine plugin system: the public API for the core and for plugin authors.

Plugin authors::

    from promptline import ToolPlugin, Tool, ToolResult

The core::

    from promptline import PluginManager, Enforcer, Request, load_policy_set

Importing this package has no side effects: no hook is installed, no watcher started, and
nothing is imported until it is used (PEP 562 lazy exports, listed in ``__init__.pyi``).
"""

import lazy_loader as _lazy

# PEP 562 lazy exports: the names and their modules are listed once, in __init__.pyi
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
