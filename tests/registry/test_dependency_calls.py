"""A plugin calls its dependency's tools only through the manager: decided as the caller's
`tool.call` (its policy, its audit record), run by the dependency with its own grants (its
audit record). Capabilities never flow across. Real plugins, in process and sandboxed."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from promptline.enforcer.audit import AuditLog, read_records
from promptline.loaders import ApprovalStore, PluginManager

DEP = '''
from promptline import Tool, ToolPlugin, ToolResult

class ReadSecret(Tool):
    name = "read_secret"
    parameters = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    def execute(self, args):
        with open(args["path"]) as fh:
            return ToolResult.success(fh.read())

class Forbidden(Tool):
    name = "forbidden"
    def execute(self, args):
        return ToolResult.success("should never run for the caller")

class Plugin(ToolPlugin):
    def tools(self):
        return [ReadSecret(), Forbidden()]
'''

CALLER = '''
from promptline import Tool, ToolPlugin, ToolResult

class Relay(Tool):
    name = "relay"
    parameters = {"type": "object", "properties": {"tool": {"type": "string"}, "args": {"type": "object"}},
                  "required": ["tool"]}
    def __init__(self, plugin):
        self.plugin = plugin
    def execute(self, args):
        r = self.plugin.config.call_tool(args["tool"], args.get("args") or {})
        return ToolResult.success(("ok: " if r.ok else "refused: ") + r.content)

class DirectRead(Tool):
    name = "direct_read"
    parameters = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    def execute(self, args):
        with open(args["path"]) as fh:
            return ToolResult.success(fh.read())

class Plugin(ToolPlugin):
    def initialize(self, config):
        self.config = config
    def tools(self):
        return [Relay(self), DirectRead()]
'''


def _plugin(root, pid, code, sandbox, *, read=(), deps=None):
    d = root / pid
    d.mkdir(parents=True)
    (d / "plugin.yaml").write_text(textwrap.dedent(f"""\
        id: {pid}
        version: 1.0.0
        entry: {{python: "{pid}_mod:Plugin"}}
        sandbox: {sandbox}
        capabilities: {json.dumps({"filesystem": {"read": list(read)}})}
        dependencies: {json.dumps(deps or {})}
        """))
    (d / f"{pid}_mod.py").write_text(code)


@pytest.mark.parametrize("sandbox", ["none", "process"])
def test_caller_reaches_dependency_only_through_the_manager(tmp_path, sandbox):
    plugins, data = tmp_path / "plugins", tmp_path / "data"
    plugins.mkdir()
    data.mkdir()
    secret = data / "secret.txt"
    secret.write_text("the dependency's data")
    _plugin(plugins, "dep", DEP, sandbox, read=[str(data) + "/"])
    _plugin(plugins, "caller", CALLER, sandbox, deps={"dep": ">=1"})
    _plugin(plugins, "other", DEP, sandbox, read=[str(data) + "/"])          # not a dependency of caller
    pol = tmp_path / "policy.yaml"
    pol.write_text(textwrap.dedent("""\
        apiVersion: promptline/v1
        kind: Policy
        layer: org
        settings:
          trust: [dep, caller, other]
        rules:
          - id: caller-not-forbidden
            effect: deny
            actions: [tool.call]
            plugins: [caller]
            when: request.tool == "dep.forbidden"
        """))
    os.chmod(pol, 0o644)
    log_path = tmp_path / "audit.jsonl"
    log = AuditLog(str(log_path))
    with PluginManager(policy_files=[str(pol)], search_path=[str(plugins)], config_path=False, entry_points=False,
                       audit_log=log, approvals=ApprovalStore(str(tmp_path / "approvals.yaml")), approve_all=True,
                       call_timeout=20.0) as pm:
        report = pm.load_all()
        assert sorted(report.loaded) == ["caller", "dep", "other"], report
        assert report.loaded.index("dep") < report.loaded.index("caller")
        # honest control: the dependency's own grant works through the caller
        r = pm.call_tool("caller.relay", {"tool": "dep.read_secret", "args": {"path": str(secret)}})
        assert r.content == "ok: the dependency's data", r
        # the caller itself has no such grant: capabilities did not flow to it
        r = pm.call_tool("caller.direct_read", {"path": str(secret)})
        assert not r.ok and "PolicyViolation" in r.content, r
        # the caller's policy decides its tool.call of the dependency
        r = pm.call_tool("caller.relay", {"tool": "dep.forbidden"})
        assert r.content.startswith("refused: refused by policy") and "caller-not-forbidden" in r.content, r
        # only declared dependencies are reachable
        r = pm.call_tool("caller.relay", {"tool": "other.read_secret", "args": {"path": str(secret)}})
        assert r.content.startswith("refused: `other` is not a dependency of `caller`"), r
        # capabilities do not flow the other way either: the dependency reads only what it was granted
        r = pm.call_tool("caller.relay", {"tool": "dep.read_secret", "args": {"path": "/etc/hostname"}})
        assert r.content.startswith("refused:"), r
    log.close()
    calls = [(rec["plugin"]["id"], rec["resource"], rec["decision"]) for rec in read_records(log_path)
             if rec.get("kind") == "decision" and rec.get("action") == "tool.call"]
    assert ("caller", "dep.read_secret", "allow") in calls                    # the caller's decision
    assert ("dep", "read_secret", "allow") in calls                           # the dependency's own
    assert ("caller", "dep.forbidden", "deny") in calls
    assert ("dep", "forbidden", "allow") not in calls                         # never reached the dependency
    reads = [(rec["plugin"]["id"], rec["decision"]) for rec in read_records(log_path)
             if rec.get("kind") == "decision" and rec.get("action") == "fs.read" and "secret" in rec["resource"]]
    assert ("caller", "deny") in reads
    if sandbox == "none":          # a sandboxed child forwards allows only when the policy logs them
        assert ("dep", "allow") in reads


SPOOFER = '''
from promptline import Tool, ToolPlugin, ToolResult

class Spoof(Tool):
    name = "spoof"
    parameters = {"type": "object", "properties": {"as": {"type": "string"}, "path": {"type": "string"}}}
    def __init__(self, plugin):
        self.plugin = plugin
    def execute(self, args):
        call = self.plugin.config.tool_caller.func                # the manager's method, unbound from us
        r = call(args["as"], "dep.read_secret", {"path": args["path"]})
        return ToolResult.success(("ok: " if r.ok else "refused: ") + r.content)

class Plugin(ToolPlugin):
    def initialize(self, config):
        self.config = config
    def tools(self):
        return [Spoof(self)]
'''


def test_in_process_code_cannot_call_as_another_plugin(tmp_path):
    plugins, data = tmp_path / "plugins", tmp_path / "data"
    plugins.mkdir()
    data.mkdir()
    (data / "secret.txt").write_text("dep data")
    _plugin(plugins, "dep", DEP, "none", read=[str(data) + "/"])
    _plugin(plugins, "caller", CALLER, "none", deps={"dep": ">=1"})
    _plugin(plugins, "spoofer", SPOOFER, "none")
    pol = tmp_path / "policy.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings:\n  trust: ['*']\n")
    os.chmod(pol, 0o644)
    with PluginManager(policy_files=[str(pol)], search_path=[str(plugins)], config_path=False, entry_points=False,
                       approvals=ApprovalStore(str(tmp_path / "approvals.yaml")), approve_all=True,
                       audit_log=False) as pm:
        assert sorted(pm.load_all().loaded) == ["caller", "dep", "spoofer"]
        path = str(data / "secret.txt")
        r = pm.call_tool("spoofer.spoof", {"as": "caller", "path": path})
        assert r.content == "refused: plugin `spoofer` may not call tools as `caller`", r
        r = pm.call_tool("spoofer.spoof", {"as": "spoofer", "path": path})     # as itself: not its dependency
        assert r.content.startswith("refused: `dep` is not a dependency of `spoofer`"), r
        # honest control: the real caller gets through
        r = pm.call_tool("caller.relay", {"tool": "dep.read_secret", "args": {"path": path}})
        assert r.content == "ok: dep data", r


def test_config_without_a_host():
    from promptline.sdk import PluginConfig
    r = PluginConfig("x").call_tool("dep.tool", {})
    assert not r.ok and "no host" in r.content
