"""The writer: schema, canonical form, durability, batching, API surface."""

from __future__ import annotations

import json
import os

import pytest
from audit_helpers import decision, lines, records, run_py
from hypothesis import given, settings
from hypothesis import strategies as st

import promptline.enforcer.audit as audit
from promptline.enforcer.audit import (
    GENESIS,
    AuditError,
    AuditLog,
    AuditSettings,
    canonical,
    line_hash,
    verify,
    writing,
)


def test_all_matches_public_names():
    public = {n for n in dir(audit) if not n.startswith("_")} - {"annotations"}
    modules = {n for n in public if n.startswith(("_",)) or type(getattr(audit, n)).__name__
               == "module"}
    assert set(audit.__all__) == public - modules


def test_deny_record_fields_and_chain(log_path):
    log = AuditLog(log_path)
    seq = log.decision("db-tools", "0.1.0", "fs.read", "/home/u/.ssh/id_rsa", decision(),
                       message="refused")
    assert seq == 1
    # durable before flush/close: the line is in the file now
    (rec,) = records(log_path)
    assert rec["v"] == 1 and rec["seq"] == 1 and rec["prev"] == GENESIS
    assert rec["kind"] == "decision" and rec["decision"] == "deny"
    assert rec["plugin"] == {"id": "db-tools", "version": "0.1.0"}
    assert rec["rule"] == "no-ssh" and rec["rule_origin"] == "org.yaml:12"
    assert rec["decided_by"] == "rule" and rec["policy_version"] == "v1"
    assert rec["pid"] == os.getpid() and rec["time"].endswith("Z")
    log.lifecycle("db-tools", "0.1.0", "loaded", "from ~/plugins")
    log.policy_reload(False, "v2", "org.yaml:3: bad rule")
    log.close()
    recs = records(log_path)
    assert [r["kind"] for r in recs] == ["decision", "lifecycle", "policy_reload"]
    assert recs[1]["prev"] == line_hash(lines(log_path)[0].rstrip(b"\n"))
    assert recs[2]["ok"] is False and recs[2]["error"] == "org.yaml:3: bad rule"
    assert verify(log_path).ok


def test_lines_are_canonical(log_path):
    with AuditLog(log_path) as log:
        log.decision("p", "1", "net.connect", "héllo ☃ \"q\" \\ \n", decision("ask"),
                     request={"host": "x", "port": 5, "nested": {"b": [1, 2.5, None, True]}})
        log.decision("p", "1", "fs.read", "/a", decision("allow", rule=""))
    for raw in lines(log_path):
        assert raw.rstrip(b"\n").decode() == canonical(json.loads(raw))


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40), verdict=st.sampled_from(["allow", "deny", "ask"]),
       n_rules=st.integers(0, 3), req=st.one_of(st.none(), st.dictionaries(
           st.text(max_size=5), st.one_of(st.text(max_size=8), st.integers(), st.booleans()),
           max_size=3)))
def test_fast_serializer_is_canonical(tmp_path_factory, text, verdict, n_rules, req):
    path = tmp_path_factory.mktemp("c") / "a.jsonl"
    d = decision(verdict, rule="")
    d["rules"] = [{"id": text + str(i), "effect": verdict, "layer": "user", "origin": text,
                   "message": text, "mode": "audit"} for i in range(n_rules)]
    d["errors"] = [text]
    with AuditLog(path) as log:
        log.decision(text, text, "tool.call", text, d, request=req, message=text)
    (raw,) = lines(path)
    assert raw.rstrip(b"\n").decode() == canonical(json.loads(raw))


def test_undecodable_file_names_are_escaped(log_path):
    with AuditLog(log_path) as log:
        log.decision("p", "1", "fs.read", "/tmp/bad\udcff", decision())
    (rec,) = records(log_path)
    assert rec["resource"] == "/tmp/bad\\udcff"
    assert verify(log_path).ok


def test_allows_are_batched_and_flushed(log_path):
    log = AuditLog(log_path)
    for i in range(500):
        assert log.decision("p", "1", "fs.read", f"/f{i}", decision("allow")) is None
    assert log.flush(timeout=10)
    assert len(lines(log_path)) == 500
    log.close()
    assert verify(log_path).records == 500


