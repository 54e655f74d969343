"""`promptline run --mcp` in a subprocess, driven by the official MCP Python client: tools,
prompts (templates of prompt plugins), resources (context plugins), and concurrency — a slow
tool does not hold up a listing or another plugin's call."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

mcp = pytest.importorskip("mcp")

PLUGINS = {
    "slow": ("[tool]", '''
        import time
        from promptline import Tool, ToolPlugin, ToolResult
        class Slow(Tool):
            name = "wait"
            parameters = {"type": "object", "properties": {"s": {"type": "number"}}, "required": ["s"]}
            def execute(self, args):
                time.sleep(args["s"])
                return ToolResult.success("waited")
        class Demo(ToolPlugin):
            def tools(self):
                return [Slow()]
        '''),
    "fast": ("[tool]", '''
        from promptline import Tool, ToolPlugin, ToolResult
        class Echo(Tool):
            name = "echo"
            parameters = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
            def execute(self, args):
                return ToolResult.success("echo: " + args["text"])
        class Read(Tool):
            name = "read"
            parameters = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
            def execute(self, args):
                return ToolResult.success(open(args["path"]).read())
        class Demo(ToolPlugin):
            def tools(self):
                return [Echo(), Read()]
        '''),
    "prompts": ("[prompt]", '''
        from promptline import PromptPlugin, PromptTemplate
        class Demo(PromptPlugin):
            def templates(self):
                return [PromptTemplate("review", "Review {{ lang }} code:\\n{{ code }}", "a code review")]
        '''),
    "notes": ("[context]", '''
        from promptline import ContextPlugin
        class Demo(ContextPlugin):
            def get_context(self, query):
                return f"notes about {query or 'everything'}"
        '''),
}


def write_plugins(root: Path) -> None:
    for pid, (types, code) in PLUGINS.items():
        d = root / pid
        d.mkdir(parents=True)
        (d / "plugin.yaml").write_text(f"id: {pid}\nversion: 1.0.0\ntypes: {types}\n"
                                       f"entry: {{python: '{pid}_mod:Demo'}}\nsandbox: process\n")
        (d / f"{pid}_mod.py").write_text(textwrap.dedent(code))


def _is_error(result):
    return result.is_error if hasattr(result, "is_error") else result.isError


def test_run_mcp_serves_tools_prompts_resources_concurrently(tmp_path):
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    write_plugins(tmp_path / "plugins")
    pol = tmp_path / "policy.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings:\n  approve: declared\n")
    (tmp_path / "log").mkdir()
    (tmp_path / "secret.txt").write_text("top secret")
    args = ["-m", "promptline", "run", "--mcp", "--policy", str(pol), "--plugins", str(tmp_path / "plugins"),
            "--audit-log", str(tmp_path / "log" / "audit.jsonl"), "--approvals", str(tmp_path / "approvals.yaml"),
            "--grants", str(tmp_path / "grants.yaml")]

    async def main():
        params = StdioServerParameters(command=sys.executable, args=args, env=dict(os.environ), cwd=str(tmp_path))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                caps = init.capabilities
                tools = await session.list_tools()
                await session.call_tool("slow.wait", {"s": 0})      # both children are up
                await session.call_tool("fast.echo", {"text": "warm"})
                t0 = time.monotonic()
                slow = asyncio.ensure_future(session.call_tool("slow.wait", {"s": 3}))
                await asyncio.sleep(0.2)
                listed = await session.list_tools()
                echo = await session.call_tool("fast.echo", {"text": "meanwhile"})
                meanwhile = time.monotonic() - t0
                prompts = await session.list_prompts()
                prompt = await session.get_prompt("prompts.review", {"lang": "C", "code": "int x;"})
                resources = await session.list_resources()
                note = await session.read_resource("promptline://context/notes?query=milk")
                denied = await session.call_tool("fast.read", {"path": str(tmp_path / "secret.txt")})
                slow_result = await slow
                return dict(caps=caps, tools=tools, listed=listed, echo=echo, meanwhile=meanwhile,
                            prompts=prompts, prompt=prompt, resources=resources, note=note, denied=denied,
                            slow=slow_result, slow_took=time.monotonic() - t0)

    r = asyncio.run(asyncio.wait_for(main(), 90))
    assert r["caps"].prompts is not None and r["caps"].resources is not None
    assert sorted(t.name for t in r["tools"].tools) == ["fast.echo", "fast.read", "slow.wait"]
    # concurrency: the listing and another plugin's call came back while the slow call ran
    assert r["meanwhile"] < 2.0, r["meanwhile"]
    assert not _is_error(r["echo"]) and r["echo"].content[0].text == "echo: meanwhile"
    assert not _is_error(r["slow"]) and r["slow"].content[0].text == "waited" and r["slow_took"] >= 3
    # prompts: templates of the prompt plugin
    assert [(p.name, [a.name for a in p.arguments]) for p in r["prompts"].prompts] == [("prompts.review", ["lang", "code"])]
    assert r["prompt"].messages[0].content.text == "Review C code:\nint x;"
    # resources: the context plugin
    assert [str(x.uri) for x in r["resources"].resources] == ["promptline://context/notes"]
    assert r["note"].contents[0].text == "notes about milk"
    # the honest control for policy: a read outside any grant is refused
    assert _is_error(r["denied"]) and "top secret" not in r["denied"].content[0].text


def test_per_request_deadline_and_inflight_limit():
    """serve_mcp_concurrent over real pipes: a call past its deadline gets an error answer at
    the deadline, a listing sent after it is answered first, and requests beyond the in-flight
    limit are refused (not queued without bound)."""
    import json
    import threading

    from promptline.loaders import MCPBackend, serve_mcp_concurrent, stream_io

    release = threading.Event()

    class Backend(MCPBackend):
        def list_tools(self):
            return [{"name": "t", "inputSchema": {"type": "object"}}]

        def call_tool(self, name, arguments):
            release.wait(10)
            return {"content": [{"type": "text", "text": "late"}], "isError": False}

    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    stdin, stdout = os.fdopen(r_in, "rb"), os.fdopen(w_out, "wb")
    next_line, send = stream_io(stdin, stdout)
    server = threading.Thread(target=serve_mcp_concurrent, args=(Backend(), next_line, send), daemon=True,
                              kwargs={"workers": 4, "max_inflight": 3,
                                      "deadline": lambda m: 0.5 if m == "tools/call" else 5})
    server.start()
    feed = os.fdopen(w_in, "wb", buffering=0)
    answers = os.fdopen(r_out, "rb")

    def req(i, method, params=None):
        feed.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params or {}}).encode() + b"\n")

    t0 = time.monotonic()
    req(1, "tools/call", {"name": "t", "arguments": {}})
    req(2, "tools/call", {"name": "t", "arguments": {}})
    req(3, "tools/list")
    got = {}
    first = json.loads(answers.readline())
    got[first["id"]] = (first, time.monotonic() - t0)
    assert first["id"] == 3, "the listing is answered while two calls hang"
    req(4, "tools/call", {"name": "t", "arguments": {}})
    req(5, "tools/call", {"name": "t", "arguments": {}})     # the 4th in flight: refused
    while len(got) < 5:
        msg = json.loads(answers.readline())
        got[msg["id"]] = (msg, time.monotonic() - t0)
    order = sorted(got, key=lambda i: got[i][1])
    assert got[3][0]["result"]["tools"][0]["name"] == "t" and got[3][1] < got[1][1]   # before the calls time out
    assert "too many requests" in got[5][0]["error"]["message"]
    for i in (1, 2, 4):
        assert "did not finish within 0.5 s" in got[i][0]["error"]["message"]
        assert 0.45 < got[i][1] < 3
    assert order.index(3) < order.index(1)
    release.set()
    feed.close()
    server.join(5)
