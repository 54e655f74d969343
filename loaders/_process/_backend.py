"""The plugin as the sandboxed child serves it: loaded under its guard, answered over MCP.

:class:`ChildPlugin` imports one plugin as that plugin, binds its manifest and calls
``initialize``; :class:`PluginBackend` answers ``tools/*``, ``prompts/*``,
``promptline/context`` and ``promptline/complete`` for it. Every call into plugin code runs
under ``guard()`` (the in-child Enforcer attributing it to the plugin); plugin failures
become error results, never a dead child.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from promptline.sdk import (
    ContextPlugin,
    ModelPlugin,
    Plugin,
    PluginConfig,
    PromptPlugin,
    PromptTemplate,
    Tool,
    ToolError,
    ToolPlugin,
    ToolResult,
    ToolSpec,
    bind_manifest,
    call_with_recovery,
    coerce_result,
    error_result,
    invoke_tool,
    maybe_await,
    tool_spec,
    validate_arguments,
)

from .._model import describe_model
from .._requires import check_class_requires
from . import _jsonrpc as rpc
from ._protocol import COMPLETE_METHOD, CONTEXT_METHOD, MODEL_METHOD
from ._server import MCPBackend, tool_result_to_mcp


class LazyLoop:
    """Runs what plugin code returns: a plain value as it is, an awaitable on an event loop
    made on first need under ``host()`` (asyncio, and with it ``subprocess`` and
    ``_posixsubprocess``, is imported only by a plugin that is async)."""

    def __init__(self, host: Callable[[], AbstractContextManager[Any]]) -> None:
        self._host = host
        self._loop: Any = None

    def run(self, value: Any) -> Any:
        if not inspect.isawaitable(value):
            return value
        if self._loop is None:
            with self._host():
                import asyncio
                self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(maybe_await(value))


class ChildPlugin:
    """One plugin loaded in the child, with its tools and templates."""

    def __init__(self, plugin_id: str, version: str, plugin: Plugin, *, loop: LazyLoop,
                 guard: Callable[[], AbstractContextManager[Any]], tools: dict[str, tuple[Tool, ToolSpec]],
                 templates: dict[str, PromptTemplate]) -> None:
        self.id = plugin_id
        self.version = version
        self.plugin = plugin
        self.loop = loop
        self.guard = guard
        self.tools = tools
        self.templates = templates
        self.sync_tools = {n: not inspect.iscoroutinefunction(t.execute) for n, (t, _) in tools.items()}
        # only a plugin that overrides on_tool_error pays for the recovery path
        self.recovers = isinstance(plugin, ToolPlugin) and \
            getattr(type(plugin), "on_tool_error", None) is not ToolPlugin.on_tool_error

    @classmethod
    def load(cls, plugin_id: str, manifest: Any, entry: str, *, loop: LazyLoop,
             guard: Callable[[], AbstractContextManager[Any]], settings: dict[str, Any],
             data_dir: str | None, promptline_version: str | None = None,
             tool_caller: Any = None) -> ChildPlugin:
        """Import ``entry`` (``module:Class``) as the plugin, bind and initialize it."""
        module_name, _, class_name = entry.partition(":")
        with guard():
            module = importlib.import_module(module_name)
            plugin_cls = getattr(module, class_name) if class_name else module.Plugin
            plugin = bind_manifest(plugin_cls(), manifest)
            check_class_requires(plugin, plugin_id, promptline_version)
            config = PluginConfig(plugin_id, settings, Path(data_dir) if data_dir else None, tool_caller)
            loop.run(plugin.initialize(config))
            tools: dict[str, tuple[Tool, ToolSpec]] = {}
            if isinstance(plugin, ToolPlugin):
                for t in loop.run(plugin.tools()):
                    spec = tool_spec(t, plugin=plugin_id)
                    tools[spec.name] = (t, spec)
            templates: dict[str, PromptTemplate] = {}
            if isinstance(plugin, PromptPlugin):
                for tpl in loop.run(plugin.templates()):
                    templates[tpl.name] = tpl
        return cls(plugin_id, manifest.version, plugin, loop=loop, guard=guard, tools=tools, templates=templates)

    def call_tool(self, name: str, arguments: Any) -> ToolResult:
        """One call, then the plugin's own ``on_tool_error`` recovery (retry, fallback), here
        where the plugin lives — exactly as :func:`call_with_recovery` does in process."""
        entry = self.tools.get(name)
        if entry is None:
            err = ToolError(f"unknown tool `{name[:64]}`", tool=name, kind="invalid-arguments")
            return error_result(err, tool=name)
        tool = entry[0]
        with self.guard():
            first = self._attempt(tool, name, arguments)
            if first.ok or not self.recovers:
                return first
            given = [first]

            async def invoke(t: Tool, a: Any) -> ToolResult:
                if given:
                    return given.pop()
                if self.sync_tools.get(name):
                    return self._call_sync(t, name, a, in_loop=True)
                return await invoke_tool(t, a)
            try:
                return self.loop.run(call_with_recovery(self.plugin, tool, arguments, invoke=invoke))
            except BaseException as exc:  # noqa: BLE001 - SystemExit and friends become results
                if isinstance(exc, KeyboardInterrupt):
                    raise
                return error_result(exc, tool=name)

    def _attempt(self, tool: Tool, name: str, arguments: Any) -> ToolResult:
        if self.sync_tools.get(name):
            return self._call_sync(tool, name, arguments)
        try:
            return self.loop.run(invoke_tool(tool, arguments))
        except BaseException as exc:  # noqa: BLE001 - SystemExit and friends become results
            if isinstance(exc, KeyboardInterrupt):
                raise
            return error_result(exc, tool=name)

    def _call_sync(self, tool: Tool, name: str, arguments: Any, *, in_loop: bool = False) -> ToolResult:
        """invoke_tool without an event loop turn, for plain ``def execute`` (the common case)."""
        try:
            clean = validate_arguments(tool, arguments)
        except ToolError as exc:
            return ToolResult(False, exc.message, None, exc)
        try:
            value = tool.execute(clean)
            if inspect.isawaitable(value):
                if in_loop:
                    value.close()
                    raise TypeError("a synchronous execute returned an awaitable")
                value = self.loop.run(value)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - plugin failures become results
            return error_result(exc, tool=name)
        return coerce_result(value, tool=name)

    def context(self, query: str) -> Any:
        with self.guard():
            return self.loop.run(self.plugin.get_context(query))  # type: ignore[attr-defined]

    def complete(self, prompt: str, options: dict[str, Any]) -> ToolResult:
        """The model's completion as a ToolResult; the plugin's failures become error results."""
        with self.guard():
            try:
                model = self.plugin.provider()  # type: ignore[attr-defined]
                text = self.loop.run(model.complete(prompt, **options))
            except BaseException as exc:  # noqa: BLE001 - SystemExit and friends become results
                if isinstance(exc, KeyboardInterrupt):
                    raise
                return error_result(exc, tool="complete")
        if not isinstance(text, str):
            return ToolResult.failure(ToolError(f"the model returned `{type(text).__name__}`, not a string",
                                                tool="complete", kind="malformed-result"))
        return coerce_result(ToolResult.success(text), tool="complete")

    def model_info(self) -> dict[str, Any]:
        """The provider's name and ``is_available()`` (a raising probe: unavailable)."""
        with self.guard():
            try:
                available = self.loop.run(self.plugin.is_available())  # type: ignore[attr-defined]
                provider = self.plugin.provider()  # type: ignore[attr-defined]
            except BaseException as exc:  # noqa: BLE001
                if isinstance(exc, KeyboardInterrupt):
                    raise
                return {"name": "", "available": False, "reason": f"is_available raised `{type(exc).__name__}`"}
            return describe_model(provider, available).to_dict()

    def shutdown(self) -> None:
        with self.guard():
            try:
                self.loop.run(self.plugin.shutdown())
            except Exception:  # noqa: BLE001
                pass


