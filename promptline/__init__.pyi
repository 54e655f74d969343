from .enforcer import Enforcer, PolicyViolation, privileged
from .loaders import (
                      ApprovalRequired,
                      ApprovalStore,
                      LoaderError,
                      LoadReport,
                      ManagerConfig,
                      PluginManager,
                      SignatureError,
)
from .policy import (
                      Decision,
                      Manifest,
                      PolicyError,
                      PolicySet,
                      PromptLineError,
                      Request,
                      Verdict,
                      load_manifest,
                      load_policy_set,
)
from .sdk import (
                      ContextPlugin,
                      LanguageModel,
                      ModelPlugin,
                      Plugin,
                      PluginConfig,
                      PromptPlugin,
                      PromptTemplate,
                      RecoveryAction,
                      Tool,
                      ToolError,
                      ToolPlugin,
                      ToolResult,
                      ToolSpec,
                      invoke_tool,
                      invoke_tool_sync,
)

__all__ = [
    "ApprovalRequired", "ApprovalStore", "ContextPlugin", "Decision", "Enforcer", "LanguageModel",
    "LoadReport", "LoaderError", "ManagerConfig", "Manifest", "ModelPlugin", "Plugin", "PluginConfig", "PluginManager",
    "PolicyError", "PolicySet", "PolicyViolation", "PromptLineError", "PromptPlugin", "PromptTemplate",
    "RecoveryAction", "Request", "SignatureError", "Tool", "ToolError", "ToolPlugin", "ToolResult",
    "ToolSpec", "Verdict", "invoke_tool", "invoke_tool_sync", "load_manifest", "load_policy_set",
    "privileged",
]
