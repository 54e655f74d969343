"""Plugin updates under watch are rebuild-then-swap: real watchdog observers, real files, a
caller thread calling the plugin the whole time. Invalid manifests, syntax errors, a new
version whose import fails and slow writers inside one open() never cost a call; valid
updates take effect; every refused update says why (audit record, manager, CLI)."""

import json
import os
import random
import threading
import time

import pytest
from click.testing import CliRunner

from promptline.enforcer.audit import AuditLog, read_records
from promptline.loaders import ApprovalStore, PluginManager

CODE = '''
from promptline import Tool, ToolPlugin, ToolResult
VERSION = {version!r}

class Version(Tool):
    name = "version"
    description = "which code answers"
    def execute(self, args):
        return ToolResult.success(str(VERSION))

class Demo(ToolPlugin):
    def tools(self):
        return [Version()]
'''
MANIFEST = 'id: demo\nversion: "{v}"\nentry: {{python: "demo_mod:Demo"}}\nsandbox: none\n'
POLICY = "apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings:\n  trust: [demo]\n"


def write_atomic(path, text):
    tmp = f"{path}.tmp{random.randrange(1 << 30)}"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_in_place(path, text, pause=0.0):
    """Truncate and write in one open(), pausing half-way (the prefix is on disk meanwhile)."""
    with open(path, "w") as fh:
        half = len(text) // 2
        fh.write(text[:half])
        fh.flush()
        time.sleep(pause)
        fh.write(text[half:])


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


class Caller:
    """Calls demo.version in a loop; counts failed calls and every answer seen."""

    def __init__(self, pm):
        self.pm, self.calls, self.failed, self.seen, self.errors = pm, 0, 0, set(), []
        self.stop = threading.Event()
        self.last = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            r = self.pm.call_tool("demo.version", {})
            self.calls += 1
            if r.ok:
                self.seen.add(r.content)
                self.last = r.content
            else:
                self.failed += 1
                self.errors.append(r.error.message)


@pytest.fixture
def host(tmp_path):
    plugins = tmp_path / "plugins"
    d = plugins / "demo"
    d.mkdir(parents=True)
    (d / "plugin.yaml").write_text(MANIFEST.format(v="1.0.0"))
    (d / "demo_mod.py").write_text(CODE.format(version="v0"))
    pol = tmp_path / "policy.yaml"
    pol.write_text(POLICY)
    os.chmod(pol, 0o644)
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    pm = PluginManager(policy_files=[str(pol)], search_path=[str(plugins)], config_path=False,
                       entry_points=False, audit_log=log, watch=True,
                       approvals=ApprovalStore(str(tmp_path / "approvals.yaml")), approve_all=True)
    yield pm, d, tmp_path
    pm.shutdown()


def _reload_records(tmp):
    return [r for r in read_records(str(tmp / "audit.jsonl")) if r.get("kind") == "plugin_reload"]


def test_twenty_updates_under_load_cost_no_call(host):
    pm, d, tmp = host
    assert pm.load_all().loaded == ["demo"]
    caller = Caller(pm)
    caller.thread.start()
    assert wait_for(lambda: caller.last == "v0")
    expected_bad = []
    good = 0

    def valid(k, how):
        nonlocal good
        good += 1
        text = CODE.format(version=f"v{k}")
        if how == "slow":
            # the prefix on disk while the writer pauses is a valid module answering "partial"
            text = CODE.format(version="partial") + f"\nVERSION = 'v{k}'\n"
            write_in_place(d / "demo_mod.py", text, pause=0.3)
        else:
            write_atomic(d / "demo_mod.py", text)
        assert wait_for(lambda: caller.last == f"v{k}"), f"update v{k} ({how}) took effect"

    def refused(write, fragment):
        pm.plugin_reload_errors.clear()
        before = caller.last
        write()
        assert wait_for(lambda: fragment in pm.plugin_reload_errors.get("demo", "")), \
            (fragment, pm.plugin_reload_errors)
        assert caller.last == before and "demo" in pm.plugins, "the old version keeps serving"
        expected_bad.append(fragment)

    try:
        for k in range(1, 21):
            kind = k % 5
            if kind == 0:
                valid(k, "atomic")
            elif kind == 1:
                refused(lambda: write_in_place(d / "plugin.yaml", "id: demo\nversion: [oops\n"), "plugin.yaml")
                write_atomic(d / "plugin.yaml", MANIFEST.format(v="1.0.0"))
                valid(k, "atomic")
            elif kind == 2:
                refused(lambda: write_atomic(d / "demo_mod.py", "def broken(:\n"), "SyntaxError")
                valid(k, "slow")
            elif kind == 3:
                refused(lambda: write_atomic(d / "demo_mod.py", "raise RuntimeError('import fails')\n"),
                        "import fails")
                valid(k, "atomic")
            else:
                # a slow in-place manifest write whose prefix would be a different plugin id
                write_in_place(d / "plugin.yaml", MANIFEST.format(v=f"1.0.{k}"), pause=0.3)
                valid(k, "slow")
    finally:
        caller.stop.set()
        caller.thread.join(10)
    print(f"\nplugin updates: {caller.calls} calls, {caller.failed} failed, "
          f"{good} valid updates applied, {len(expected_bad)} refused")
    assert caller.failed == 0, caller.errors[:3]
    assert caller.calls > 100
    assert "partial" not in caller.seen, "a half-written file was never imported"
    assert {f"v{k}" for k in range(1, 21)} <= caller.seen
    pm.audit_log.flush()
    recs = _reload_records(tmp)
    bad = [r for r in recs if not r["ok"]]
    assert len(bad) >= len(expected_bad) and all(r["error"] for r in bad)
    assert any(r["ok"] for r in recs)
    assert any("SyntaxError" in r["error"] and "keeps serving" in r["error"] for r in bad)


