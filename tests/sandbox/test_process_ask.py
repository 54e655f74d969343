"""An ASK decided inside the sandboxed child is forwarded to the host's prompter
(``promptline/ask``), remembered in the host's GrantStore, and recorded in the host's audit log."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from sandbox_helpers import DEFAULT_POLICY, load, write_command_plugin, write_python_plugin

from promptline.enforcer import Answer, CallbackPrompter, Enforcer, GrantStore
from promptline.enforcer.audit import read_records
from promptline.loaders._discovery import discover
from promptline.loaders._loader import LoadContext
from promptline.loaders._process import ProcessLoader
from promptline.loaders._signing import read_tree
from promptline.policy import load_policy_set
from promptline.sdk import PluginConfig

WRITE_PROBE = '''
def probe(arg):
    try:
        with open(arg, "w") as fh:
            fh.write("hello")
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}
'''


def ask_policy(tmp: Path, outside: Path) -> Path:
    p = tmp / "ask-policy.yaml"
    p.write_text(textwrap.dedent(f"""\
        apiVersion: promptline/v1
        kind: Policy
        layer: org
        description: ask before writing outside
        rules:
          - id: writes-outside-ask
            effect: ask
            actions: [fs.write]
            when: within(request.path, "{outside}")
            message: writing outside the project needs your confirmation
        """))
    return p


def load_asking(root: Path, tmp: Path, policy: Path, prompter=None, grants=None):
    report = discover(search_path=[root.parent], config_path=False, entry_points=False)
    plugin = report.get(root.name)
    assert plugin is not None, report.problems
    from promptline.enforcer.audit import AuditLog
    audit = tmp / f"audit-{root.name}.jsonl"
    audit = AuditLog(audit)
    files = [str(DEFAULT_POLICY), str(policy)]
    ps = load_policy_set(files, [root / "plugin.yaml"])
    enf = Enforcer(ps, audit_log=audit, prompter=prompter, grants=grants)
    ctx = LoadContext(plugin=plugin, info=ps.plugins[plugin.id], enforcer=enf,
                      config=PluginConfig(plugin.id, {}), files=dict(read_tree(root).files),
                      policy_files=tuple(files), audit_log_path=str(audit),
                      options={"audit_log": audit})
    return ProcessLoader().load(ctx), audit


def setup(tmp_path, name):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = write_python_plugin(tmp_path / "plugins", name, WRITE_PROBE, write=[f"{outside}/"])
    return root, outside, ask_policy(tmp_path, outside)


def write(plugin, path, timeout=30.0):
    r = plugin.call_tool("run", {"arg": str(path)}, timeout=timeout)
    assert r.ok, r.content
    return r.data


def fs_write_records(audit, path):
    audit.flush()
    return [r for r in read_records(audit.path)
            if r.get("action") == "fs.write" and r.get("resource") == str(path)]


def test_answer_once_allows_the_write(tmp_path):
    root, outside, policy = setup(tmp_path, "ask-once")
    asked = []

    def answer(plugin_id, request, decision):
        asked.append((plugin_id, request.action, request.path, decision.rule.id if decision.rule else None))
        return Answer.ONCE

    plugin, audit = load_asking(root, tmp_path, policy, CallbackPrompter(answer))
    try:
        target = outside / "a.txt"
        assert write(plugin, target) == {"ok": True}
        assert target.read_text() == "hello"
        assert asked == [("ask-once", "fs.write", str(target), "writes-outside-ask")]
        (rec,) = fs_write_records(audit, target)
        assert rec["decision"] == "allow"
        assert rec["decided_by"] == "prompt-once"
        # once means once: the next write asks again
        assert write(plugin, target) == {"ok": True}
        assert len(asked) == 2
        # writes the rule does not cover are never asked about
        assert write(plugin, tmp_path / "plugins" / "x.txt")["ok"] is False
        assert len(asked) == 2
    finally:
        plugin.shutdown()


def test_answer_deny_refuses_the_write(tmp_path):
    root, outside, policy = setup(tmp_path, "ask-deny")
    plugin, audit = load_asking(root, tmp_path, policy, CallbackPrompter(lambda *a: Answer.DENY))
    try:
        target = outside / "a.txt"
        out = write(plugin, target)
        assert out["ok"] is False, out
        assert not target.exists()
        (rec,) = fs_write_records(audit, target)
        assert rec["decision"] == "deny"
        assert rec["decided_by"] == "prompt-once"
        assert write(plugin, outside / "b.txt")["ok"] is False
        assert plugin.call_tool("echo", {"text": "still here"}).content == "still here"
    finally:
        plugin.shutdown()


def test_answer_always_is_remembered_in_the_host_grants(tmp_path):
    root, outside, policy = setup(tmp_path, "ask-always")
    asked = []

    def answer(plugin_id, request, decision):
        asked.append(request.path)
        return Answer.ALWAYS

    grants = GrantStore(tmp_path / "grants.yaml")
    plugin, audit = load_asking(root, tmp_path, policy, CallbackPrompter(answer), grants)
    try:
        target = outside / "a.txt"
        assert write(plugin, target) == {"ok": True}
        assert write(plugin, target) == {"ok": True}
        assert asked == [str(target)], "the second write needs no prompt"
        (grant,) = grants.list()
        assert grant.plugin == "ask-always" and grant.effect == "allow" and grant.action == "fs.write"
        rec = fs_write_records(audit, target)[0]
        assert rec["decision"] == "allow"
        assert rec["decided_by"] == "prompt-always"
        assert rec["rules"][-1]["id"] == grant.id
        assert not rec["errors"]
        # a fresh child (its policy compiled before the grant) still needs no prompt:
        # the host's GrantStore answers
        plugin.shutdown()
        plugin, audit = load_asking(root, tmp_path, policy, CallbackPrompter(answer), grants)
        assert write(plugin, target) == {"ok": True}
        assert asked == [str(target)]
    finally:
        plugin.shutdown()


def test_no_prompter_means_deny(tmp_path):
    root, outside, policy = setup(tmp_path, "ask-none")
    plugin, audit = load_asking(root, tmp_path, policy, None)
    try:
        target = outside / "a.txt"
        assert write(plugin, target)["ok"] is False
        assert not target.exists()
        (rec,) = fs_write_records(audit, target)
        assert rec["decision"] == "deny"
    finally:
        plugin.shutdown()


HOSTILE_PROBE = """
def probe(arg):
    # talk to the host directly on the protocol fd: malformed asks, a huge one, an unknown method
    import json, os, stat
    fd = 4
    assert stat.S_ISFIFO(os.fstat(fd).st_mode)
    bad = [
        None, [], {"request": "x"}, {"request": {}, "decision": {}},
        {"request": {"action": "no.such"}, "decision": {"verdict": "ask"}},
        {"request": {"action": "fs.write", "path": 5}, "decision": {"verdict": "ask"}},
        {"request": {"action": "fs.write", "path": "/tmp/x", "evil": 1}, "decision": {"verdict": "ask"}},
        {"request": {"action": "fs.write", "path": "/tmp/x"}, "decision": {"verdict": "allow"}},
        {"request": {"action": "fs.write", "path": "/tmp/x"}, "decision": {"verdict": "ask", "rules": [{"id": 1}]}},
        {"request": {"action": "fs.write", "path": "/tmp/x", "port": True}, "decision": {"verdict": "ask"}},
        {"request": {"action": "fs.write", "path": "/tmp/x", "argv": ["a"] * 10000}, "decision": {"verdict": "ask"}},
        {"request": {"action": "fs.write", "path": "/tmp/" + "x" * 200000}, "decision": {"verdict": "ask"}},
    ]
    lines = []
    for i, params in enumerate(bad):
        msg = {"jsonrpc": "2.0", "id": "hostile-%d" % i, "method": "promptline/ask"}
        if params is not None:
            msg["params"] = params
        lines.append(json.dumps(msg))
    lines.append(json.dumps({"jsonrpc": "2.0", "id": "hostile-u", "method": "promptline/unknown"}))
    lines.append("not json at all")
    for line in lines:
        data = (line + "\\n").encode()
        while data:
            data = data[os.write(fd, data):]
    return {"sent": len(lines)}
