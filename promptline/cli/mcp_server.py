"""`promptline run --mcp`: the host speaks MCP on its own stdio, so any MCP client can use
the loaded plugins — every call still goes through the PluginManager, under policy.

    serve_mcp(manager, sys.stdin.buffer, sys.stdout.buffer)

- tools: every loaded tool, by its qualified name ``plugin.tool``;
- prompts: every prompt plugin's templates, as ``plugin.template`` (``{{ var }}`` variables
  become required arguments);
- resources: one per context plugin, ``promptline://context/<plugin>`` (its context for an
  empty query), and the template ``promptline://context/<plugin>?query={query}``.

Requests are answered concurrently (a slow tool does not hold up a listing), at most
MAX_INFLIGHT at once, each within its deadline (a tool call: the manager's call timeout plus
a grace; anything else: LIST_DEADLINE). Anything the host writes for people (logs, progress)
goes to stderr: stdout carries the protocol only.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, BinaryIO, TextIO

from promptline.loaders import INVALID_PARAMS, MCPBackend, RpcError, serve_mcp_concurrent, stream_io, tool_result_to_mcp
from promptline.policy import promptline_version

INSTRUCTIONS = ("Tools, prompts and context of the plugins loaded by PromptLine. Every call is "
                "decided by the PromptLine policy; refusals come back as tool errors.")
CONTEXT_SCHEME = "promptline://context/"
WORKERS = 8                 # requests worked on at once
MAX_INFLIGHT = 64           # requests accepted at once (more are refused with an error)
LIST_DEADLINE = 30.0        # seconds for a listing, a prompt or a resource
CALL_GRACE = 5.0            # seconds beyond the tool call timeout before the server answers itself
RESOURCE_NOT_FOUND = -32002


class ManagerBackend(MCPBackend):
    """MCP methods answered from a PluginManager."""

    name = "promptline"
    instructions = INSTRUCTIONS

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self.version = promptline_version()

    def capabilities(self) -> dict[str, Any]:
        return {"tools": {"listChanged": False}, "prompts": {"listChanged": False},
                "resources": {"listChanged": False, "subscribe": False}}

    # -- tools

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

    # -- prompts (templates of prompt plugins)

    def list_prompts(self) -> list[dict[str, Any]]:
        return [{"name": qualified, "description": t.description,
                 "arguments": [{"name": v, "required": True} for v in t.variables]}
                for qualified, t in self.manager.templates()]

    def get_prompt(self, name: str, arguments: dict[str, str]) -> dict[str, Any]:
        template = dict(self.manager.templates()).get(name)
        if template is None:
            raise RpcError(INVALID_PARAMS, f"unknown prompt `{name[:128]}`")
        try:
            text = template.render(**arguments)
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        return {"description": template.description,
                "messages": [{"role": "user", "content": {"type": "text", "text": text}}]}

    # -- resources (context plugins)

    def list_resources(self) -> list[dict[str, Any]]:
        return [{"uri": CONTEXT_SCHEME + pid, "name": pid, "mimeType": "text/plain",
                 "description": f"context from plugin `{pid}` (add `?query=...` to ask it something)"}
                for pid in self.manager.context_plugins()]

    def list_resource_templates(self) -> list[dict[str, Any]]:
        return [{"uriTemplate": CONTEXT_SCHEME + pid + "?query={query}", "name": pid, "mimeType": "text/plain",
                 "description": f"context from plugin `{pid}` for a query"}
                for pid in self.manager.context_plugins()]

    def read_resource(self, uri: str) -> dict[str, Any]:
        if not uri.startswith(CONTEXT_SCHEME):
            raise RpcError(RESOURCE_NOT_FOUND, f"unknown resource `{uri[:200]}`")
        parts = urllib.parse.urlsplit(uri)
        pid = parts.path.lstrip("/")
        query = urllib.parse.parse_qs(parts.query).get("query", [""])[0]
        if pid not in self.manager.context_plugins():
            raise RpcError(RESOURCE_NOT_FOUND, f"unknown resource `{uri[:200]}`")
        result = self.manager.context_of(pid, query)
        if not result.ok:
            raise RpcError(INVALID_PARAMS, result.content[:500])
        return {"contents": [{"uri": uri, "mimeType": "text/plain", "text": result.content}]}


def serve_mcp(manager: Any, stdin: BinaryIO | TextIO, stdout: BinaryIO | TextIO) -> None:
    """Answer MCP requests read from ``stdin`` on ``stdout`` until ``stdin`` closes."""
    next_line, send = stream_io(stdin, stdout)
    call_deadline = float(getattr(manager, "call_timeout", 30.0)) + CALL_GRACE

    def deadline(method: str) -> float:
        return call_deadline if method == "tools/call" else LIST_DEADLINE
    serve_mcp_concurrent(ManagerBackend(manager), next_line, send, workers=WORKERS,
                         max_inflight=MAX_INFLIGHT, deadline=deadline)


__all__ = ["ManagerBackend", "serve_mcp"]