def test_a_removed_plugin_is_still_unloaded(host):
    pm, d, tmp = host
    pm.load_all()
    (d / "plugin.yaml").unlink()
    assert wait_for(lambda: "demo" not in pm.plugins), "no plugin.yaml: removed"


def test_the_cli_shows_why_an_update_was_refused(host):
    pm, d, tmp = host
    pm.load_all()
    write_atomic(d / "demo_mod.py", "def broken(:\n")
    assert wait_for(lambda: "SyntaxError" in pm.plugin_reload_errors.get("demo", ""))
    pm.audit_log.flush()
    from promptline.cli import main
    res = CliRunner().invoke(main, ["audit", "show", "--log", str(tmp / "audit.jsonl"),
                                    "--kind", "plugin_reload", "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines() if line.strip()]
    assert rows and not rows[-1]["ok"] and "SyntaxError" in rows[-1]["error"]


def test_process_plugin_updates_swap_only_once_the_new_child_answers(tmp_path):
    """The default sandbox: an update starts a new child beside the old one; the old child
    serves until the new one answered `initialize` and listed its tools. A version whose
    child cannot start (syntax error, failing import) keeps the old child serving."""
    plugins = tmp_path / "plugins"
    d = plugins / "demo"
    d.mkdir(parents=True)
    (d / "plugin.yaml").write_text('id: demo\nversion: "1.0.0"\nentry: {python: "demo_mod:Demo"}\n')
    (d / "demo_mod.py").write_text(CODE.format(version="v0"))
    pol = tmp_path / "policy.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\n")
    os.chmod(pol, 0o644)
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    pm = PluginManager(policy_files=[str(pol)], search_path=[str(plugins)], config_path=False,
                       entry_points=False, audit_log=log, watch=True,
                       approvals=ApprovalStore(str(tmp_path / "approvals.yaml")), approve_all=True)
    with pm:
        assert pm.load_all().loaded == ["demo"] and pm.plugins["demo"].sandbox == "process"
        caller = Caller(pm)
        caller.thread.start()
        try:
            assert wait_for(lambda: caller.last == "v0", 20)
            for k, bad in enumerate(["def broken(:\n", "raise RuntimeError('import fails')\n", None, None], 1):
                pm.plugin_reload_errors.clear()
                if bad is not None:
                    first = pm.plugins["demo"]
                    write_atomic(d / "demo_mod.py", bad)
                    assert wait_for(lambda: "demo" in pm.plugin_reload_errors, 30), pm.plugin_reload_errors
                    assert "did not start" in pm.plugin_reload_errors["demo"]
                    assert pm.plugins["demo"] is first and caller.last == f"v{k - 1}"
                    write_atomic(d / "demo_mod.py", CODE.format(version=f"v{k}"))
                else:
                    write_atomic(d / "demo_mod.py", CODE.format(version=f"v{k}"))
                assert wait_for(lambda k=k: caller.last == f"v{k}", 30), (k, caller.last, pm.plugin_reload_errors)
        finally:
            caller.stop.set()
            caller.thread.join(20)
        print(f"\nprocess plugin updates: {caller.calls} calls, {caller.failed} failed")
        assert caller.failed == 0, caller.errors[:3]
        assert {"v0", "v1", "v2", "v3", "v4"} <= caller.seen
