"""PluginManager end to end with real plugin directories, real policy files and a real audit log."""

import json
import os
import shutil
import textwrap
import time

import pytest

from promptline.enforcer.audit import AuditLog, read_records, verify
from promptline.loaders import ApprovalStore, PluginManager, generate_key, sign_plugin

PLUGIN_CODE = '''
import os, time
from promptline import Tool, ToolPlugin, ToolResult, RecoveryAction

class Echo(Tool):
    name = "echo"
    description = "echo back"
    parameters = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    def execute(self, args):
        return ToolResult.success(args["text"])

class Read(Tool):
    name = "read"
    description = "read a file"
    parameters = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    def execute(self, args):
        with open(args["path"]) as fh:
            return ToolResult.success(fh.read())

class Boom(Tool):
    name = "boom"
    description = "raises"
    def execute(self, args):
        raise RuntimeError("kaboom")

class Weird(Tool):
    name = "weird"
    description = "returns garbage"
    def execute(self, args):
        return object()

class Hang(Tool):
    name = "hang"
    description = "sleeps"
    def execute(self, args):
        time.sleep(5)
        return ToolResult.success("late")

class Flaky(Tool):
    name = "flaky"
    description = "fails, then the plugin falls back"
    def execute(self, args):
        raise ValueError("flaky")

class Demo(ToolPlugin):
    def tools(self):
        return [Echo(), Read(), Boom(), Weird(), Hang(), Flaky()]
    def on_tool_error(self, tool, error):
        if tool == "flaky":
            return RecoveryAction.fallback(ToolResult.success("fallback answer"))
        return RecoveryAction.propagate()
'''


def make_plugin(root, pid="demo", sandbox="none", read=(), extra=""):
    d = root / pid
    d.mkdir(parents=True)
    caps = json.dumps({"filesystem": {"read": list(read)}})
    (d / "plugin.yaml").write_text(textwrap.dedent(f"""\
        id: {pid}
        version: 1.0.0
        entry: {{python: "{pid.replace('-', '_')}_mod:Demo"}}
        sandbox: {sandbox}
        capabilities: {caps}
        """) + extra)
    (d / f"{pid.replace('-', '_')}_mod.py").write_text(PLUGIN_CODE)
    return d


def policy(tmp_path, body="", settings="  trust: [demo]\n"):
    p = tmp_path / "policy.yaml"
    p.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings:\n" + settings + "rules:\n" + (body or "  []\n"))
    os.chmod(p, 0o644)
    return str(p)


