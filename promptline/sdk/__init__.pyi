from ._api import (EMPTY_OBJECT_SCHEMA, MAX_ERROR_CHARS, MAX_RESULT_CHARS, MAX_TOOL_RETRIES, TOOL_NAME,
                   ContextPlugin, LanguageModel, ModelPlugin, Plugin, PluginConfig, PromptPlugin,
                   PromptTemplate, RecoveryAction, Tool, ToolPlugin, ToolResult, ToolSpec, bind_manifest,
                   call_with_recovery, coerce_result, compiled_validator, error_result, invoke_tool, invoke_tool_sync,
                   maybe_await, plugin_types, schema_key, tool_spec, validate_arguments)
from ._errors import LoaderError, ToolError
__all__ = [
    "EMPTY_OBJECT_SCHEMA", "MAX_ERROR_CHARS", "MAX_RESULT_CHARS", "MAX_TOOL_RETRIES", "TOOL_NAME",
    "ContextPlugin", "LanguageModel", "LoaderError", "ModelPlugin", "Plugin", "PluginConfig",
    "PromptPlugin", "PromptTemplate", "RecoveryAction", "Tool", "ToolError", "ToolPlugin", "ToolResult",
    "ToolSpec", "bind_manifest", "call_with_recovery", "coerce_result", "compiled_validator", "error_result", "invoke_tool",
    "invoke_tool_sync", "maybe_await", "plugin_types", "schema_key", "tool_spec", "validate_arguments",
]
