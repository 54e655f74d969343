"""The plugins: API, discovery, signatures, loaders and the PluginManager."""

from ._api import (ContextPlugin, LanguageModel, ModelPlugin, Plugin, PluginConfig, PromptPlugin,
                   PromptTemplate, RecoveryAction, Tool, ToolPlugin, ToolResult, ToolSpec,
                   invoke_tool, invoke_tool_sync, validate_arguments)
from ._approval import ApprovalStatus, ApprovalStore, ApprovalSubject
from ._discovery import DiscoveredPlugin, DiscoveryReport, discover
from ._errors import ApprovalRequired, LoaderError, SignatureError, ToolError
from ._loader import LoadContext, LoadedPlugin, Loader
from ._manager import LoadReport, PluginManager
from ._reload import watch_policy
from ._signing import generate_key, sign_plugin, verify_plugin

__all__ = [
    "ApprovalRequired", "ApprovalStatus", "ApprovalStore", "ApprovalSubject", "ContextPlugin",
    "DiscoveredPlugin", "DiscoveryReport", "LanguageModel", "LoadContext", "LoadReport", "LoadedPlugin",
    "Loader", "LoaderError", "ModelPlugin", "Plugin", "PluginConfig", "PluginManager", "PromptPlugin",
    "PromptTemplate", "RecoveryAction", "SignatureError", "Tool", "ToolError", "ToolPlugin", "ToolResult",
    "ToolSpec", "discover", "generate_key", "invoke_tool", "invoke_tool_sync", "sign_plugin",
    "validate_arguments", "verify_plugin", "watch_policy",
]
