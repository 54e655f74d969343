"""`promptline plugin stats`: counted from a real audit log written by the real Enforcer."""

from __future__ import annotations

import json

from click.testing import CliRunner

from promptline.cli import main
from promptline.enforcer import Enforcer
from promptline.enforcer.audit import AuditLog, read_records
from promptline.loaders._registry._stats import _percentile, plugin_stats
from promptline.policy import Request, load_policy_set

POLICY = """\
apiVersion: promptline/v1
kind: Policy
layer: org
rules:
  - id: no-delete
    effect: deny
    actions: [tool.call]
    when: request.tool == "delete"
  - id: no-ssh-keys
    effect: deny
    actions: [fs.read]
    when: within(request.path, "~/.ssh")
"""
MANIFEST = """\
apiVersion: promptline/v1
id: notes
version: 1.0.0
entry: {python: "notes:Plugin"}
capabilities: {filesystem: {read: ["~/notes/**"]}}
"""


def _log(tmp_path):
    (tmp_path / "org.yaml").write_text(POLICY)
    ps = load_policy_set([str(tmp_path / "org.yaml")], [(str(tmp_path / "plugin.yaml"), MANIFEST)])
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    enf = Enforcer(ps, audit_log=log)
    for tool, n in (("search", 5), ("add", 2), ("delete", 3)):
        for i in range(n):
            enf.check("notes", Request.tool_call("notes", tool, {"i": i}))
    enf.check("notes", Request("fs.read", "notes", path="~/.ssh/id_rsa"))
    enf.check("notes", Request("fs.read", "notes", path="~/notes/a.md"))
    enf.check("other", Request.tool_call("other", "delete", {}))          # another plugin: not counted
    log.close()
    return tmp_path / "audit.jsonl"


def test_stats_from_a_real_log(tmp_path):
    path = _log(tmp_path)
    s = plugin_stats(read_records(path), "notes")
    calls = {t: v["calls"] for t, v in s["tools"].items()}
    refused = {t: v["refused"] for t, v in s["tools"].items()}
    assert calls == {"add": 2, "delete": 3, "search": 5}      # allows are logged (audit_allows default)
    assert refused == {"add": 0, "delete": 3, "search": 0}
    assert s["refusals_by_rule"] == {"no-delete": 3, "no-ssh-keys": 1}
    assert s["latency_recorded"] is False
    r = CliRunner().invoke(main, ["plugin", "stats", "notes", "--log", str(path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["refusals_by_rule"]["no-delete"] == 3
    r = CliRunner().invoke(main, ["plugin", "stats", "notes", "--log", str(path), "--since", "1h"])
    assert r.exit_code == 0 and "no-delete" in r.output and "not recorded" in r.output
    r = CliRunner().invoke(main, ["plugin", "stats", "notes", "--log", str(path), "--since", "2999-01-01"])
    assert r.exit_code == 0 and "no-delete" not in r.output                 # the window excludes them


def test_latency_percentiles_when_recorded():
    recs = [{"kind": "decision", "plugin": {"id": "p"}, "action": "tool.call", "resource": "t", "decision": "allow",
             "time": f"2026-01-01T00:00:{i:02d}.000000Z", "duration_ms": float(i + 1)} for i in range(100)]
    s = plugin_stats(recs, "p")
    assert s["tools"]["t"]["p50_ms"] == 50.0 and s["tools"]["t"]["p99_ms"] == 99.0 and s["latency_recorded"]
    assert _percentile([], 50) is None and _percentile([3.0], 99) == 3.0


def test_site_section_from_a_host_audit_log(tmp_path, key):
    from registry_helpers import write_plugin

    from promptline.loaders._registry import build_site, publish
    path = _log(tmp_path)
    root = write_plugin(tmp_path / "src", "notes")
    publish(root, tmp_path / "index", key=key[0])
    out = build_site(tmp_path / "index", tmp_path / "site", audit_log=path)
    page = (out / "plugins" / "notes" / "index.html").read_text()
    assert "Usage on this host" in page and "<td>search</td><td>5</td><td>0</td>" in page
    assert "<code>no-delete</code>: 3" in page and "latency: not recorded" in page
    plain = build_site(tmp_path / "index", tmp_path / "site2")
    assert "Usage on this host" not in (plain / "plugins" / "notes" / "index.html").read_text()
