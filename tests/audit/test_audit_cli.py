"""`promptline audit show|tail|stats` on real logs."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest
from audit_helpers import PY, REPO, decision
from click.testing import CliRunner

from promptline.cli.audit_cmd import audit_group
from promptline.enforcer.audit import AuditLog


@pytest.fixture
def sample(log_path):
    with AuditLog(log_path) as log:
        log.lifecycle("db-tools", "0.1.0", "loaded")
        log.decision("db-tools", "0.1.0", "fs.read", "/home/u/.ssh/id_rsa", decision())
        log.decision("db-tools", "0.1.0", "fs.read", "/home/u/.ssh/id_rsa", decision())
        log.decision("db-tools", "0.1.0", "net.connect", "evil.example:443",
                     decision("deny", rule="no-exfil"))
        log.decision("web", "2.0", "net.connect", "api.example.com:443",
                     decision("allow", rule="web-ok"))
        log.decision("web", "2.0", "fs.write", "/tmp/\x1b[31mred\u202e", decision("ask",
                                                                                 rule="ask-w"))
        log.policy_reload(True, "v2")
    return log_path


def _cli(*args, env=None):
    return CliRunner().invoke(audit_group, list(args), env=env)


def _json_lines(out):
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def test_show_table(sample):
    r = _cli("show", "--log", sample)
    assert r.exit_code == 0, r.output
    assert "id_rsa" in r.output and "no-exfil" in r.output and "lifecycle" in r.output and "loaded" in r.output
    assert "\x1b" not in r.output and "\u202e" not in r.output  # escaped for the terminal
    assert "\\x1b" in r.output


@pytest.mark.parametrize("args,expect", [
    (["--plugin", "web"], 2),
    (["--plugin", "db-*"], 4),
    (["--action", "net.*"], 2),
    (["--decision", "deny"], 3),
    (["--decision", "deny", "--action", "fs.read"], 2),
    (["--rule", "no-exfil"], 1),
    (["--kind", "policy_reload"], 1),
    (["--since", "1h"], 7),
    (["--until", "2000-01-01"], 0),
    (["--limit", "2"], 2),
])
def test_show_filters(sample, args, expect):
    r = _cli("show", "--log", sample, "--json", *args)
    assert r.exit_code == 0, r.output
    assert len(_json_lines(r.stdout)) == expect


def test_show_bad_time_is_a_usage_error(sample):
    r = _cli("show", "--log", sample, "--since", "yesterday-ish")
    assert r.exit_code == 2 and "cannot read time" in r.output


def test_log_from_environment(sample):
    r = _cli("show", "--json", env={"PROMPTLINE_AUDIT_LOG": sample})
    assert r.exit_code == 0 and len(_json_lines(r.stdout)) == 7


def test_show_missing_log(tmp_path):
    r = _cli("show", "--log", str(tmp_path / "x.jsonl"))
    assert r.exit_code == 2 and "no audit log" in r.output


def test_tail_last_n(sample):
    r = _cli("tail", "--log", sample, "-n", "2", "--json")
    assert [x["kind"] for x in _json_lines(r.stdout)] == ["decision", "policy_reload"]


def test_stats_json_and_dead_rules(sample, tmp_path):
    pol = tmp_path / "org.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules:\n"
                   "  - id: no-ssh\n    effect: deny\n    actions: [fs.read]\n"
                   "  - id: never-used\n    effect: deny\n    actions: [native.load]\n")
    r = _cli("stats", "--log", sample, "--json", "--policy", str(pol))
    assert r.exit_code == 0, r.output
    st = json.loads(r.stdout)
    assert st["dead_rules"] == ["never-used"]
    assert st["rule_hits"] == {"no-ssh": 2, "no-exfil": 1, "web-ok": 1, "ask-w": 1}
    assert st["refused"][0] == {"action": "fs.read", "resource": "/home/u/.ssh/id_rsa",
                                "count": 2}
    assert {"plugin": "db-tools", "action": "fs.read", "decision": "deny",
            "count": 2} in st["matrix"]
    r = _cli("stats", "--log", sample)
    assert r.exit_code == 0 and "most refused" in r.output and "not checked" in r.output


def test_stats_rules_file_and_bad_policy(sample, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("# rules\nno-ssh\nghost\n")
    r = _cli("stats", "--log", sample, "--rules-file", str(ids))
    assert r.exit_code == 0 and "ghost" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n  - id: x\n")
    r = _cli("stats", "--log", sample, "--policy", str(bad))
    assert r.exit_code == 2 and f"{bad}:" in r.output and "Traceback" not in r.output


def test_main_cli_has_the_audit_group(sample):
    from promptline.cli import main

    res = CliRunner().invoke(main, ["audit", "verify", "--log", sample])
    assert res.exit_code == 0 and "ok: 7 records" in res.output


@pytest.mark.slow
def test_tail_follow_sees_new_records_across_rotation(log_path):
    from promptline.enforcer.audit import AuditSettings

    with AuditLog(log_path) as log:
        log.decision("p", "1", "fs.read", "/before", decision())
    env = dict(os.environ, PYTHONPATH=REPO)
    code = "from promptline.cli.audit_cmd import audit_group; audit_group()"
    proc = subprocess.Popen([PY, "-c", code, "tail", "-f", "-n", "1", "--json", "--log",
                             log_path], stdout=subprocess.PIPE, text=True, env=env)
    timer = threading.Timer(20, proc.kill)  # a hung follower fails the test, not the suite
    timer.start()
    try:
        assert json.loads(proc.stdout.readline())["resource"] == "/before"
        time.sleep(0.5)
        with AuditLog(log_path, AuditSettings(rotate_bytes=2_000)) as log:
            for i in range(12):
                log.decision("p", "1", "fs.read", f"/new{i}", decision())
        seen = []
        while len(seen) < 12:
            rec = json.loads(proc.stdout.readline())
            if rec["kind"] == "decision":
                seen.append(rec["resource"])
            else:
                assert rec["kind"] == "rotated"  # each new file starts with one
        assert seen == [f"/new{i}" for i in range(12)]
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
