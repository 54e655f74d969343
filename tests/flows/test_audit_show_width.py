"""`promptline audit show` fits the terminal: one line per record (time, kind, decision,
plugin, action, resource with its rule or detail), cut in the middle with "…"; --wide and
--json keep everything."""

from __future__ import annotations

import json
import os
import re
import sys

import pytest
from cli_helpers import promptline, user_env
from hypothesis import given, settings
from hypothesis import strategies as st

from promptline.enforcer.audit import AuditLog

LONG = "/home/user/projects/some/very/long/path/to/a/deeply/nested/directory/secret-file.txt"


def _decision(verdict: str, rule: str | None) -> dict:
    return {"verdict": verdict, "decided_by": "rule" if rule else "default",
            "rules": [{"id": rule, "effect": verdict, "layer": "org", "origin": "org.yaml:3", "message": "",
                       "mode": "enforce"}] if rule else [],
            "policy_version": "abc", "errors": [], "hint": "", "would_deny": False}


def _write_log(path) -> None:
    with AuditLog(str(path)) as log:
        log.lifecycle("project-search-with-a-long-name", "0.1.0", "loaded", "sandbox process, network namespace")
        log.decision("project-search-with-a-long-name", "0.1.0", "fs.read", LONG, _decision("deny", "no-ssh-keys"))
        log.decision("db-tools", "0.1.0", "net.connect", "evil.example:443", _decision("deny", "no-exfil"))
        log.decision("web", "2.0", "fs.write", "/tmp/\x1b[31mred\u202e" + "ü" * 40 + "表" * 30,
                     _decision("ask", "ask-before-writing-outside-the-project"))
        log.policy_reload(False, "v2", "/etc/promptline/org.yaml:12:5: unknown key `rulez` — fix the key")


def _lines(text: str) -> list[str]:
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return [ln for ln in plain.replace("\r", "").splitlines() if ln]


def _cells(line: str) -> int:
    from rich.cells import cell_len
    return cell_len(line)


def test_audit_show_at_80_columns_one_line_per_record(tmp_path):
    log = tmp_path / "audit.jsonl"
    _write_log(log)
    r = promptline(tmp_path, "audit", "show", PROMPTLINE_AUDIT_LOG=str(log))
    assert r.returncode == 0, r.stderr
    lines = _lines(r.stdout)
    assert max(_cells(ln) for ln in lines) <= 80, max(lines, key=_cells)
    assert len([ln for ln in lines if re.match(r"\s*(\d+ )?\d\d:\d\d:\d\d ", ln)]) == 5, lines   # one per record
    deny = next(ln for ln in lines if "[no-ssh-keys]" in ln)
    assert "decision" in deny and "deny" in deny and "fs.read" in deny
    assert deny.split()[-2].startswith("/home/") and "…" in deny and ".txt" in deny   # cut in the middle
    assert "\x1b[31m" not in r.stdout and "\u202e" not in r.stdout                   # hostile text escaped
    assert any("reload" in ln and "failed" in ln for ln in lines)
    # control: --wide and --json keep every value whole
    wide = promptline(tmp_path, "audit", "show", "--wide", PROMPTLINE_AUDIT_LOG=str(log))
    assert wide.returncode == 0 and "project-search-with-a-long-name@0.1.0" in wide.stdout.replace("\n", "")
    folded = "".join(ln.strip() for ln in wide.stdout.splitlines())
    assert "secret-file.txt" in folded and "ask-before-writing-outside-the-project" in folded
    js = promptline(tmp_path, "audit", "show", "--json", PROMPTLINE_AUDIT_LOG=str(log))
    assert [json.loads(x)["seq"] for x in js.stdout.splitlines()] == [1, 2, 3, 4, 5]
    assert LONG in js.stdout


def test_audit_show_on_a_terminal_at_80_columns(tmp_path):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from test_cli_terminal import run_on_pty
    log = tmp_path / "audit.jsonl"
    _write_log(log)
    env = user_env(tmp_path, PROMPTLINE_AUDIT_LOG=str(log))
    del env["COLUMNS"]
    out, code = run_on_pty([sys.executable, "-m", "promptline", "audit", "show"], dict(env, COLUMNS="80"),
                           until=b"fix the key")
    lines = _lines(out.decode("utf-8", "replace"))
    assert code == 0 and any("[no-exfil]" in ln for ln in lines), lines
    assert max(_cells(ln) for ln in lines) <= 80, max(lines, key=_cells)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)


@settings(max_examples=80, deadline=None)
@given(records=st.lists(st.tuples(_text, _text, _text, _text, st.sampled_from(["allow", "deny", "ask"])),
                        min_size=1, max_size=4),
       width=st.integers(min_value=60, max_value=200))
def test_every_line_fits_any_width(tmp_path_factory, records, width):
    import contextlib
    import io

    from promptline.cli import audit_cmd
    path = tmp_path_factory.mktemp("log") / "audit.jsonl"
    with AuditLog(str(path)) as log:
        for pid_text, action, resource, rule, verdict in records:
            log.decision("p-" + "".join(c for c in pid_text.lower() if c.isascii() and c.isalnum())[:60] + "x",
                         "0.1.0", action or "fs.read", resource, _decision(verdict, rule or None))
    recs = list(audit_cmd.read_records(str(path)))
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("COLUMNS", str(width))
        audit_cmd._lines(recs)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(recs) + 2              # date line, header, one line per record
    assert all(_cells(ln) <= width for ln in lines), (width, max(lines, key=_cells))


@pytest.mark.parametrize("width", [80, 120])
def test_header_and_rule_kept(tmp_path, width):
    log = tmp_path / "audit.jsonl"
    _write_log(log)
    r = promptline(tmp_path, "audit", "show", "--decision", "deny", PROMPTLINE_AUDIT_LOG=str(log),
                   COLUMNS=str(width))
    lines = _lines(r.stdout)
    assert lines[1].split()[:4] == (["time", "kind", "decision", "plugin"] if width == 80
                                    else ["seq", "time", "kind", "decision"])
    assert any(ln.endswith("[no-exfil]") for ln in lines)
