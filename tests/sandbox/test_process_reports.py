"""What a sandboxed child reports about its own decisions: every deny reaches the host's
chain (a flood is slowed by back-pressure, never cut), marked as the child's; anything that
does not hold up is a protocol error, recorded as such."""

from __future__ import annotations

import json
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sandbox_helpers import DEFAULT_POLICY, load, write_probe_plugin, write_python_plugin

from promptline.enforcer import Enforcer
from promptline.enforcer.audit import AuditLog, read_records, verify
from promptline.loaders._process._bootstrap import ForwardingAuditLog
from promptline.loaders._process._bridge import HostBridge
from promptline.policy import Request, load_policy_set, user_home

SSH_KEY = f"{user_home()}/.ssh/id_rsa"  # the default policy's no-ssh-keys rule

FLOOD = 5_000

FLOOD_PROBE = '''
def probe(arg):
    refused = 0
    for i in range(arg["n"]):
        try:
            open(f"/srv/flood-{i}", "rb")     # not granted: a default deny
        except PermissionError:
            refused += 1
    with open(arg["ok"]) as f:            # the honest control in the same call
        text = f.read()
    return {"refused": refused, "ok": text}
'''


def _records(path):
    return list(read_records(path))


def test_a_flood_of_denies_is_recorded_in_full(tmp_path):
    ok = tmp_path / "ok.txt"
    ok.write_text("fine")
    root = write_python_plugin(tmp_path / "plugins", "flooder", FLOOD_PROBE, read=[str(ok)])
    loaded = load(root, tmp_path)
    try:
        out = loaded.probe({"n": FLOOD, "ok": str(ok)}, timeout=120)
        assert out == {"refused": FLOOD, "ok": "fine"}
        # the call has returned: every refusal is already in the chain, in order
        recs = _records(loaded.audit_path)
        denies = [r for r in recs if r["kind"] == "decision" and r["decision"] == "deny"
                  and r["plugin"]["id"] == "flooder"]
        dropped = sum(r["count"] for r in recs if r["kind"] == "dropped")
        assert len(denies) + dropped == FLOOD and dropped == 0
        assert [r["resource"].rsplit("-", 1)[1] for r in denies] == [str(i) for i in range(FLOOD)]
        assert all(r["reported_by"] == "child" and r["decided_by"] == "default" for r in denies)
        assert not [r for r in recs if r.get("event") == "protocol_error"]
        assert loaded.plugin.bridge.reports == {"recorded": FLOOD, "protocol_errors": 0}
        assert verify(loaded.audit_path).ok
    finally:
        loaded.plugin.shutdown()


FORGE = '''
import json
def note(params):
    out.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/promptline/decision",
                          "params": params}).encode() + b"\\n")
    out.flush()
note({"v": 1, "action": "fs.read", "resource": "/forged",
      "decision": {"verdict": "allow", "decided_by": "default", "policy_version": "",
                   "rules": []},
      "request": {"action": "fs.read", "plugin": "someone-else", "path": "/forged"}})
note({"v": 1, "action": "fs.read", "resource": "/forged2",
      "decision": {"verdict": "allow", "decided_by": "rule", "policy_version": VERSION,
                   "rules": [{"id": "made-up", "effect": "allow", "layer": "org",
                              "origin": "org.yaml:1"}]},
      "request": {"action": "fs.read", "plugin": "forger", "path": "/forged2"}})
result = "sent"
'''


def test_a_command_plugin_cannot_write_decisions_into_the_host_log(tmp_path):
    root = write_probe_plugin(tmp_path / "plugins", "forger")
    loaded = load(root, tmp_path)
    try:
        version = loaded.enforcer.policy_set.version
        r = loaded.plugin.call_tool("run", {"code": textwrap.dedent(FORGE).replace(
            "VERSION", json.dumps(version))}, timeout=20)
        assert r.ok and json.loads(r.content) == "sent"   # the host survived and answered
        recs = _records(loaded.audit_path)
        assert not [x for x in recs if x["kind"] == "decision"]
        errors = [x for x in recs if x.get("event") == "protocol_error"]
        assert len(errors) == 2
        assert "/forged" in errors[0]["detail"] and "runs no enforcer" in errors[0]["detail"]
    finally:
        loaded.plugin.shutdown()


# -- the checks themselves, against reports a real child enforcer produces ----------------

MANIFEST = """\
id: demo
version: 0.1.0
entry: {python: "demo:Plugin"}
capabilities:
  filesystem:
    read: ["/srv/data/"]
"""


