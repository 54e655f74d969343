"""Async plugins at `none`: the event loop is the host's, the plugin's coroutines run on it as
the plugin (real PluginManager, real enforcer hook, called from the main thread)."""

import asyncio
import textwrap
import threading

from test_manager import env, manager, policy  # noqa: F401 - fixtures

ASYNC_CODE = '''
import asyncio, signal
from promptline import Tool, ToolPlugin, ToolResult, RecoveryAction

class Count(Tool):
    name = "count"
    parameters = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    def __init__(self, plugin):
        self.plugin = plugin
    async def execute(self, args):
        async with self.plugin.lock:            # made in initialize: bound to the plugin's loop
            await asyncio.sleep(0.01)
            self.plugin.total += args["n"]
            return ToolResult.success(str(self.plugin.total))

class Signal(Tool):
    name = "signal"
    async def execute(self, args):
        signal.signal(signal.SIGUSR1, lambda *a: None)
        return ToolResult.success("installed")

class Flaky(Tool):
    name = "flaky"
    def __init__(self, plugin):
        self.plugin = plugin
    async def execute(self, args):
        self.plugin.tries += 1
        if self.plugin.tries < 3:
            raise ValueError("not yet")
        return ToolResult.success(f"after {self.plugin.tries}")

class Demo(ToolPlugin):
    async def initialize(self, config):
        await asyncio.sleep(0.01)
        self.lock = asyncio.Lock()
        self.total = 0
        self.tries = 0
    async def tools(self):
        return [Count(self), Signal(), Flaky(self)]
    async def on_tool_error(self, tool, error):
        return RecoveryAction.RETRY if tool == "flaky" else RecoveryAction.PROPAGATE
    async def shutdown(self):
        await asyncio.sleep(0)
'''


def write(plugins):
    d = plugins / "demo"
    d.mkdir()
    (d / "plugin.yaml").write_text("id: demo\nversion: 1.0.0\nentry: {python: 'demo_mod:Demo'}\nsandbox: none\n")
    (d / "demo_mod.py").write_text(textwrap.dedent(ASYNC_CODE))


def test_async_initialize_tools_and_recovery_work_in_process(tmp_path, env):  # noqa: F811
    plugins, log = env
    write(plugins)
    assert threading.current_thread() is threading.main_thread()
    with manager(tmp_path, plugins, log, policy(tmp_path)) as pm:
        report = pm.load_all()
        assert report.loaded == ["demo"], report
        assert pm.plugins["demo"].sandbox == "none"
        assert sorted(n for n, _ in pm.list_tools()) == ["demo.count", "demo.flaky", "demo.signal"]
        assert pm.call_tool("demo.count", {"n": 2}).content == "2"
        assert pm.call_tool("demo.count", {"n": 3}).content == "5", "loop-bound state survives calls"
        assert pm.call_tool("demo.flaky", {}).content == "after 3", "async on_tool_error retried"
        # the loop is the host's: the plugin itself still may not install a signal handler
        refused = pm.call_tool("demo.signal", {})
        assert not refused.ok and "signal.signal" in refused.content

        async def from_a_running_loop():        # a host that is itself async
            return pm.call_tool("demo.count", {"n": 1})
        assert asyncio.run(from_a_running_loop()).content == "6"
    assert any(r.get("decision") == "deny" and "signal" in str(r.get("resource", ""))
               for r in log_records(log))


def log_records(log):
    from promptline.enforcer.audit import read_records
    log.flush()
    return list(read_records(log.path))
