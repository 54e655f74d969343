"""One broken plugin.yaml is that plugin's error, never everyone's (recursive aliases, deep
nesting): discovery reports it with file:line:column and every other plugin still loads."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from loader_helpers import make_plugin

from promptline.loaders import discover

HOSTILE = {
    "alias-cycle": "id: bad\nversion: 0.1.0\nx: &x [*x]\n",
    "nested-500": "id: bad\nversion: 0.1.0\nx: " + "[" * 500 + "]" * 500 + "\n",
    "nested-100k": "id: bad\nversion: 0.1.0\nx: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "mapping-cycle": "id: bad\nversion: 0.1.0\nx: &m {a: *m}\n",
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_manifest_is_one_plugins_error(tmp_path, text):
    make_plugin(tmp_path, "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "plugin.yaml").write_text(text)
    found = discover(search_path=[tmp_path])
    assert [p.id for p in found] == ["good"]  # the honest plugin beside it is found
    (problem,) = found.problems
    msg = str(problem)
    assert "plugin.yaml:" in msg and ("nested" in msg or "depth" in msg), msg


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_plugin_list_prints_no_traceback(tmp_path, monkeypatch, text):
    from promptline.cli import main

    make_plugin(tmp_path, "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "plugin.yaml").write_text(text)
    monkeypatch.setenv("PROMPTLINE_PLUGIN_PATH", str(tmp_path))
    monkeypatch.setenv("PROMPTLINE_CONFIG", str(tmp_path / "none.yaml"))
    r = CliRunner().invoke(main, ["plugin", "list"])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exc_info
    assert "Traceback" not in r.output and "good" in r.output


@pytest.mark.parametrize("args", [
    ["plugin", "info", "x" * 100_000], ["plugin", "approve", "x" * 100_000, "--yes"],
    ["plugin", "info", "a\u202eb"], ["plugin", "info", "/tmp/a\0b"],
    ["tool", "call", "x.y", "[" * 100_000 + "]" * 100_000],
    ["tool", "call", "x.y", '{"a":' * 100_000 + "1" + "}" * 100_000],
], ids=["long-name", "long-approve", "bidi-name", "nul-name", "nested-list-args",
        "nested-object-args"])
def test_hostile_cli_arguments_are_one_clear_error(tmp_path, monkeypatch, args):
    from promptline.cli import main

    monkeypatch.setenv("PROMPTLINE_PLUGIN_PATH", str(tmp_path))
    monkeypatch.setenv("PROMPTLINE_CONFIG", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("PROMPTLINE_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    monkeypatch.setenv("PROMPTLINE_APPROVALS", str(tmp_path / "approvals.yaml"))
    r = CliRunner().invoke(main, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exc_info
    assert r.exit_code in (1, 2) and "Traceback" not in r.output
    assert "\u202e" not in r.output and len(r.output) < 2000
    assert not (tmp_path / "approvals.yaml").exists()  # nothing changed
