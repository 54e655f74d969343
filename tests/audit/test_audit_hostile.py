"""Hostile logs, files and arguments given to `promptline audit`: one clear error, never a
traceback or a hang, and nothing changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from audit_helpers import PY, REPO, decision, lines, write_log
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from promptline.cli.audit_cmd import audit_group
from promptline.enforcer.audit import AuditLog, verify

COMMANDS = (["show"], ["show", "--json"], ["stats"], ["stats", "--json"], ["verify"],
            ["tail", "-n", "5"], ["tail", "--json"])


def _cli(*args):
    return CliRunner().invoke(audit_group, list(args))


def _clean(r, code=None):
    """No traceback: the command ended by its own exit (a clean status)."""
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exc_info
    assert "Traceback" not in r.output
    if code is not None:
        assert r.exit_code == code, r.output


def _append_line(path, raw: bytes):
    with open(path, "ab") as f:
        f.write(raw + b"\n")


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("bad", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"v":1,"seq":99,"time":"t","pid":1,"host":"h","kind":"decision","prev":"' + b"0" * 64
    + b'","resource":"\\ud800\\udfff\\ud800"}',
    b"\xff\xfe\x00garbage",
], ids=["brackets", "objects", "surrogate", "bytes"])
def test_hostile_lines(log_path, cmd, bad):
    write_log(log_path, 4)
    _append_line(log_path, bad)
    before = open(log_path, "rb").read()
    r = _cli(*cmd, "--log", log_path)
    _clean(r)
    assert r.exit_code in (0, 1), r.output
    if cmd == ["verify"]:
        assert r.exit_code == 1 and "corrupt" in r.output and f"{log_path}:5" in r.output
    assert open(log_path, "rb").read() == before


def test_a_lone_surrogate_is_never_printed(log_path):
    write_log(log_path, 2)
    _append_line(log_path, b'{"v":1,"seq":3,"time":"t","pid":1,"host":"h","kind":"decision",'
                           b'"prev":"' + b"0" * 64 + b'","resource":"\\ud800"}')
    r = _cli("show", "--json", "--log", log_path)
    _clean(r, 0)
    assert len(r.output.splitlines()) == 2  # the honest records still show


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("target", ["/dev/zero", "/proc/self/mem", "/dev/null", "dir",
                                    "fifo", "x" * 100_000, "/tmp/a\0b"])
def test_hostile_log_paths(tmp_path, cmd, target):
    if target == "dir":
        target = str(tmp_path)
    elif target == "fifo":
        target = str(tmp_path / "fifo.jsonl")
        os.mkfifo(target)
    r = _cli(*cmd, "--log", target)
    _clean(r, 2)
    assert r.output.startswith("error: ") and len(r.output.splitlines()) == 1


def test_tail_follow_refuses_a_device(tmp_path):
    # tail -f on /dev/zero must not read forever: it stops with one clear error
    env = dict(os.environ, PYTHONPATH=REPO)
    code = "from promptline.cli.audit_cmd import audit_group; audit_group()"
    p = subprocess.run([PY, "-c", code, "tail", "-f", "--log", "/dev/zero"], env=env,
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and "not a regular file" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("args", [
    ["show", "--since", "9" * 30 + "d"], ["show", "--since", "99999999999999w"],
    ["show", "--until", "9" * 5000 + "s"], ["show", "--since", "10000-01-01"],
    ["show", "--limit", "9" * 40], ["tail", "-n", "9" * 40], ["stats", "--top", "9" * 40],
    ["show", "--limit", "-1"], ["verify", "--anchor", "9" * 40 + ":" + "0" * 64],
    ["show", "--since", "\u202e2h"], ["show", "--plugin", "[" * 10_000],
])
def test_hostile_arguments(log_path, args):
    write_log(log_path, 3)
    r = _cli(*args, "--log", log_path)
    _clean(r)
    assert r.exit_code in (0, 1, 2)
    assert "\u202e" not in r.output  # bidi characters are shown escaped


@pytest.mark.parametrize("policy", [
    b"x: &x [*x]\nrules: []\n",
    b"rules: " + b"[" * 500 + b"]" * 500 + b"\n",
    b"rules: " + b"[" * 100_000 + b"\n",
    b"rules:\n  - id: a\n    x: [1, 2\n",
    b"\xff\xfe",
    b"rules:\n  - id: {a: 1}\n",
], ids=["alias-cycle", "nested-500", "nested-100k", "syntax", "not-utf8", "odd-id"])
def test_hostile_policy_files_for_stats(log_path, tmp_path, policy):
    write_log(log_path, 3)
    pf = tmp_path / "p.yaml"
    pf.write_bytes(policy)
    r = _cli("stats", "--policy", str(pf), "--log", log_path)
    _clean(r)
    if r.exit_code == 2:
        assert r.output.startswith(f"error: {pf}") and len(r.output.splitlines()) == 1
    # an honest control in the same run
    pf.write_text("rules:\n  - id: no-ssh\n  - id: dead\n")
    r = _cli("stats", "--policy", str(pf), "--log", log_path)
    _clean(r, 0)
    assert "dead" in r.output


def test_rules_file_that_never_ends_is_refused(log_path):
    write_log(log_path, 3)
    r = _cli("stats", "--rules-file", "/dev/zero", "--log", log_path)
    _clean(r, 2)


_ARG = st.one_of(
    st.sampled_from(["--since", "--until", "--limit", "-n", "--top", "--plugin", "--action",
                     "--decision", "--kind", "--rule", "--anchor", "--json", "--policy",
                     "--rules-file", "-f"]),
    st.text(max_size=30),
    st.integers().map(str),
    st.from_regex(r"\A-?\d{1,60}[smhdw]?\Z"),
)


@settings(max_examples=150, deadline=None)
@given(cmd=st.sampled_from(["show", "stats", "verify", "tail"]),
       args=st.lists(_ARG, max_size=6))
def test_fuzzed_arguments_never_trace_back(tmp_path_factory, cmd, args):
    path = str(tmp_path_factory.mktemp("fz") / "audit.jsonl")
    with AuditLog(path) as log:
        log.decision("p", "1", "fs.read", "/x", decision())
    if cmd == "tail" and "-f" in args:
        args = [a for a in args if a != "-f"]
    before = lines(path)
    r = _cli(cmd, *args, "--log", path)
    _clean(r)
    assert r.exit_code in (0, 1, 2), (args, r.output)
    assert lines(path) == before
    assert verify(path).ok


def test_module_runs_without_rich_markup_injection(log_path):
    # a plugin id with rich markup is printed as text, not interpreted
    with AuditLog(log_path) as log:
        log.decision("[bold red]x[/]", "1", "fs.read", "/y", decision())
    r = _cli("show", "--log", log_path)
    _clean(r, 0)
    assert "[bold red]x[/]" in r.output
    assert json.loads(_cli("show", "--json", "--log", log_path).output)["plugin"]["id"] \
        == "[bold red]x[/]"
    assert sys.maxsize  # keeps the import used on every platform
