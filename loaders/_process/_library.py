"""A library plugin as the sandboxed child serves it: a shared library with PromptLine's C
ABI (version 1, ``examples/native-tools/promptline_plugin.h``), dlopen'ed here — only ever
in a sandboxed child — and answered over MCP like every other process plugin.

    int promptline_abi(void);                                   -> 1
    char *promptline_describe(void);                            -> {"name", "version"}
    char *promptline_list_tools(void);                          -> {"tools": [...]}
    char *promptline_call_tool(const char *name, const char *args_json)  -> a ToolResult dict
    void promptline_free(char *);                               frees each returned string

What the library returns is hostile input: capped, parsed as JSON, coerced into a ToolResult.
A crash kills this child only; the host turns it into an error result and a restart.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from promptline.sdk import (
    TOOL_NAME,
    ToolError,
    ToolResult,
    ToolSpec,
    coerce_result,
    compiled_validator,
    error_result,
    schema_key,
    validate_arguments,
)

from . import _jsonrpc as rpc
from ._server import MCPBackend, tool_result_to_mcp

ABI_VERSION = 1
MAX_OUTPUT = 16 * 1024 * 1024      # bytes of one returned string
MAX_TOOLS = 1000
SYMBOLS = ("promptline_abi", "promptline_describe", "promptline_list_tools", "promptline_call_tool",
           "promptline_free")


class LibraryError(Exception):
    """The library does not follow the ABI (missing symbol, other version, bad JSON)."""


class _SpecTool:
    """Enough of a Tool for ``validate_arguments``."""

    def __init__(self, spec: ToolSpec) -> None:
        self.name, self.parameters = spec.name, spec.parameters


class LibraryPlugin:
    """One loaded library: its description and tools; calls go through the C ABI."""

    def __init__(self, path: str, guard: Callable[[], AbstractContextManager[Any]]) -> None:
        self.guard = guard
        with guard():                       # the dlopen is the plugin's native.load
            lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
            missing = [s for s in SYMBOLS if not hasattr(lib, s)]
            if missing:
                raise LibraryError(f"the library lacks {', '.join(missing)} (PromptLine C ABI {ABI_VERSION})")
            lib.promptline_abi.restype = ctypes.c_int
            lib.promptline_abi.argtypes = []
            for name in ("promptline_describe", "promptline_list_tools"):
                getattr(lib, name).restype = ctypes.c_void_p
                getattr(lib, name).argtypes = []
            lib.promptline_call_tool.restype = ctypes.c_void_p
            lib.promptline_call_tool.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
            lib.promptline_free.restype = None
            lib.promptline_free.argtypes = [ctypes.c_void_p]
            abi = lib.promptline_abi()
            if abi != ABI_VERSION:
                raise LibraryError(f"the library speaks C ABI version {abi}, this PromptLine speaks {ABI_VERSION}")
            self.lib = lib
            info = self._json(lib.promptline_describe())
            listed = self._json(lib.promptline_list_tools())
        if not isinstance(info, dict) or not isinstance(listed, dict) or not isinstance(listed.get("tools"), list):
            raise LibraryError("promptline_describe/promptline_list_tools returned malformed JSON")
        self.name = str(info.get("name", ""))[:128]
        self.version = str(info.get("version", ""))[:64]
        self.tools: dict[str, ToolSpec] = {}
        for item in listed["tools"][:MAX_TOOLS]:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not TOOL_NAME.match(item["name"]):
                raise LibraryError(f"promptline_list_tools lists a tool without a valid name: {str(item)[:80]}")
            schema = item.get("inputSchema") or {"type": "object"}
            try:
                compiled_validator(schema_key(schema))
            except (TypeError, ValueError) as exc:
                raise LibraryError(f"tool `{item['name']}` has an invalid inputSchema: {str(exc)[:200]}") from None
            desc = item.get("description") if isinstance(item.get("description"), str) else ""
            self.tools[item["name"]] = ToolSpec(item["name"], desc, schema)

    def _json(self, ptr: int | None) -> Any:
        """Read, free and parse one returned string (None for a NULL return)."""
        if not ptr:
            return None
        try:
            data = ctypes.string_at(ptr)
        finally:
            self.lib.promptline_free(ptr)
        if len(data) > MAX_OUTPUT:
            raise LibraryError(f"the library returned more than {MAX_OUTPUT} bytes")
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise LibraryError(f"the library returned malformed JSON: {exc}") from None

    def call_tool(self, name: str, arguments: Any) -> ToolResult:
        spec = self.tools.get(name)
        if spec is None:
            return error_result(ToolError(f"unknown tool `{name[:64]}`", tool=name, kind="invalid-arguments"), tool=name)
        try:
            clean = validate_arguments(_SpecTool(spec), arguments)
        except ToolError as exc:
            return ToolResult(False, exc.message, None, exc)
        payload = json.dumps(clean, ensure_ascii=False).encode("utf-8")
        with self.guard():
            try:
                value = self._json(self.lib.promptline_call_tool(name.encode("utf-8"), payload))
            except LibraryError as exc:
                return ToolResult.failure(ToolError(str(exc), tool=name, kind="malformed-result"))
        if value is None:
            return ToolResult.failure(ToolError("the library returned no result (NULL)", tool=name, kind="failed"))
        return coerce_result(value, tool=name)


class LibraryBackend(MCPBackend):
    """MCP methods answered by one :class:`LibraryPlugin`."""

    def __init__(self, plugin: LibraryPlugin, plugin_id: str, version: str) -> None:
        self.plugin = plugin
        self.name = plugin_id
        self.version = version

    def list_tools(self) -> list[dict[str, Any]]:
        return [s.to_mcp() for s in self.plugin.tools.values()]

    def call_tool(self, name: str, arguments: Any) -> dict[str, Any]:
        if not isinstance(arguments, dict):
            raise rpc.RpcError(rpc.INVALID_PARAMS, "`arguments` must be an object")
        return tool_result_to_mcp(self.plugin.call_tool(name, arguments))


__all__ = ["ABI_VERSION", "LibraryBackend", "LibraryError", "LibraryPlugin"]
