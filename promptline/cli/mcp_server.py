"""`promptline run --mcp`: the host speaks MCP on its own stdio, so any MCP client can use
the loaded plugins' tools — every call still goes through the PluginManager, under policy.

    serve_mcp(manager, sys.stdin.buffer, sys.stdout.buffer)

Tools are listed by their qualified name (``plugin.tool``). Anything the host writes for
people (logs, progress) must go to stderr: stdout carries the protocol only.
"""

from __future__ import annotations

from typing import Any, BinaryIO, TextIO

from promptline.loaders import INVALID_PARAMS, MCPBackend, RpcError, serve_mcp_loop, stream_io, tool_result_to_mcp
from promptline.policy import promptline_version

INSTRUCTIONS = ("Tools of the plugins loaded by PromptLine. Every call is decided by the "
                "PromptLine policy; refusals come back as tool errors.")


class ManagerBackend(MCPBackend):
    """MCP methods answered from a PluginManager (``list_tools``/``call_tool``)."""

    name = "promptline"
    instructions = INSTRUCTIONS

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self.version = promptline_version()

    def list_tools(self) -> list[dict[str, Any]]:
        out = []
        for qualified, spec in self.manager.list_tools():
            item = spec.to_mcp()
            item["name"] = qualified
            out.append(item)
        return out

    def call_tool(self, name: str, arguments: Any) -> dict[str, Any]:
        if not isinstance(arguments, dict):
            raise RpcError(INVALID_PARAMS, "`arguments` must be an object")
        known = {q for q, _ in self.manager.list_tools()}
        if name not in known:
            raise RpcError(INVALID_PARAMS, f"unknown tool `{name[:128]}`")
        return tool_result_to_mcp(self.manager.call_tool(name, arguments))


def serve_mcp(manager: Any, stdin: BinaryIO | TextIO, stdout: BinaryIO | TextIO) -> None:
    """Answer MCP requests read from ``stdin`` on ``stdout`` until ``stdin`` closes."""
    next_line, send = stream_io(stdin, stdout)
    serve_mcp_loop(ManagerBackend(manager), next_line, send)


__all__ = ["ManagerBackend", "serve_mcp"]
