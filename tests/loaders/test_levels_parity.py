"""What a plugin declares works the same at `none` and in `process`: on_tool_error recovery
(retry, fallback), model availability, and the class attribute `requires` (real PluginManager,
real child processes)."""

import textwrap

import pytest
from test_manager import env, manager, policy  # noqa: F401 - fixtures

LEVELS = pytest.mark.parametrize("trusted", [True, False], ids=["none", "process"])

RECOVERY = '''
import os
from promptline import Tool, ToolPlugin, ToolResult, RecoveryAction

class Flaky(Tool):
    name = "flaky"
    def __init__(self, plugin):
        self.plugin = plugin
    def execute(self, args):
        self.plugin.tries += 1
        if self.plugin.tries < 3:
            raise ValueError(f"try {self.plugin.tries}")
        return ToolResult.success(f"ok after {self.plugin.tries} tries in pid {os.getpid()}")

class Broken(Tool):
    name = "broken"
    async def execute(self, args):
        raise RuntimeError("always")

class Plain(Tool):
    name = "plain"
    def execute(self, args):
        raise RuntimeError("no recovery for me")

class Demo(ToolPlugin):
    def initialize(self, config):
        self.tries = 0
    def tools(self):
        return [Flaky(self), Broken(), Plain()]
    def on_tool_error(self, tool, error):
        if tool == "flaky":
            return RecoveryAction.RETRY
        if tool == "broken":
            return RecoveryAction.fallback(ToolResult.success(f"fallback for {error.message}"))
        return RecoveryAction.PROPAGATE
'''

MODELS = '''
from promptline import LanguageModel, ModelPlugin

class Echo(LanguageModel):
    name = "{name}"
    def complete(self, prompt, **options):
        return "echo: " + prompt

class Demo(ModelPlugin):
    async def is_available(self):
        return {available}
    def provider(self):
        return Echo()
'''


def write(plugins, pid, code, types="[tool]"):
    d = plugins / pid
    d.mkdir()
    (d / "plugin.yaml").write_text(f"id: {pid}\nversion: 1.0.0\ntypes: {types}\n"
                                   f"entry: {{python: '{pid.replace('-', '_')}_mod:Demo'}}\nsandbox: none\n")
    (d / f"{pid.replace('-', '_')}_mod.py").write_text(textwrap.dedent(code))


def trust(ids, trusted):
    return "  trust: [" + (", ".join(ids) if trusted else "") + "]\n"


@LEVELS
def test_on_tool_error_recovery_runs_where_the_plugin_runs(tmp_path, env, trusted):  # noqa: F811
    plugins, log = env
    write(plugins, "demo", RECOVERY)
    with manager(tmp_path, plugins, log, policy(tmp_path, settings=trust(["demo"], trusted))) as pm:
        assert pm.load_all().loaded == ["demo"]
        assert pm.plugins["demo"].sandbox == ("none" if trusted else "process")
        flaky = pm.call_tool("demo.flaky", {})
        assert flaky.ok and flaky.content.startswith("ok after 3 tries"), flaky
        broken = pm.call_tool("demo.broken", {})
        assert broken.ok and broken.content == "fallback for raised `RuntimeError`: always", broken
        plain = pm.call_tool("demo.plain", {})
        assert not plain.ok and "no recovery for me" in plain.content, "propagate: the error comes back"


@LEVELS
def test_models_are_listed_and_an_unavailable_one_is_not_used(tmp_path, env, trusted):  # noqa: F811
    plugins, log = env
    write(plugins, "up-model", MODELS.format(name="up", available=True), types="[model]")
    write(plugins, "down-model", MODELS.format(name="down", available=False), types="[model]")
    write(plugins, "odd-model", MODELS.format(name="odd", available='"yes"'), types="[model]")
    ids = ["up-model", "down-model", "odd-model"]
    with manager(tmp_path, plugins, log, policy(tmp_path, settings=trust(ids, trusted))) as pm:
        assert sorted(pm.load_all().loaded) == sorted(ids)
        models = {m.plugin: m for m in pm.list_models()}
        assert set(models) == set(ids)
        assert models["up-model"].available and models["up-model"].name == "up"
        assert not models["down-model"].available and "returned False" in models["down-model"].reason
        assert not models["odd-model"].available and "not a bool" in models["odd-model"].reason
        assert {m.sandbox for m in models.values()} == {"none" if trusted else "process"}
        assert pm.complete("up-model", "hi").content == "echo: hi"
        down = pm.complete("down-model", "hi")
        assert not down.ok and down.error.kind == "unavailable" and "not available" in down.content


@LEVELS
def test_the_class_requires_attribute_is_checked(tmp_path, env, trusted):  # noqa: F811
    plugins, log = env
    code = "from promptline import ToolPlugin\nclass Demo(ToolPlugin):\n    requires = '{spec}'\n    def tools(self):\n        return []\n"
    write(plugins, "future", code.format(spec=">=99"))
    write(plugins, "present", code.format(spec=">=0.1"))
    write(plugins, "garbled", code.format(spec="not a spec"))
    ids = ["future", "present", "garbled"]
    with manager(tmp_path, plugins, log, policy(tmp_path, settings=trust(ids, trusted))) as pm:
        report = pm.load_all()   # a child is started at load: both levels refuse at load_all()
        assert report.loaded == ["present"], report
        why = dict(report.refused)
        assert "requires PromptLine `>=99`" in why["future"]
        assert "not a version specifier" in why["garbled"]
        assert pm.plugins["present"].tools() == ()
        for pid in ("future", "garbled"):
            result = pm.call_tool(f"{pid}.anything", {})
            assert not result.ok and "no loaded plugin" in result.content, result
