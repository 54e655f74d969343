"""A process plugin that hangs while starting (on import, or in initialize): load_all()
reports it failed, a restart during a call gets the call's timeout (not START_TIMEOUT), and
the calls after a failed start fail at once, with a backoff, instead of blocking each time.
Real child processes; the honest control is the same plugin starting normally."""

from __future__ import annotations

import os
import time

from promptline.loaders import ApprovalStore, PluginManager
from promptline.loaders._process import _child

HANG_ON_IMPORT = '''
import time
time.sleep(3600)
'''

# initialize() hangs from the second start on (its first start leaves a marker in its data dir)
HANG_ON_RESTART = '''
import os, time
from promptline import Tool, ToolPlugin, ToolResult

class Crash(Tool):
    name = "crash"
    description = "kills its own process"
    def execute(self, args):
        os._exit(3)

class Ping(Tool):
    name = "ping"
    description = "answers"
    def execute(self, args):
        return ToolResult.success("pong")

class Demo(ToolPlugin):
    def initialize(self, config):
        marker = os.path.join(str(config.data_dir), "started")
        if os.path.exists(marker):
            time.sleep(3600)
        open(marker, "w").close()
    def tools(self):
        return [Crash(), Ping()]
'''


def _manager(tmp_path, code, **kw):
    plugins = tmp_path / "plugins"
    d = plugins / "demo"
    d.mkdir(parents=True)
    (d / "plugin.yaml").write_text('id: demo\nversion: 1.0.0\nentry: {python: "demo_mod:Demo"}\n'
                                   'sandbox: process\n')
    (d / "demo_mod.py").write_text(code)
    pol = tmp_path / "policy.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\n")
    os.chmod(pol, 0o644)
    return PluginManager(policy_files=[str(pol)], search_path=[str(plugins)], config_path=False, entry_points=False,
                         approvals=ApprovalStore(str(tmp_path / "approvals.yaml")), approve_all=True,
                         audit_log=False, data_dir=str(tmp_path / "data"), **kw)


def test_a_plugin_hanging_on_import_is_reported_failed_by_load_all(tmp_path, monkeypatch):
    monkeypatch.setattr(_child, "START_TIMEOUT", 2.0)
    with _manager(tmp_path, HANG_ON_IMPORT) as pm:
        start = time.monotonic()
        report = pm.load_all()
        took = time.monotonic() - start
        assert report.loaded == [] and "demo" not in pm.plugins, report
        why = dict(report.refused)["demo"]
        assert "did not start" in why and "within 2 s" in why, why
        assert took < 10, took
        result = pm.call_tool("demo.ping", {})
        assert not result.ok and result.error.kind == "unknown-tool"


def test_a_restart_that_hangs_gets_the_call_timeout_then_calls_fail_fast(tmp_path):
    with _manager(tmp_path, HANG_ON_RESTART, call_timeout=1.5) as pm:
        assert pm.load_all().loaded == ["demo"]
        assert pm.call_tool("demo.ping", {}).content == "pong", "the honest first start works"
        crashed = pm.call_tool("demo.crash", {})
        assert not crashed.ok and crashed.error.kind == "unavailable"
        start = time.monotonic()
        hung = pm.call_tool("demo.ping", {})          # restarts: initialize now hangs
        took = time.monotonic() - start
        assert not hung.ok and "initialize" in hung.content, hung
        assert took < 1.5 + 1.0, f"the restart took the call's timeout, not START_TIMEOUT ({took:.1f} s)"
        times = []
        for _ in range(5):
            t = time.monotonic()
            r = pm.call_tool("demo.ping", {})
            times.append(time.monotonic() - t)
            assert not r.ok and r.error.kind == "unavailable" and "next restart in" in r.content, r
        assert max(times) < 0.5, times
        assert _child.START_BACKOFF[0] > 0