class PluginBackend(MCPBackend):
    """MCP methods answered by one :class:`ChildPlugin`."""

    def __init__(self, child: ChildPlugin) -> None:
        self.child = child
        self.name = child.id
        self.version = child.version

    def capabilities(self) -> dict[str, Any]:
        caps: dict[str, Any] = {"tools": {"listChanged": False}}
        if self.child.templates:
            caps["prompts"] = {"listChanged": False}
        return caps

    def list_tools(self) -> list[dict[str, Any]]:
        return [s.to_mcp() for _, s in self.child.tools.values()]

    def call_tool(self, name: str, arguments: Any) -> dict[str, Any]:
        return tool_result_to_mcp(self.child.call_tool(name, arguments))

    def list_prompts(self) -> list[dict[str, Any]]:
        return [{"name": t.name, "description": t.description,
                 "arguments": [{"name": v, "required": True} for v in t.variables],
                 "_meta": {"promptline/template": t.template}} for t in self.child.templates.values()]

    def get_prompt(self, name: str, arguments: Any) -> dict[str, Any]:
        t = self.child.templates.get(name)
        if t is None:
            raise rpc.RpcError(rpc.INVALID_PARAMS, f"unknown prompt `{name[:64]}`")
        try:
            text = t.render(**arguments)
        except ValueError as exc:
            raise rpc.RpcError(rpc.INVALID_PARAMS, str(exc)) from None
        return {"description": t.description,
                "messages": [{"role": "user", "content": {"type": "text", "text": text}}]}

    def extra(self, method: str, params: Any) -> Any:
        plugin = self.child.plugin
        if method == CONTEXT_METHOD and isinstance(plugin, ContextPlugin):
            query = params.get("query")
            if not isinstance(query, str):
                raise rpc.RpcError(rpc.INVALID_PARAMS, "`query` must be a string")
            text = self.child.context(query)
            if not isinstance(text, str):
                raise rpc.RpcError(rpc.INTERNAL_ERROR, "get_context returned no string")
            return {"text": text}
        if method == COMPLETE_METHOD and isinstance(plugin, ModelPlugin):
            prompt, options = params.get("prompt"), params.get("options") or {}
            if not isinstance(prompt, str):
                raise rpc.RpcError(rpc.INVALID_PARAMS, "`prompt` must be a string")
            if not isinstance(options, dict):
                raise rpc.RpcError(rpc.INVALID_PARAMS, "`options` must be an object")
            return self.child.complete(prompt, options).to_dict()
        if method == MODEL_METHOD and isinstance(plugin, ModelPlugin):
            return self.child.model_info()
        return super().extra(method, params)
