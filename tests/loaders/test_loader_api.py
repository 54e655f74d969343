"""The plugin API: argument validation, result coercion, recovery actions."""

from __future__ import annotations

import asyncio

import pytest

from promptline.sdk import (
    ContextPlugin,
    LanguageModel,
    LoaderError,
    ModelPlugin,
    PluginConfig,
    PromptPlugin,
    PromptTemplate,
    RecoveryAction,
    Tool,
    ToolError,
    ToolPlugin,
    ToolResult,
    bind_manifest,
    call_with_recovery,
    coerce_result,
    invoke_tool,
    invoke_tool_sync,
    plugin_types,
    tool_spec,
    validate_arguments,
)


class Calc(Tool):
    name = "calculate"
    description = "evaluate"
    parameters = {
        "type": "object",
        "properties": {
            "expression": {"type": "string", "maxLength": 50},
            "precision": {"type": "integer", "minimum": 0},
            "options": {"type": "object", "properties": {"mode": {"enum": ["deg", "rad"]}}},
        },
        "required": ["expression"],
        "additionalProperties": False,
    }

    def execute(self, args):
        return ToolResult.success(str(sum(int(x) for x in args["expression"].split("+"))), data={"n": 1})


class AsyncTool(Tool):
    name = "later"

    async def execute(self, args):
        await asyncio.sleep(0)
        return ToolResult.success("done")


class Returns(Tool):
    name = "returns"

    def __init__(self, value):
        self.value = value

    def execute(self, args):
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


@pytest.mark.parametrize("args,field,text", [
    ({}, "expression", "argument `expression` is required"),
    ({"expression": 3}, "expression", "argument `expression` must be a string, got integer"),
    ({"expression": "1", "bogus": 1}, "bogus", "argument `bogus` is not allowed"),
    ({"expression": "1", "precision": -1}, "precision", "argument `precision`"),
    ({"expression": "1", "options": {"mode": "grad"}}, "options.mode", "must be one of `\"deg\"`, `\"rad\"`"),
    ({"expression": "x" * 51}, "expression", "argument `expression`"),
], ids=["missing", "wrong-type", "extra", "minimum", "nested-enum", "too-long"])
def test_bad_arguments_name_the_field(args, field, text):
    with pytest.raises(ToolError) as info:
        validate_arguments(Calc(), args)
    assert info.value.kind == "invalid-arguments"
    assert info.value.field == field
    assert text in str(info.value)
    assert str(info.value).startswith("tool `calculate`: ")


@pytest.mark.parametrize("args", [[1], "x", 3], ids=["list", "str", "int"])
def test_arguments_must_be_an_object(args):
    with pytest.raises(ToolError, match="arguments must be an object"):
        validate_arguments(Calc(), args)


def test_valid_arguments_are_copied():
    args = {"expression": "1+2", "options": {"mode": "deg"}}
    clean = validate_arguments(Calc(), args)
    assert clean == args and clean["options"] is not args["options"]


def test_execute_never_sees_invalid_arguments():
    seen = []

    class Spy(Calc):
        def execute(self, args):
            seen.append(args)
            return ToolResult.success("")

    result = invoke_tool_sync(Spy(), {"expression": 1})
    assert not result.ok and result.error.kind == "invalid-arguments" and seen == []


def test_sync_and_async_execute():
    assert invoke_tool_sync(Calc(), {"expression": "1+2"}).to_dict() == {"ok": True, "content": "3",
                                                                        "data": {"n": 1}}
    assert invoke_tool_sync(AsyncTool(), {}).content == "done"


@pytest.mark.parametrize("value,expected", [
    (None, "expected a ToolResult, found `NoneType`"),
    ("text", "expected a ToolResult, found `str`"),
    ({"ok": "yes", "content": ""}, "expected a result object"),
    ({"ok": True, "content": "", "extra": 1}, "expected a result object"),
    (ToolResult.success("", data=object()), "JSON-serializable `data`"),
], ids=["none", "str", "ok-not-bool", "unknown-key", "data-not-json"])
def test_malformed_results_become_error_results(value, expected):
    result = invoke_tool_sync(Returns(value), {})
    assert not result.ok and result.error.kind == "malformed-result"
    assert expected in result.error.message and result.error.tool == "returns"


def test_dict_results_from_sandboxed_plugins_are_accepted():
    assert coerce_result({"ok": True, "content": "hi"}, tool="t") == ToolResult.success("hi")
    err = coerce_result({"ok": False, "content": "no", "error": {"kind": "failed", "message": "no"}}, tool="t")
    assert not err.ok and err.error.message == "no" and err.error.tool == "t"


@pytest.mark.parametrize("exc,kind,text", [
    (ToolError("quota exceeded"), "failed", "quota exceeded"),
    (ValueError("bad"), "exception", "raised `ValueError`: bad"),
    (SystemExit(3), "exception", "raised `SystemExit`"),
], ids=["tool-error", "value-error", "system-exit"])
def test_exceptions_become_error_results(exc, kind, text):
    result = invoke_tool_sync(Returns(exc), {})
    assert not result.ok and result.error.kind == kind and text in result.error.message
    assert result.to_dict()["error"]["tool"] == "returns"


class Flaky(Tool):
    name = "flaky"

    def __init__(self, failures):
        self.failures = failures
        self.calls = 0

    def execute(self, args):
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("transient")
        return ToolResult.success("ok")


class Recovering(ToolPlugin):
    def __init__(self, action):
        self.action = action
        self.seen = []

    def tools(self):
        return []

    async def on_tool_error(self, tool, error):
        self.seen.append((tool, error.kind))
        if isinstance(self.action, Exception):
            raise self.action
        return self.action


