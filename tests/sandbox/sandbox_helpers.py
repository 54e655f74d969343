"""Helpers for the process-sandbox tests: write a plugin, load it in a real child."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptline.enforcer import Enforcer
from promptline.enforcer.audit import AuditLog
from promptline.loaders._discovery import discover
from promptline.loaders._loader import LoadContext
from promptline.loaders._process import ProcessLoader
from promptline.loaders._signing import read_tree
from promptline.policy import load_policy_set
from promptline.sdk import PluginConfig

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "policies" / "default.yaml"

TOOL_CODE = '''\
import os, sys, json
from promptline import ToolPlugin, Tool, ToolResult


class Run(Tool):
    """Runs the test's attack/probe function `probe(args)` defined below."""
    name = "run"
    parameters = {"type": "object", "properties": {"arg": {}}}

    def execute(self, args):
        out = probe(args.get("arg"))
        return ToolResult.success(json.dumps(out), data=out)


class Echo(Tool):
    name = "echo"
    parameters = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

    def execute(self, args):
        return ToolResult.success(args["text"])


class Plugin(ToolPlugin):
    def tools(self):
        return [Run(), Echo()]

'''


def manifest_text(plugin_id: str, *, entry: str, read=(), write=(), network=(), env=(), process=(),
                  native=False, sandbox="process") -> str:
    def lst(items):
        return "[" + ", ".join(f'"{i}"' for i in items) + "]"
    return textwrap.dedent(f"""\
        id: {plugin_id}
        name: {plugin_id}
        version: 0.1.0
        description: a sandbox test plugin
        requires: ">=0.1"
        types: [tool]
        entry:
        {textwrap.indent(entry, '  ')}
        sandbox: {sandbox}
        capabilities:
          network: {lst(network)}
          filesystem:
            read: {lst(read)}
            write: {lst(write)}
          environment: {lst(env)}
          process: {lst(process)}
          native: {'true' if native else 'false'}
        """)


def write_python_plugin(parent: Path, plugin_id: str, probe: str, **caps: Any) -> Path:
    root = parent / plugin_id
    root.mkdir(parents=True)
    module = plugin_id.replace("-", "_")
    (root / "plugin.yaml").write_text(manifest_text(plugin_id, entry=f"python: {module}:Plugin", **caps))
    (root / f"{module}.py").write_text(TOOL_CODE + textwrap.dedent(probe))
    return root


def write_command_plugin(parent: Path, plugin_id: str, script: str, **caps: Any) -> Path:
    root = parent / plugin_id
    root.mkdir(parents=True)
    entry = f'command: ["{sys.executable}", "server.py"]'
    (root / "plugin.yaml").write_text(manifest_text(plugin_id, entry=entry, **caps))
    (root / "server.py").write_text(textwrap.dedent(script))
    return root


@dataclass
class Loaded:
    plugin: Any
    audit_path: Path
    enforcer: Enforcer
    extras: dict = field(default_factory=dict)

    def call(self, tool: str = "run", args: Any = None, timeout: float = 20.0):
        return self.plugin.call_tool(tool, {"arg": args} if tool == "run" else (args or {}), timeout=timeout)

    def probe(self, arg: Any = None, timeout: float = 20.0) -> Any:
        r = self.call("run", arg, timeout=timeout)
        assert r.ok, r.content
        return r.data


def load(root: Path, tmp: Path, *, loader: ProcessLoader | None = None, options: dict | None = None,
         verified: bool = True, policy_files=(DEFAULT_POLICY,)) -> Loaded:
    report = discover(search_path=[root.parent], config_path=False, entry_points=False)
    plugin = report.get(root.name)
    assert plugin is not None, report.problems
    audit_path = tmp / f"audit-{root.name}.jsonl"
    audit = AuditLog(audit_path)
    ps = load_policy_set([str(p) for p in policy_files], [root / "plugin.yaml"])
    enf = Enforcer(ps, audit_log=audit)
    files = dict(read_tree(root).files) if verified else None
    ctx = LoadContext(plugin=plugin, info=ps.plugins[plugin.id], enforcer=enf,
                      config=PluginConfig(plugin.id, {}), files=files,
                      policy_files=tuple(str(p) for p in policy_files), audit_log_path=str(audit_path),
                      options={"audit_log": audit, **(options or {})})
    loaded = (loader or ProcessLoader()).load(ctx)
    return Loaded(loaded, audit_path, enf, {"audit": audit})


PROBE_SERVER = Path(__file__).parent / "fixtures" / "probe_server.py"


def write_probe_plugin(parent: Path, plugin_id: str, **caps: Any) -> Path:
    """A command plugin running fixtures/probe_server.py (fast to start: stdlib only)."""
    return write_command_plugin(parent, plugin_id, PROBE_SERVER.read_text(), **caps)


def run(loaded: Loaded, code: str, timeout: float = 20.0) -> Any:
    """Run ``code`` in a probe plugin's child; the value it leaves in ``result``."""
    r = loaded.plugin.call_tool("run", {"code": textwrap.dedent(code)}, timeout=timeout)
    assert r.ok, r.content
    return r.data["value"]


def pid_gone(pid: int) -> bool:
    """True when ``pid`` no longer exists; a zombie still counts as there."""
    return not Path(f"/proc/{pid}").exists()