@pytest.fixture
def env(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    return plugins, log


def manager(tmp_path, plugins, log, pol, **kw):
    kw.setdefault("approve_all", True)
    return PluginManager(policy_files=[pol], search_path=[str(plugins)], config_path=False, entry_points=False,
                         audit_log=log, approvals=ApprovalStore(str(tmp_path / "approvals.yaml")),
                         call_timeout=1.0, **kw)


def test_load_call_and_failures_never_crash_the_host(tmp_path, env):
    plugins, log = env
    secret = tmp_path / "data" / "x.txt"
    secret.parent.mkdir()
    secret.write_text("hello")
    make_plugin(plugins, read=[str(tmp_path / "data") + "/"])
    with manager(tmp_path, plugins, log, policy(tmp_path)) as pm:
        report = pm.load_all()
        assert report.loaded == ["demo"], report
        names = [n for n, _ in pm.list_tools()]
        assert names == ["demo.echo", "demo.read", "demo.boom", "demo.weird", "demo.hang", "demo.flaky"]
        assert pm.call_tool("demo.echo", {"text": "hi"}).content == "hi"
        assert pm.call_tool("demo.read", {"path": str(secret)}).content == "hello"
        r = pm.call_tool("demo.read", {"path": "/etc/hostname"})
        assert not r.ok and "PolicyViolation" in r.content and "default deny" in r.content
        r = pm.call_tool("demo.echo", {"text": 5})
        assert not r.ok and "text" in r.content
        r = pm.call_tool("demo.boom", {})
        assert not r.ok and "kaboom" in r.content
        r = pm.call_tool("demo.weird", {})
        assert not r.ok
        t = time.monotonic()
        r = pm.call_tool("demo.hang", {})
        assert not r.ok and r.error.kind == "timeout" and time.monotonic() - t < 4
        assert pm.call_tool("demo.flaky", {}).content == "fallback answer"
        assert not pm.call_tool("demo.nope", {}).ok
        assert not pm.call_tool("other.echo", {}).ok
    log.flush()
    assert verify(str(tmp_path / "audit.jsonl")).ok
    kinds = [(r.get("event") or r.get("action"), r.get("decision")) for r in read_records(str(tmp_path / "audit.jsonl"))]
    assert ("loaded", None) in kinds and ("fs.read", "deny") in kinds and ("unloaded", None) in kinds


def test_tool_call_rules_deny_and_ask(tmp_path, env):
    plugins, log = env
    make_plugin(plugins)
    body = """\
  - id: no-echo-secrets
    effect: deny
    actions: [tool.call]
    when: request.tool == "echo" && request.args.text.contains("password")
  - id: ask-boom
    effect: ask
    actions: [tool.call]
    when: request.tool == "boom"
"""
    with manager(tmp_path, plugins, log, policy(tmp_path, body)) as pm:
        pm.load_all()
        r = pm.call_tool("demo.echo", {"text": "my password is x"})
        assert not r.ok and r.error.kind == "denied" and "no-echo-secrets" in r.content
        assert pm.call_tool("demo.echo", {"text": "fine"}).ok
        r = pm.call_tool("demo.boom", {})
        assert not r.ok and r.error.kind == "denied", "an ask without a prompter is a deny"


def test_unapproved_plugin_waits_with_instructions(tmp_path, env):
    plugins, log = env
    make_plugin(plugins)
    with manager(tmp_path, plugins, log, policy(tmp_path), approve_all=False) as pm:
        report = pm.load_all()
        assert report.loaded == []
        (pid, why), = report.refused
        assert pid == "demo" and "promptline plugin approve demo" in why


def test_grown_capabilities_need_approval_again(tmp_path, env):
    plugins, log = env
    d = make_plugin(plugins)
    pol = policy(tmp_path)
    with manager(tmp_path, plugins, log, pol) as pm:
        assert pm.load_all().loaded == ["demo"]
    text = (d / "plugin.yaml").read_text().replace('"read": []', '"read": ["/etc/"]')
    (d / "plugin.yaml").write_text(text)
    with manager(tmp_path, plugins, log, pol, approve_all=False) as pm:
        report = pm.load_all()
        assert report.loaded == [] and "asks for more" in report.refused[0][1] and "/etc/" in report.refused[0][1]


def test_signature_required_and_checked(tmp_path, env):
    plugins, log = env
    d = make_plugin(plugins)
    key = generate_key(str(tmp_path / "key.pem"))
    settings = f"  trust: [demo]\n  require_signature: true\n  trusted_keys: [\"{key}\"]\n"
    pol = policy(tmp_path, settings=settings)
    with manager(tmp_path, plugins, log, pol) as pm:
        report = pm.load_all()
        assert report.loaded == [] and "not signed" in report.refused[0][1]
    sign_plugin(str(d), str(tmp_path / "key.pem"))
    with manager(tmp_path, plugins, log, pol) as pm:
        assert pm.load_all().loaded == ["demo"]
    with open(d / "demo_mod.py", "a") as fh:
        fh.write("\n# tampered\n")
    with manager(tmp_path, plugins, log, pol) as pm:
        report = pm.load_all()
        assert report.loaded == [] and "demo_mod.py" in report.refused[0][1]


def test_policy_can_refuse_loading(tmp_path, env):
    plugins, log = env
    make_plugin(plugins)
    body = "  - id: no-demo\n    effect: deny\n    actions: [plugin.load]\n    plugins: [demo]\n"
    with manager(tmp_path, plugins, log, policy(tmp_path, body)) as pm:
        report = pm.load_all()
        assert report.loaded == [] and "no-demo" in report.refused[0][1]


def test_untrusted_plugin_never_runs_in_process(tmp_path, env, monkeypatch):
    plugins, log = env
    make_plugin(plugins, sandbox="none")
    import promptline.loaders._manager as mgr
    monkeypatch.setitem(mgr.LOADER_MODULES, "process", ("promptline.loaders._no_such_module", "X"))
    with manager(tmp_path, plugins, log, policy(tmp_path, settings="  trust: []\n")) as pm:
        report = pm.load_all()
        assert report.loaded == [] and "`process` sandbox is not available" in report.refused[0][1]
        assert pm.policy_set.plugins["demo"].sandbox == "process"


def test_sandbox_minimum_raises_the_level_or_refuses(tmp_path, env):
    plugins, log = env
    make_plugin(plugins, sandbox="none")
    pol = policy(tmp_path, settings="  trust: [demo]\n  sandbox_minimum: process\n")
    with manager(tmp_path, plugins, log, pol) as pm:
        report = pm.load_all()
        assert report.loaded == ["demo"], report
        assert pm.policy_set.plugins["demo"].sandbox == "process"
        assert pm.plugins["demo"].sandbox == "process", "a trusted `none` plugin runs in a child under a process minimum"
        assert pm.call_tool("demo.echo", {"text": "from a child"}).content == "from a child"
    pol = policy(tmp_path, settings="  trust: [demo]\n  sandbox_minimum: wasm\n")
    with manager(tmp_path, plugins, log, pol) as pm:
        report = pm.load_all()
        assert report.loaded == []
        assert "cannot run in the `wasm` sandbox" in report.refused[0][1]


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed; .ci/run installs it")
def test_sandbox_minimum_container_puts_the_plugin_under_bubblewrap(tmp_path, env):
    plugins, log = env
    make_plugin(plugins, sandbox="process")
    pol = policy(tmp_path, settings="  sandbox_minimum: container\n")
    with manager(tmp_path, plugins, log, pol) as pm:
        report = pm.load_all()
        assert report.loaded == ["demo"], report
        assert pm.policy_set.plugins["demo"].sandbox == "container"
        assert pm.plugins["demo"].sandbox == "container" and pm.plugins["demo"].network_wall == "namespace"
        assert pm.call_tool("demo.echo", {"text": "from a container"}).content == "from a container"
    loaded = [r for r in read_records(str(tmp_path / "audit.jsonl")) if r.get("event") == "loaded"]
    assert loaded and "sandbox container, network namespace" in loaded[-1].get("detail", "")


def test_ask_answered_always_is_remembered_as_a_grant(tmp_path, env):
    from promptline.enforcer import Answer, CallbackPrompter, GrantStore
    plugins, log = env
    make_plugin(plugins)
    body = "  - id: ask-echo\n    effect: ask\n    actions: [tool.call]\n    when: request.tool == \"echo\"\n"
    asked = []

    def answer(plugin_id, request, decision):
        asked.append(request.tool)
        return Answer.ALWAYS

    grants = tmp_path / "grants.yaml"
    with manager(tmp_path, plugins, log, policy(tmp_path, body), prompter=CallbackPrompter(answer),
                 grants=str(grants)) as pm:
        pm.load_all()
        assert pm.call_tool("demo.echo", {"text": "a"}).ok
        assert pm.call_tool("demo.echo", {"text": "b"}).ok
        assert asked == ["echo"], "the second call is decided by the remembered grant"
    (grant,) = GrantStore(str(grants)).list()
    assert grant.plugin == "demo" and grant.effect == "allow" and grant.action == "tool.call"


def _signed_none_plugin(tmp_path, plugins, name):
    d = make_plugin(plugins, sandbox="none")
    key = generate_key(str(tmp_path / f"{name}.pem"))
    sign_plugin(str(d), str(tmp_path / f"{name}.pem"))
    return d, key


def test_a_plugin_signed_by_a_trusted_key_is_trusted_and_runs_in_process(tmp_path, env):
    plugins, log = env
    _, key = _signed_none_plugin(tmp_path, plugins, "trusted")
    other = generate_key(str(tmp_path / "other.pem"))
    settings = f"  require_signature: false\n  trusted_keys: [\"{key}\", \"{other}\"]\n"
    with manager(tmp_path, plugins, log, policy(tmp_path, settings=settings)) as pm:
        assert pm.load_all().loaded == ["demo"]
        info = pm.policy_set.plugins["demo"]
        assert info.signed and info.trusted and info.sandbox == "none"
        assert pm.plugins["demo"].sandbox == "none", "signed by a trusted key: runs in process as asked"
        assert pm.call_tool("demo.echo", {"text": "in process"}).content == "in process"


def test_a_plugin_signed_by_an_untrusted_key_is_raised_to_process(tmp_path, env):
    plugins, log = env
    _signed_none_plugin(tmp_path, plugins, "publisher")
    stranger = generate_key(str(tmp_path / "stranger.pem"))
    settings = f"  require_signature: false\n  trusted_keys: [\"{stranger}\"]\n"
    with manager(tmp_path, plugins, log, policy(tmp_path, settings=settings)) as pm:
        assert pm.load_all().loaded == ["demo"]
        info = pm.policy_set.plugins["demo"]
        assert not info.trusted and info.sandbox == "process"
        assert pm.plugins["demo"].sandbox == "process", "an untrusted signature never runs in process"
        assert pm.call_tool("demo.echo", {"text": "in a child"}).content == "in a child"
