"""Interop with the official MCP Python SDK, both ways:

- a server written with the SDK is loaded as a `command:` plugin, sandboxed, and its tools,
  prompts and resources are used through ProcessLoader;
- the SDK's client talks to `serve_mcp` (what `promptline run --mcp` serves).
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path

import pytest
from sandbox_helpers import load, write_command_plugin

mcp = pytest.importorskip("mcp")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def sdk_plugin(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sdk")
    (tmp / "secret.txt").write_text("not for plugins")
    root = write_command_plugin(tmp / "plugins", "sdk-interop", (FIXTURES / "sdk_server.py").read_text())
    loaded = load(root, tmp)
    loaded.extras["tmp"] = tmp
    yield loaded
    loaded.plugin.shutdown()


def test_sdk_server_tools_are_listed(sdk_plugin):
    names = {t.name for t in sdk_plugin.plugin.tools()}
    assert {"add", "fail", "read_file"} <= names
    add = next(t for t in sdk_plugin.plugin.tools() if t.name == "add")
    assert add.parameters["type"] == "object" and set(add.parameters["properties"]) == {"a", "b"}


def test_sdk_server_tool_call(sdk_plugin):
    r = sdk_plugin.plugin.call_tool("add", {"a": 2, "b": 40}, timeout=20)
    assert r.ok and r.content == "42"


def test_sdk_server_tool_error_is_an_error_result(sdk_plugin):
    r = sdk_plugin.plugin.call_tool("fail", {"reason": "on purpose"}, timeout=20)
    assert not r.ok and r.error.kind == "failed"
    assert "on purpose" in r.content or "fail" in r.content   # mcp 2 hides the exception text


def test_sdk_server_is_confined_by_landlock(sdk_plugin):
    r = sdk_plugin.plugin.call_tool("read_file", {"path": str(sdk_plugin.extras["tmp"] / "secret.txt")}, timeout=20)
    assert not r.ok and "not for plugins" not in r.content


def test_sdk_server_prompts_and_resources(sdk_plugin):
    templates = {t.name: t for t in sdk_plugin.plugin.templates()}
    assert "greet" in templates
    assert templates["greet"].render(name="Ada").startswith("Hello Ada")
    uris = [r.get("uri") for r in sdk_plugin.plugin.resources()]
    assert "note://motd" in uris
    assert sdk_plugin.plugin.read_resource("note://motd") == "sandboxed and happy"


HOST = textwrap.dedent('''
    import sys
    from promptline.sdk import ToolResult, ToolSpec
    from promptline.cli.mcp_server import serve_mcp

    class Manager:
        def list_tools(self):
            return [("demo.echo", ToolSpec("echo", "Echo text", {"type": "object",
                     "properties": {"text": {"type": "string"}}, "required": ["text"]}))]

        def call_tool(self, name, args):
            if args.get("text") == "deny":
                return ToolResult.failure("refused by policy", tool=name, kind="denied")
            return ToolResult.success("echo: " + args["text"], data={"n": len(args["text"])})

    serve_mcp(Manager(), sys.stdin.buffer, sys.stdout.buffer)
''')


def test_sdk_client_uses_serve_mcp(tmp_path):
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    async def main():
        params = StdioServerParameters(command=sys.executable, args=["-c", HOST], env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                ok = await session.call_tool("demo.echo", {"text": "hi"})
                denied = await session.call_tool("demo.echo", {"text": "deny"})
                return tools, ok, denied

    tools, ok, denied = asyncio.run(asyncio.wait_for(main(), 60))
    assert [t.name for t in tools.tools] == ["demo.echo"]
    assert _is_error(ok) is False and ok.content[0].text == "echo: hi"
    assert _is_error(denied) is True and "refused by policy" in denied.content[0].text


def _is_error(result):
    return result.is_error if hasattr(result, "is_error") else result.isError   # mcp 2 / mcp 1