def test_log_allows_off_keeps_denies_and_prompted_allows(log_path):
    with AuditLog(log_path, AuditSettings(log_allows=False)) as log:
        log.decision("p", "1", "fs.read", "/a", decision("allow"))
        log.decision("p", "1", "fs.read", "/b", decision("allow", decided_by="prompt-once"))
        log.decision("p", "1", "fs.read", "/c", decision("allow", would_deny=True,
                                                         decided_by="mode-audit"))
        log.decision("p", "1", "fs.read", "/d", decision("deny"))
    assert [r["resource"] for r in records(log_path)] == ["/b", "/c", "/d"]


def test_decision_objects_are_accepted(log_path):
    from promptline.policy._decision import DecidedBy, Decision, Effect, RuleRef, Verdict

    d = Decision(Verdict.DENY, DecidedBy.RULE, "v9",
                 (RuleRef("r1", Effect.DENY, "org", "o.yaml:4", "no"),))
    with AuditLog(log_path) as log:
        log.decision("p", "1", "fs.write", "/etc/x", d)
    (rec,) = records(log_path)
    assert (rec["decision"], rec["rule"], rec["policy_version"]) == ("deny", "r1", "v9")


def test_exit_flushes_pending_allows(log_path):
    res = run_py(f"""
from promptline.enforcer.audit import AuditLog
log = AuditLog({log_path!r})
for i in range(2000):
    log.decision("p", "1", "fs.read", f"/f{{i}}", {{"verdict": "allow"}})
""")
    assert res.returncode == 0, res.stderr
    assert verify(log_path).records == 2000


def test_unknown_lifecycle_event(log_path):
    with AuditLog(log_path) as log, pytest.raises(ValueError, match="unknown lifecycle"):
        log.lifecycle("p", "1", "exploded")


def test_refuses_to_append_to_a_foreign_file(log_path):
    with open(log_path, "w") as f:
        f.write("hello, I am a text file\n")
    with AuditLog(log_path) as log, pytest.raises(AuditError, match="not a PromptLine audit"):
        log.decision("p", "1", "fs.read", "/a", decision())


def test_unwritable_log_raises_audit_error(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    (d / "audit.jsonl").mkdir()  # a directory where the file should be
    with pytest.raises(AuditError, match="cannot write audit log"):
        AuditLog(d / "audit.jsonl").decision("p", "1", "fs.read", "/a", decision())


def test_writing_flag_lets_an_audit_hook_skip_the_writers_own_events(log_path):
    # An audit hook that logs every `open` it sees (as the enforcer would) must neither
    # recurse into the writer nor deadlock; writing() tells it which events are ours.
    res = run_py(f"""
import sys
from promptline.enforcer.audit import AuditLog, writing
log = AuditLog({log_path!r})
log.start()
seen = {{"ours": 0, "theirs": 0}}
def hook(event, args):
    if event != "open":
        return
    if writing():
        seen["ours"] += 1
        return
    seen["theirs"] += 1
    log.decision("p", "1", "fs.read", str(args[0]), {{"verdict": "deny"}})
sys.addaudithook(hook)
for i in range(5):
    open(__file__ if False else {log_path!r} + ".other", "a").close()
for i in range(50):
    log.decision("p", "1", "fs.read", "/x", {{"verdict": "allow"}})
log.close()
print(seen["ours"] > 0, seen["theirs"])
""")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "5"]
    assert verify(log_path).records == 55


def test_writing_is_false_outside_the_writer():
    assert writing() is False


def test_sinks_only_log_keeps_a_chain_in_memory():
    out = []

    class Sink:
        def emit(self, line, rec):
            out.append((line, rec))

        def close(self):
            pass

    with AuditLog(None, sinks=[Sink()]) as log:
        log.decision("p", "1", "fs.read", "/a", decision())
        log.decision("p", "1", "fs.read", "/b", decision("allow"))
    assert [r["seq"] for _, r in out] == [1, 2]
    assert out[1][1]["prev"] == line_hash(out[0][0].encode())


def test_fork_child_continues_the_chain(log_path):
    res = run_py(f"""
import os
from promptline.enforcer.audit import AuditLog
log = AuditLog({log_path!r})
log.decision("p", "1", "fs.read", "/parent", {{"verdict": "allow"}})
pid = os.fork()
if pid == 0:
    log.decision("p", "1", "fs.read", "/child", {{"verdict": "deny"}})
    log.decision("p", "1", "fs.read", "/child-allow", {{"verdict": "allow"}})
    log.close()
    os._exit(0)
os.waitpid(pid, 0)
log.decision("p", "1", "fs.read", "/parent2", {{"verdict": "deny"}})
log.close()
""")
    assert res.returncode == 0, res.stderr
    rep = verify(log_path)
    assert rep.ok, rep.problem
    assert rep.records == 4
