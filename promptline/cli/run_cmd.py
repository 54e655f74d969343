"""`promptline run`: the host. Loads plugins under policy and serves their tools."""

from __future__ import annotations

import json
import sys

import click

from ._common import fail
from ._host import build_manager, host_options, report_load

MAX_REQUEST_LINE = 4 << 20   # one JSON request line on stdin; longer lines are refused


@click.command("run")
@host_options
@click.option("--mcp", is_flag=True, help="Speak MCP (JSON-RPC 2.0) on stdio, for any MCP client.")
@click.option("--watch", is_flag=True, help="Reload policies and plugins when their files change.")
def run_command(mcp, watch, **kw) -> None:
    """Load every plugin under policy and serve tool calls on stdin/stdout.

    \b
    Without --mcp, each stdin line is one JSON request, answered by one JSON line:
      {"list": true}                                   -> {"tools": [...]}
      {"id": 1, "tool": "notes.search", "args": {...}} -> {"id": 1, "ok": true, "content": ...}
    Refused calls come back with "ok": false and the reason; the audit log has the trail.
    """
    from promptline.policy import PolicyError
    pm = build_manager(**kw, interactive=False if mcp else None)
    try:
        report = pm.load_all()
    except PolicyError as exc:
        fail(str(exc))
    report_load(report)
    watcher = None
    if watch:
        try:
            from promptline.loaders import Watcher
        except ImportError:
            fail("--watch is not available in this build")
        watcher = Watcher(pm)
        watcher.start()
    _announce(pm, mcp, watch, sys.stdin.isatty())
    try:
        with pm:
            if mcp:
                from .mcp_server import serve_mcp
                serve_mcp(pm, sys.stdin.buffer, sys.stdout.buffer)
            else:
                _serve_lines(pm)
    finally:
        if watcher is not None:
            watcher.stop()


def _announce(pm, mcp: bool, watch: bool, terminal: bool) -> None:
    """On a terminal, say what is served and how to stop (a silent prompt looks hung)."""
    if not terminal:
        return
    tools = pm.list_tools()
    how = "MCP (JSON-RPC 2.0)" if mcp else 'JSON lines, e.g. {"list": true}'
    click.echo(f"serving {len(tools)} tool(s) of {len(pm.plugins)} plugin(s) as {how} on stdin/stdout"
               + ("; reloading on file changes" if watch else ""), err=True)
    click.echo("stop with Ctrl-D (end of input) or Ctrl-C", err=True)


def _serve_lines(pm) -> None:
    out = sys.stdout
    for raw in sys.stdin:
        raw = raw.strip()
        if not raw:
            continue
        if len(raw) > MAX_REQUEST_LINE:
            out.write(json.dumps({"ok": False, "error": "request line too long"}) + "\n")
            out.flush()
            continue
        try:
            req = json.loads(raw)
            if not isinstance(req, dict):
                raise ValueError("a request must be a JSON object")
        except ValueError as exc:
            out.write(json.dumps({"ok": False, "error": f"bad request: {exc}"}) + "\n")
            out.flush()
            continue
        rid = req.get("id")
        if req.get("list"):
            reply = {"id": rid, "tools": [dict(spec.to_mcp(), name=name) for name, spec in pm.list_tools()]}
        elif isinstance(req.get("tool"), str):
            result = pm.call_tool(req["tool"], req.get("args", {}))
            reply = {"id": rid, **result.to_dict()}
        else:
            reply = {"id": rid, "ok": False, "error": "expected {\"tool\": NAME, \"args\": {...}} or {\"list\": true}"}
        out.write(json.dumps(reply, default=str) + "\n")
        out.flush()