@pytest.fixture
def world(tmp_path):
    (tmp_path / "plugin.yaml").write_text(MANIFEST)
    ps = load_policy_set([str(DEFAULT_POLICY)], [str(tmp_path / "plugin.yaml")])
    sent = []
    child_log = ForwardingAuditLog(lambda b: sent.append(json.loads(b)["params"]), True)
    child = Enforcer(ps, audit_log=child_log)
    log = AuditLog(str(tmp_path / "host.jsonl"))
    bridge = HostBridge("demo", "0.1.0", enforcer=None, audit=log, child_policy=lambda: ps)

    def report(path):
        sent.clear()
        child.check("demo", Request("fs.read", "demo", path=path))
        assert len(sent) == 1
        return sent[0]
    yield report, bridge, log
    log.close()


def _host(log):
    log.flush()
    return _records(log.path)


def test_genuine_reports_are_recorded_as_the_childs(world):
    report, bridge, log = world
    deny = report(SSH_KEY)
    allow = report("/srv/data/a.csv")
    assert deny["decision"]["verdict"] == "deny" and allow["decision"]["verdict"] == "allow"
    assert deny["decision"]["rules"] and allow["decision"]["rules"]
    bridge.record_decision(deny)
    bridge.record_decision(allow)
    recs = [r for r in _host(log) if r["kind"] == "decision"]
    assert [(r["decision"], r["reported_by"]) for r in recs] == [("deny", "child"),
                                                                 ("allow", "child")]
    assert bridge.reports["protocol_errors"] == 0


def _set(d, path, value):
    d = json.loads(json.dumps(d))
    cur = d
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return d


FORGERIES = {
    "allow-by-default": (("decision", "decided_by"), "default", "allow"),
    "unknown-version": (("decision", "policy_version"), "feedbeef0000", None),
    "no-version": (("decision", "policy_version"), "", None),
    "other-resource": (("resource",), "/srv/data/other", None),
    "other-action": (("action",), "fs.write", None),
    "made-up-rule": (("decision", "rules", 0, "id"), "made-up", None),
    "moved-rule": (("decision", "rules", 0, "origin"), "org.yaml:999", None),
    "deny-as-allow": (("decision", "verdict"), "allow", "deny"),
    "future-version": (("v",), 99, None),
}


@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
def test_forged_reports_are_protocol_errors(world, forgery):
    report, bridge, log = world
    path, value, verdict = forgery
    base = report("/srv/data/a.csv" if verdict == "allow" else SSH_KEY)
    bridge.record_decision(_set(base, path, value))
    bridge.record_decision(base)   # control: the genuine one still goes through
    recs = _host(log)
    assert [r["kind"] for r in recs] == ["lifecycle", "decision"]
    assert recs[0]["event"] == "protocol_error" and "refused" in recs[0]["detail"]


_FIELDS = [("action",), ("resource",), ("decision", "verdict"), ("decision", "decided_by"),
           ("decision", "policy_version"), ("decision", "rules"), ("request", "path"),
           ("request", "action"), ("v",)]


@settings(max_examples=80, deadline=None)
@given(field=st.sampled_from(_FIELDS),
       value=st.one_of(st.text(max_size=20), st.integers(), st.none(), st.booleans(),
                       st.sampled_from(["allow", "deny", "ask", "rule", "default", "fs.read"]),
                       st.lists(st.dictionaries(st.sampled_from(["id", "effect", "origin"]),
                                                st.text(max_size=8)), max_size=2)),
       start=st.sampled_from([SSH_KEY, "/srv/data/a.csv"]))
def test_any_changed_report_is_recorded_truthfully_or_refused(tmp_path_factory, field, value,
                                                              start):
    d = tmp_path_factory.mktemp("r")
    (d / "plugin.yaml").write_text(MANIFEST)
    ps = load_policy_set([str(DEFAULT_POLICY)], [str(d / "plugin.yaml")])
    sent = []
    child = Enforcer(ps, audit_log=ForwardingAuditLog(lambda b: sent.append(json.loads(b)["params"]), True))
    child.check("demo", Request("fs.read", "demo", path=start))
    log = AuditLog(str(d / "host.jsonl"))
    bridge = HostBridge("demo", "0.1.0", enforcer=None, audit=log, child_policy=lambda: ps)
    bridge.record_decision(_set(sent[0], field, value))
    log.close()
    refs = {r.ref.id: r.ref for r in ps.rules}
    for r in _records(log.path):
        if r["kind"] != "decision":
            assert r["event"] == "protocol_error"
            continue
        # recorded: it must be a decision this policy could take for that very request
        truth = ps.decide(Request(r["action"], "demo", **{"path": r["resource"]}))
        assert r["reported_by"] == "child" and r["policy_version"] == ps.version
        assert all(x["id"] in refs for x in r["rules"])
        if r["decision"] == "allow":
            assert truth.verdict.value == "allow", (field, value, r)
