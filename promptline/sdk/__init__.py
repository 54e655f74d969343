"""The plugin-author API: what a plugin imports to be a PromptLine plugin.

    from promptline import Tool, ToolPlugin, ToolResult     # the facade re-exports these

A leaf package: it depends only on ``promptline.policy``'s errors, so a sandboxed child can
import it without the engine. ``bind_manifest``, ``coerce_result``, ``tool_spec`` and the
schema helpers are for hosts and loaders.
"""

import lazy_loader as _lazy

# PEP 562 lazy exports: the names and their modules are listed once, in __init__.pyi
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
