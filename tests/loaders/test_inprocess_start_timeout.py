"""An in-process (sandbox: none) plugin hanging on import or in initialize: load_all()
reports it failed within START_TIMEOUT instead of blocking for ever, the hung thread is
abandoned, calls to it fail at once, and the honest plugins in the same load_all load and
answer. Real plugins on disk, real imports, real threads."""

from __future__ import annotations

import os
import sys
import threading
import time

from promptline.loaders import ApprovalStore, PluginManager, _python

HANG_ON_IMPORT = '''
import time
time.sleep(3600)
'''

HANG_IN_INITIALIZE = '''
import time
from promptline import ToolPlugin

class Demo(ToolPlugin):
    def initialize(self, config):
        time.sleep(3600)
    def tools(self):
        return []
'''

HONEST = '''
from promptline import Tool, ToolPlugin, ToolResult

class Ping(Tool):
    name = "ping"
    description = "answers"
    def execute(self, args):
        return ToolResult.success("pong")

class Demo(ToolPlugin):
    def tools(self):
        return [Ping()]
'''


def _write(plugins, pid, code):
    d = plugins / pid
    d.mkdir(parents=True)
    (d / "plugin.yaml").write_text(f'id: {pid}\nversion: 1.0.0\nentry: {{python: "{pid}_mod:Demo"}}\nsandbox: none\n')
    (d / f"{pid}_mod.py").write_text(code)


def _manager(tmp_path, plugins, install_hook=False):
    pol = tmp_path / "policy.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings:\n  trust: [ahang, binit, cok, late]\n")
    os.chmod(pol, 0o644)
    return PluginManager(policy_files=[str(pol)], search_path=[str(plugins)], config_path=False, entry_points=False,
                         approvals=ApprovalStore(str(tmp_path / "approvals.yaml")), approve_all=True,
                         audit_log=False, data_dir=str(tmp_path / "data"), install_hook=install_hook)


def test_hanging_import_and_initialize_are_reported_failed_and_the_honest_plugin_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(_python, "START_TIMEOUT", 1.0)
    plugins = tmp_path / "plugins"
    _write(plugins, "ahang", HANG_ON_IMPORT)      # loaded first (ids in order): the honest one waits for it
    _write(plugins, "binit", HANG_IN_INITIALIZE)
    _write(plugins, "cok", HONEST)
    with _manager(tmp_path, plugins) as pm:
        start = time.monotonic()
        report = pm.load_all()
        took = time.monotonic() - start
        assert report.loaded == ["cok"], report
        assert pm.plugins["cok"].sandbox == "none"
        refused = dict(report.refused)
        assert "did not start within 1 s" in refused["ahang"] and "importing `ahang_mod`" in refused["ahang"], refused
        assert "abandoned" in refused["ahang"]
        assert "did not start within 1 s" in refused["binit"] and "initialize()" in refused["binit"], refused
        assert took < 1.0 * 2 + 3.0, f"load_all took {took:.1f} s"
        assert pm.call_tool("cok.ping", {}).content == "pong", "the honest control works"
        for pid in ("ahang", "binit"):
            t = time.monotonic()
            result = pm.call_tool(f"{pid}.ping", {})
            assert not result.ok and result.error.kind == "unknown-tool", result
            assert time.monotonic() - t < 0.5
        hung = [t for t in threading.enumerate() if t.name == "plugin-ahang-import"]
        assert hung and all(t.daemon and t.is_alive() for t in hung), "the hung import thread is an abandoned daemon"
        assert "ahang_mod" not in sys.modules and "binit_mod" not in sys.modules
        assert not any(getattr(f, "plugin_id", None) in ("ahang", "binit") for f in sys.meta_path)


LATE = '''
import sys, time
time.sleep(1.5)                      # wakes after load_all gave up on it
try:
    with open(SECRET) as fh:
        sys.promptline_late_outcome = "read: " + fh.read()
except BaseException as exc:
    sys.promptline_late_outcome = type(exc).__name__ + ": " + str(exc)
'''


def test_an_abandoned_import_that_wakes_up_is_still_confined_as_the_plugin(tmp_path, monkeypatch):
    monkeypatch.setattr(_python, "START_TIMEOUT", 0.5)
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    plugins = tmp_path / "plugins"
    _write(plugins, "late", LATE.replace("SECRET", repr(str(secret))))
    _write(plugins, "cok", HONEST)
    (tmp_path / "policy.yaml").unlink(missing_ok=True)
    with _manager(tmp_path, plugins, install_hook=True) as pm:
        report = pm.load_all()
        assert report.loaded == ["cok"] and "did not start within 0.5 s" in dict(report.refused)["late"], report
        assert open(secret).read() == "top secret", "the host itself still reads it (honest control)"
        deadline = time.monotonic() + 10
        while not hasattr(sys, "promptline_late_outcome") and time.monotonic() < deadline:
            time.sleep(0.05)
        outcome = sys.__dict__.pop("promptline_late_outcome", None)
        assert outcome is not None and not outcome.startswith("read:"), outcome
        assert outcome.startswith("PolicyViolation: plugin `late` may not fs.read"), outcome
        assert pm.call_tool("cok.ping", {}).content == "pong"
