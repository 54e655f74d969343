"""Run one Python plugin inside a sandboxed child and serve it over MCP on stdio.

    PROMPTLINE_BOOTSTRAP='<json spec>' python -I -B .../loaders/_process/_bootstrap.py

(started by the shim, after Landlock and seccomp are in force). Before any plugin code is
imported the bootstrap:

1. moves the protocol off fds 0/1 (plugin ``print`` goes to stderr, stdin reads /dev/null);
2. compiles this plugin's policy (the host's policy files + the plugin's manifest);
3. installs the Enforcer for this one plugin; its decisions travel to the host as
   ``notifications/promptline/decision`` and the host writes them to its audit log (the child
   gets no write access to the log, so it cannot forge or damage it);

then imports the plugin as that plugin (``Enforcer.guard``), binds its manifest, calls
``initialize`` and answers ``tools/*``, ``prompts/*``, ``promptline/context`` and
``promptline/complete`` (a model plugin's ``provider().complete(prompt, **options)``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

DECISION_NOTIFICATION = "notifications/promptline/decision"
CONTEXT_METHOD = "promptline/context"
COMPLETE_METHOD = "promptline/complete"   # {prompt, options} -> a ToolResult dict (content = the text)
BOOT_ENV = "PROMPTLINE_BOOTSTRAP"   # the spec; removed from the environment before plugin code runs


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Settings:
    __slots__ = ("log_allows",)

    def __init__(self, log_allows: bool) -> None:
        self.log_allows = log_allows


class ForwardingAuditLog:
    """The child's audit log: every decision worth keeping is sent to the host."""

    def __init__(self, send, log_allows: bool) -> None:
        self._send = send
        self.settings = _Settings(log_allows)

    def decision(self, plugin_id: str, plugin_version: str, action: str, resource: str,
                 decision: dict, request: dict | None = None, message: str = "") -> None:
        from ._jsonrpc import Notification, encode
        if type(decision) is not dict:
            decision = decision.to_dict()
        self._send(encode(Notification(DECISION_NOTIFICATION, {
            "action": action, "resource": resource, "decision": decision,
            "request": request, "message": message})))


