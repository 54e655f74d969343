"""PromptLine plugin system: the public API for the core and for plugin authors.

Plugin authors::

    from promptline import ToolPlugin, Tool, ToolResult

The core::

    from promptline import PluginManager, Enforcer, Request, load_policy_set

Importing this package has no side effects: no hook is installed, no watcher started.
"""

from enforcer import Enforcer, PolicyViolation, privileged
from loaders import (ApprovalRequired, ApprovalStore, ContextPlugin, LanguageModel, LoaderError,
                     LoadReport, ModelPlugin, Plugin, PluginConfig, PluginManager, PromptPlugin,
                     PromptTemplate, RecoveryAction, SignatureError, Tool, ToolError, ToolPlugin,
                     ToolResult, ToolSpec, invoke_tool, invoke_tool_sync)
from policy import (Decision, Manifest, PolicyError, PolicySet, PromptLineError, Request, Verdict,
                    load_manifest, load_policy_set)

__all__ = [
    "ApprovalRequired", "ApprovalStore", "ContextPlugin", "Decision", "Enforcer", "LanguageModel",
    "LoadReport", "LoaderError", "Manifest", "ModelPlugin", "Plugin", "PluginConfig", "PluginManager",
    "PolicyError", "PolicySet", "PolicyViolation", "PromptLineError", "PromptPlugin", "PromptTemplate",
    "RecoveryAction", "Request", "SignatureError", "Tool", "ToolError", "ToolPlugin", "ToolResult",
    "ToolSpec", "Verdict", "invoke_tool", "invoke_tool_sync", "load_manifest", "load_policy_set",
    "privileged",
]