""" + WRITE_PROBE


def test_hostile_child_asks_are_denied_and_the_host_keeps_working(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = write_python_plugin(tmp_path / "plugins", "ask-hostile", HOSTILE_PROBE, write=[f"{outside}/"])
    asked = []

    def answer(plugin_id, request, decision):
        asked.append(request.path)
        return Answer.ONCE

    plugin, audit = load_asking(root, tmp_path, ask_policy(tmp_path, outside), CallbackPrompter(answer))
    try:
        r = plugin.call_tool("run", {"arg": "flood"}, timeout=30)
        assert r.ok, r.content
        assert asked == [], "no malformed ask reaches the user"
        assert plugin.call_tool("echo", {"text": "alive"}).content == "alive"
        # the real thing still works afterwards
        target = outside / "a.txt"
        assert write(plugin, target) == {"ok": True}
        assert asked == [str(target)]
    finally:
        plugin.shutdown()


def test_malformed_asks_are_answered_deny():
    import pytest

    from promptline.loaders._process._bridge import ask_arguments as _ask_arguments
    for params in (None, [], {"request": {}, "decision": {}},
                   {"request": {"action": "fs.write", "path": "/x", "port": -1}, "decision": {"verdict": "ask"}},
                   {"request": {"action": "fs.write", "path": "/x"}, "decision": {"verdict": "deny"}},
                   {"request": {"action": "fs.write", "path": "/x"},
                    "decision": {"verdict": "ask", "rules": [{"id": "r", "effect": "maybe"}]}}):
        with pytest.raises((ValueError, TypeError, KeyError)):
            _ask_arguments("p", params)
    with pytest.raises(ValueError, match="protocol version"):   # the same ask without a version
        _ask_arguments("p", {"request": {"action": "fs.write", "path": "/x"}, "decision": {"verdict": "ask"}})
    request, decision = _ask_arguments("p", {"v": 1, "request": {"action": "fs.write", "path": "/x", "plugin": "other"},
                                             "decision": {"verdict": "ask", "rules": [
                                                 {"id": "r", "effect": "ask", "layer": "org", "origin": "f:1"}]}})
    assert request.plugin == "p", "a child speaks only for itself"
    assert decision.verdict.value == "ask" and decision.rules[0].id == "r"


def test_asks_from_a_command_plugin_are_denied_and_flooding_is_harmless(tmp_path):
    # a command plugin speaking raw MCP: it sends asks during a call and reports the answers
    script = r'''
import json, sys

def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n"); sys.stdout.flush()

def recv():
    return json.loads(sys.stdin.readline())

BAD = [
    None, [], {"request": "x"}, {"request": {}, "decision": {}},
    {"request": {"action": "no.such"}, "decision": {"verdict": "ask"}},
    {"request": {"action": "fs.write", "path": 5}, "decision": {"verdict": "ask"}},
    {"request": {"action": "fs.write", "path": "/tmp/x", "evil": 1}, "decision": {"verdict": "ask"}},
    {"request": {"action": "fs.write", "path": "/tmp/x"}, "decision": {"verdict": "allow"}},
    {"request": {"action": "fs.write", "path": "/tmp/x"}, "decision": {"verdict": "ask", "rules": [{"id": 1}]}},
    {"request": {"action": "fs.write", "path": "/tmp/x", "argv": ["a"] * 10000}, "decision": {"verdict": "ask"}},
    {"request": {"action": "fs.write", "path": "/tmp/" + "x" * 200000}, "decision": {"verdict": "ask"}},
    {"request": {"action": "fs.write", "path": "/tmp/x"}, "decision": {"verdict": "ask"}},
]
while True:
    line = sys.stdin.readline()
    if not line:
        break
    msg = json.loads(line)
    if "id" not in msg:
        continue
    m, rid = msg["method"], msg["id"]
    if m == "initialize":
        send({"jsonrpc": "2.0", "id": rid, "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
              "serverInfo": {"name": "hostile", "version": "0"}}})
    elif m == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [
            {"name": "flood", "inputSchema": {"type": "object"}},
            {"name": "echo", "inputSchema": {"type": "object"}}]}})
    elif m == "tools/call" and msg["params"]["name"] == "flood":
        answers = []
        for i, params in enumerate(BAD + [{"request": {"action": "fs.write", "path": "/tmp/x"},
                                            "decision": {"verdict": "ask"}}] * 40):
            req = {"jsonrpc": "2.0", "id": "ask-%d" % i, "method": "promptline/ask"}
            if params is not None:
                req["params"] = params
            send(req)
            answers.append(recv())
        send({"jsonrpc": "2.0", "method": "promptline/unknown-notification", "params": {}})
        send({"jsonrpc": "2.0", "id": "u1", "method": "promptline/unknown"})
        answers.append(recv())
        send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": json.dumps(answers)}]}})
    elif m == "tools/call":
        send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "alive"}]}})
    else:
        send({"jsonrpc": "2.0", "id": rid, "result": {}})
'''
    root = write_command_plugin(tmp_path / "plugins", "hostile-ask", script)
    loaded = load(root, tmp_path)
    plugin = loaded.plugin
    try:
        r = plugin.call_tool("flood", {}, timeout=60)
        assert r.ok, r.content
        answers = json.loads(r.content)
        *asks, unknown = answers
        assert all(a.get("result", {}).get("answer") == "deny" for a in asks), asks[:3]
        assert unknown["error"]["code"] == -32601
        assert plugin.call_tool("echo", {}).content == "alive"
    finally:
        plugin.shutdown()