def _serve(spec: dict[str, Any], proto_in: int, proto_out: int) -> None:
    import asyncio

    from loaders._api import (ContextPlugin, ModelPlugin, PluginConfig, PromptPlugin, ToolPlugin, ToolResult,
                              bind_manifest, coerce_result, error_result, invoke_tool, tool_spec,
                              validate_arguments)
    from loaders._errors import ToolError
    from policy import load_manifest, load_policy_set

    from . import _jsonrpc as rpc
    from ._server import Backend, serve, tool_result_to_mcp

    writer = rpc.Writer(proto_out)
    plugin_id = spec["plugin_id"]
    manifest_path = spec["manifest"]
    if spec.get("home"):
        os.environ["PROMPTLINE_HOME"] = spec["home"]   # before any policy path is expanded
    manifest = load_manifest(manifest_path)
    policy_set = load_policy_set(spec.get("policy_files") or (), [manifest_path],
                                 grants=spec.get("grants"),
                                 plugin_facts={plugin_id: spec.get("facts") or {}})
    loop = asyncio.new_event_loop()   # made before the hook: its self-pipe is host business
    enforcer = None
    if spec.get("hooks", True):
        from enforcer import Enforcer
        audit = ForwardingAuditLog(writer.send_bytes, bool(spec.get("log_allows")))
        enforcer = Enforcer(policy_set, audit_log=audit, mode=spec.get("mode") or "enforce")
        enforcer.install()

    import contextlib
    guard = (lambda: enforcer.guard(plugin_id)) if enforcer is not None else contextlib.nullcontext

    module_name, _, class_name = spec["entry"].partition(":")
    code_root = spec["code_root"]
    sys.path.insert(0, code_root)
    with guard():
        import importlib
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name) if class_name else getattr(module, "Plugin")
        plugin = bind_manifest(cls(), manifest)
        data_dir = spec.get("data_dir")
        config = PluginConfig(plugin_id, spec.get("settings") or {}, data_dir and __import__("pathlib").Path(data_dir))
        loop.run_until_complete(_maybe(plugin.initialize(config)))
        tools = {}
        if isinstance(plugin, ToolPlugin):
            for t in loop.run_until_complete(_maybe(plugin.tools())):
                s = tool_spec(t, plugin=plugin_id)
                tools[s.name] = (t, s)
        templates = {}
        if isinstance(plugin, PromptPlugin):
            for tpl in loop.run_until_complete(_maybe(plugin.templates())):
                templates[tpl.name] = tpl

    import inspect
    sync_tools = {n: not inspect.iscoroutinefunction(t.execute) for n, (t, _) in tools.items()}

    def _call_sync(tool, name, arguments):
        """invoke_tool without an event loop turn, for plain ``def execute`` (the common case)."""
        try:
            clean = validate_arguments(tool, arguments)
        except ToolError as exc:
            return ToolResult(False, exc.message, None, exc)
        try:
            value = tool.execute(clean)
            if inspect.isawaitable(value):
                value = loop.run_until_complete(_maybe(value))
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - plugin failures become results
            return error_result(exc, tool=name)
        return coerce_result(value, tool=name)

    def complete(prompt: str, options: dict) -> ToolResult:
        """The model's completion as a ToolResult; the plugin's failures become error results."""
        with guard():
            try:
                model = plugin.provider()
                text = loop.run_until_complete(_maybe(model.complete(prompt, **options)))
            except BaseException as exc:  # noqa: BLE001 - SystemExit and friends become results
                if isinstance(exc, KeyboardInterrupt):
                    raise
                return error_result(exc, tool="complete")
        if not isinstance(text, str):
            return ToolResult.failure(ToolError(f"the model returned `{type(text).__name__}`, not a string",
                                                tool="complete", kind="malformed-result"))
        return coerce_result(ToolResult.success(text), tool="complete")

    class PluginBackend(Backend):
        name = plugin_id
        version = manifest.version

        def capabilities(self):
            caps: dict[str, Any] = {"tools": {"listChanged": False}}
            if templates:
                caps["prompts"] = {"listChanged": False}
            return caps

        def list_tools(self):
            return [s.to_mcp() for _, s in tools.values()]

        def call_tool(self, name, arguments):
            entry = tools.get(name)
            if entry is None:
                err = ToolError(f"unknown tool `{name[:64]}`", tool=name, kind="invalid-arguments")
                return tool_result_to_mcp(error_result(err, tool=name))
            tool = entry[0]
            with guard():
                if sync_tools.get(name):
                    result = _call_sync(tool, name, arguments)
                else:
                    try:
                        result = loop.run_until_complete(invoke_tool(tool, arguments))
                    except BaseException as exc:  # noqa: BLE001 - SystemExit and friends become results
                        if isinstance(exc, KeyboardInterrupt):
                            raise
                        result = error_result(exc, tool=name)
            return tool_result_to_mcp(result)

        def list_prompts(self):
            return [{"name": t.name, "description": t.description,
                     "arguments": [{"name": v, "required": True} for v in t.variables],
                     "_meta": {"promptline/template": t.template}} for t in templates.values()]

        def get_prompt(self, name, arguments):
            t = templates.get(name)
            if t is None:
                raise rpc.RpcError(rpc.INVALID_PARAMS, f"unknown prompt `{name[:64]}`")
            try:
                text = t.render(**arguments)
            except ValueError as exc:
                raise rpc.RpcError(rpc.INVALID_PARAMS, str(exc)) from None
            return {"description": t.description,
                    "messages": [{"role": "user", "content": {"type": "text", "text": text}}]}

        def extra(self, method, params):
            if method == CONTEXT_METHOD and isinstance(plugin, ContextPlugin):
                query = params.get("query")
                if not isinstance(query, str):
                    raise rpc.RpcError(rpc.INVALID_PARAMS, "`query` must be a string")
                with guard():
                    text = loop.run_until_complete(_maybe(plugin.get_context(query)))
                if not isinstance(text, str):
                    raise rpc.RpcError(rpc.INTERNAL_ERROR, "get_context returned no string")
                return {"text": text}
            if method == COMPLETE_METHOD and isinstance(plugin, ModelPlugin):
                prompt, options = params.get("prompt"), params.get("options") or {}
                if not isinstance(prompt, str):
                    raise rpc.RpcError(rpc.INVALID_PARAMS, "`prompt` must be a string")
                if not isinstance(options, dict):
                    raise rpc.RpcError(rpc.INVALID_PARAMS, "`options` must be an object")
                return complete(prompt, options).to_dict()
            return super().extra(method, params)

    reader = rpc.LineReader(proto_in)
    try:
        serve(PluginBackend(), reader.next_line, writer.send_bytes)
    finally:
        with guard():
            try:
                loop.run_until_complete(_maybe(plugin.shutdown()))
            except Exception:  # noqa: BLE001
                pass


async def _maybe(value):
    import inspect
    if inspect.isawaitable(value):
        return await value
    return value


def main(argv: list[str]) -> None:
    spec = json.loads(os.environ.pop(BOOT_ENV) if BOOT_ENV in os.environ else argv[1])
    # the protocol gets private fds; what the plugin prints goes to stderr
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    for p in reversed(spec.get("sys_path") or [_repo_root()]):
        if p not in sys.path:
            sys.path.insert(0, p)
    if __package__ in (None, ""):
        # run as a file: re-enter as the package module so relative imports resolve
        import importlib
        mod = importlib.import_module("loaders._process._bootstrap")
        mod._serve_main(spec, proto_in, proto_out)
        return
    _serve_main(spec, proto_in, proto_out)


def _serve_main(spec: dict[str, Any], proto_in: int, proto_out: int) -> None:
    try:
        _serve(spec, proto_in, proto_out)
    except BaseException as exc:
        import traceback
        traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"promptline-bootstrap: plugin `{spec.get('plugin_id')}` failed to start: "
                         f"{type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
        os._exit(3)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