def recover(plugin, tool, args=None):
    return asyncio.run(call_with_recovery(plugin, tool, args or {}))


def test_default_recovery_propagates():
    class P(ToolPlugin):
        def tools(self):
            return []
    assert not recover(P(), Flaky(1)).ok


def test_retry_is_bounded():
    tool = Flaky(10)
    result = recover(Recovering(RecoveryAction.RETRY), tool)
    assert not result.ok and tool.calls == 3  # first call + MAX_TOOL_RETRIES
    tool = Flaky(1)
    assert recover(Recovering(RecoveryAction.RETRY), tool).ok and tool.calls == 2


def test_fallback_answers_instead():
    result = recover(Recovering(RecoveryAction.fallback(ToolResult.success("cached"))), Flaky(1))
    assert result.ok and result.content == "cached"


@pytest.mark.parametrize("action", [ValueError("handler broke"), "retry", None], ids=["raises", "str", "none"])
def test_broken_recovery_handler_propagates_the_original_error(action):
    result = recover(Recovering(action), Flaky(1))
    assert not result.ok and "transient" in result.error.message


def test_invalid_arguments_are_not_retried():
    plugin = Recovering(RecoveryAction.RETRY)
    result = recover(plugin, Calc(), {})
    assert not result.ok and plugin.seen == []


def test_tool_spec_points_at_the_authors_class():
    class BadName(Calc):
        name = "has space"

    class BadSchema(Calc):
        parameters = {"type": "object", "properties": {"x": {"type": "nonsense"}}}

    class NotObject(Calc):
        parameters = {"type": "string"}

    assert tool_spec(Calc()).to_mcp()["inputSchema"]["required"] == ["expression"]
    for cls, text in ((BadName, "has name `has space`"), (BadSchema, "not a valid JSON Schema"),
                      (NotObject, "must describe an object")):
        with pytest.raises(LoaderError) as info:
            tool_spec(cls(), plugin="demo")
        assert text in str(info.value) and cls.__qualname__ in str(info.value)


def test_plugin_types_and_bind_manifest():
    class Both(ToolPlugin, ContextPlugin):
        def tools(self):
            return []

        def get_context(self, query):
            return query

    class Manifest:
        id, name, version, description, types = "both", "Both", "1.0.0", "d", ("tool", "context")

    assert plugin_types(Both) == {"tool", "context"}
    p = bind_manifest(Both(), Manifest)
    assert (p.id, p.version) == ("both", "1.0.0")
    Manifest.types = ("tool", "model")
    with pytest.raises(LoaderError, match="does not derive from ModelPlugin"):
        bind_manifest(Both(), Manifest)
    Manifest.types = ("tool",)
    liar = Both()
    liar.id = "other"
    with pytest.raises(LoaderError, match="declares id `other`"):
        bind_manifest(liar, Manifest)


def test_abstract_hooks_are_required():
    with pytest.raises(TypeError):
        ToolPlugin()  # type: ignore[abstract]
    with pytest.raises(TypeError):
        Tool()  # type: ignore[abstract]


def test_model_and_prompt_and_context_plugins():
    class Echo(LanguageModel):
        name = "echo"

        async def complete(self, prompt, **options):
            return prompt

    class M(ModelPlugin):
        def provider(self):
            return Echo()

    class P(PromptPlugin):
        def templates(self):
            return [PromptTemplate("review", "Review {{ code }} for {{lang}}. {{ code }}")]

    assert asyncio.run(M().provider().complete("hi")) == "hi" and M().is_available()
    t = P().templates()[0]
    assert t.variables == ("code", "lang")
    assert t.render(code="x", lang="py") == "Review x for py. x"
    with pytest.raises(ValueError, match="needs `lang`"):
        t.render(code="x")
    assert PromptTemplate("t", "{{ a.__class__ }} {0}").render() == "{{ a.__class__ }} {0}"


def test_plugin_config_is_read_only():
    cfg = PluginConfig("demo", {"a": {"b": 1}})
    assert cfg.get("a") == {"b": 1} and cfg["a"]["b"] == 1 and cfg.get("zz", 5) == 5
    with pytest.raises(TypeError):
        cfg.settings["a"] = 2  # type: ignore[index]


def test_initialize_stores_config_by_default():
    class P(ToolPlugin):
        def tools(self):
            return []
    p = P()
    p.initialize(PluginConfig("p"))
    assert p.config.plugin_id == "p" and p.shutdown() is None


def test_result_invariants():
    with pytest.raises(ValueError):
        ToolResult(True, "", None, ToolError("x"))
    assert ToolResult(False, "boom").error.message == "boom"
    assert RecoveryAction.PROPAGATE.kind == "propagate"
    with pytest.raises(ValueError):
        RecoveryAction("fallback")


def test_hanging_tools_time_out():
    import time

    class Hangs(Tool):
        name = "hangs"

        async def execute(self, args):
            await asyncio.sleep(30)

    class Blocks(Tool):
        name = "blocks"

        def execute(self, args):
            time.sleep(0.5)
            return ToolResult.success("late")

    for tool in (Hangs(), Blocks()):
        start = time.monotonic()
        result = asyncio.run(invoke_tool(tool, {}, timeout=0.05, offload_sync=True))
        assert not result.ok and result.error.kind == "timeout" and result.error.retryable
        assert time.monotonic() - start < 0.45 or tool.name == "blocks"


def test_offloaded_sync_tools_keep_the_context():
    import contextvars
    current = contextvars.ContextVar("plugin", default=None)

    class Who(Tool):
        name = "who"

        def execute(self, args):
            return ToolResult.success(str(current.get()))

    async def main():
        current.set("demo")
        return await invoke_tool(Who(), {}, offload_sync=True)

    assert asyncio.run(main()).content == "demo"
