"""The PluginManager's own logic with an injected fake loader: discovery, approval,
`plugin.load` and `tool.call` decisions, routing and lifecycle records — fast, no child
processes. The real sandboxes are tested in tests/sandbox, tests/wasm and test_manager.py.

The fake is only a stand-in for the loader: plugin directories, policies and the audit log
are real files."""

import textwrap

from promptline.enforcer.audit import AuditLog, read_records
from promptline.loaders import ApprovalStore, LoadedPlugin, ManagerConfig, PluginManager
from promptline.sdk import ToolResult, ToolSpec


class FakePlugin(LoadedPlugin):
    def __init__(self, ctx, calls):
        self.id, self.version, self.sandbox = ctx.plugin.id, ctx.plugin.version, "process"
        self.calls = calls
        self.closed = False

    def tools(self):
        return (ToolSpec("echo", "echo back", {"type": "object", "properties": {"text": {"type": "string"}}}),)

    def call_tool(self, name, args, *, timeout=30):
        self.calls.append((self.id, name, args))
        return ToolResult.success(args.get("text", ""))

    def shutdown(self):
        self.closed = True


class FakeLoader:
    kind = "process"

    def __init__(self):
        self.loaded, self.calls = [], []

    def load(self, ctx):
        plugin = FakePlugin(ctx, self.calls)
        self.loaded.append(plugin)
        return plugin


def plugin_dir(root, pid):
    d = root / pid
    d.mkdir(parents=True)
    (d / "plugin.yaml").write_text(textwrap.dedent(f"""\
        id: {pid}
        version: 0.1.0
        types: [tool]
        entry: {{python: "m:P"}}
        sandbox: process
        """))
    (d / "m.py").write_text("raise SystemExit('the fake loader never imports this')\n")
    return d


def manager(tmp_path, policy_rules, loader, **fields):
    plugins = tmp_path / "plugins"
    for pid in ("alpha", "beta"):
        plugin_dir(plugins, pid)
    pol = tmp_path / "policy.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules:\n" + textwrap.indent(policy_rules, "  "))
    log = AuditLog(tmp_path / "audit.jsonl")
    config = ManagerConfig(policy_files=[pol], search_path=[plugins], entry_points=False, audit_log=log,
                           approvals=ApprovalStore(tmp_path / "approvals.json"), approve_all=True)
    return PluginManager(config, loaders={"process": loader}, **fields), log


def test_the_injected_loader_serves_calls_decided_as_tool_call(tmp_path):
    loader = FakeLoader()
    pm, log = manager(tmp_path, textwrap.dedent("""\
        - id: no-beta-echo
          effect: deny
          actions: [tool.call]
          plugins: [beta]
        """), loader)
    with pm:
        report = pm.load_all()
        assert sorted(report.loaded) == ["alpha", "beta"] and len(loader.loaded) == 2
        assert pm.call_tool("alpha.echo", {"text": "hi"}).content == "hi"
        refused = pm.call_tool("beta.echo", {"text": "hi"})
        assert not refused.ok and "no-beta-echo" in refused.content
        assert loader.calls == [("alpha", "echo", {"text": "hi"})], "a refused call never reaches the plugin"
    assert all(p.closed for p in loader.loaded), "shutdown unloads every plugin"
    log.close()
    records = list(read_records(str(tmp_path / "audit.jsonl")))
    denies = [r for r in records if r.get("decision") == "deny"]
    assert [(d["plugin"]["id"], d["action"], d["rule"]) for d in denies] == [("beta", "tool.call", "no-beta-echo")]
    assert {r.get("event") for r in records if r.get("kind") == "lifecycle"} >= {"discovered", "loaded", "unloaded"}


def test_a_plugin_load_deny_keeps_the_loader_away(tmp_path):
    loader = FakeLoader()
    pm, log = manager(tmp_path, textwrap.dedent("""\
        - id: no-alpha
          effect: deny
          actions: [plugin.load]
          plugins: [alpha]
        """), loader)
    with pm:
        report = pm.load_all()
        assert report.loaded == ["beta"] and [p.id for p in loader.loaded] == ["beta"]
        assert any(pid == "alpha" and "no-alpha" in why for pid, why in report.refused)
    log.close()


def test_keywords_and_config_are_the_same_manager(tmp_path):
    pm = PluginManager(policy_files=["policies/default.yaml"], call_timeout=5.0, watch=False)
    same = PluginManager(ManagerConfig(policy_files=["policies/default.yaml"]), call_timeout=5.0)
    assert pm.config == same.config and pm.call_timeout == 5.0
