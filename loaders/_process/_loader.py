"""ProcessLoader: run a plugin in a sandboxed child process speaking MCP over stdio.

    loader = ProcessLoader()                     # kind "process"
    plugin = loader.load(ctx)                    # LoadContext from the manager
    plugin.tools(); plugin.call_tool("echo", {"text": "hi"}, timeout=5)
    plugin.shutdown()

Python plugins (``entry.python``) run under the bootstrap, which installs the Enforcer for
that plugin before importing it; ``entry.command`` plugins are any executable speaking MCP
on stdio. Both run through the shim (rlimits, no capabilities, Landlock, seccomp) in their
own temporary working directory with a scrubbed environment.

The rooms: ``_spec`` (what the child runs and may touch), ``_child`` (the process and its
connection: start, restart, stop), ``_bridge`` (what the child sends on its own: decision
reports and asks) and, here, the MCP surface a LoadedPlugin offers. Failures never raise out
of a loaded plugin: they become error ToolResults (kind ``unavailable`` or ``timeout``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from promptline.sdk import TOOL_NAME, PromptTemplate, ToolResult, ToolSpec, coerce_result

from .._errors import LoaderError, ToolError
from .._loader import DEFAULT_CALL_TIMEOUT, LoadContext, LoadedPlugin
from .._model import ModelInfo
from . import _jsonrpc as rpc
from ._bridge import HostBridge, child_policy
from ._child import START_TIMEOUT, Child
from ._client import CallTimeout, MCPClient
from ._egress import Wall
from ._landlock import landlock_abi
from ._launch import bwrap_path
from ._protocol import COMPLETE_METHOD, CONTEXT_METHOD, MODEL_METHOD
from ._server import content_text
from ._spec import build_spec
from ._wall import make_wall, netns_problem

LIST_TIMEOUT = 10.0             # seconds for prompts/resources listings
MAX_TOOLS = 1000                # tools one plugin may list
MIN_LANDLOCK_ABI = 1            # below this Landlock counts as missing
NET_LANDLOCK_ABI = 4            # TCP port rules need this

log = logging.getLogger("promptline.process")


class ProcessLoader:
    """Loader for ``sandbox: process``.

    ``start``: ``lazy`` (first call starts the child; ``tools()`` starts it too) or ``eager``.
    ``landlock_missing``: what to do when the kernel has no Landlock: ``refuse`` (default) or
    ``hooks-only`` (Python plugins keep the in-child enforcer, seccomp and the rest; the
    host logs a warning that the filesystem and network walls are missing).
    ``netns_missing``: what to do when the host cannot give the child its own network
    namespace (user namespaces disabled): ``refuse`` (default) or ``seccomp-only`` (the
    seccomp and Landlock port rules stand alone; the plugin's ``network_wall`` says so).
    ``network_wall``: ``namespace`` (default) or ``seccomp-only`` to run without the
    namespace on purpose (a weaker wall, chosen by the host, e.g. to measure its cost).
    ``template``: fork Python plugins from the pre-initialised template process (default;
    every wall is put up after the fork) instead of starting an interpreter for each.
    """

    kind = "process"

    def __init__(self, *, start: str = "lazy", landlock_missing: str = "refuse",
                 rlimits: dict[str, int] | None = None, stderr_dir: str | None = None,
                 netns_missing: str = "refuse", network_wall: str = "namespace",
                 template: bool = True) -> None:
        if start not in ("lazy", "eager"):
            raise ValueError(f"unknown start mode `{start}` — use lazy or eager")
        if landlock_missing not in ("refuse", "hooks-only"):
            raise ValueError(f"unknown landlock_missing `{landlock_missing}` — use refuse or hooks-only")
        if netns_missing not in ("refuse", "seccomp-only"):
            raise ValueError(f"unknown netns_missing `{netns_missing}` — use refuse or seccomp-only")
        self.start = start
        self.landlock_missing = landlock_missing
        if network_wall not in ("namespace", "seccomp-only"):
            raise ValueError(f"unknown network_wall `{network_wall}` — use namespace or seccomp-only")
        self.netns_missing = netns_missing
        self.network_wall = network_wall
        self.rlimits = dict(rlimits or {})
        self.stderr_dir = stderr_dir
        self.template = template

    def load(self, ctx: LoadContext) -> ProcessPlugin:
        plugin = ctx.plugin
        manifest = plugin.manifest
        if plugin.kind not in ("python", "command", "library"):
            raise LoaderError(f"the process sandbox runs python, command and library plugins, not `{plugin.kind}`",
                              plugin=plugin.id, fix="use the wasm loader for wasm modules")
        if plugin.kind == "library":
            _allow_native_library(ctx)
        abi = landlock_abi()
        use_landlock = abi >= MIN_LANDLOCK_ABI
        if not use_landlock:
            if self.landlock_missing == "refuse":
                raise LoaderError("this kernel has no Landlock (ABI 0), so the process sandbox cannot "
                                  "confine files and network", plugin=plugin.id,
                                  fix="run on Linux 5.13+ with `lsm=landlock` or let policy allow hooks-only")
            if plugin.kind == "command":
                raise LoaderError("this kernel has no Landlock (ABI 0) and a command plugin has no "
                                  "in-process hooks to fall back on", plugin=plugin.id,
                                  fix="run on Linux 5.13+ with `lsm=landlock`")
            log.warning("plugin `%s`: Landlock is missing: running with the in-child enforcer, seccomp "
                        "and rlimits only (no kernel file or network walls)", plugin.id)
        elif abi < NET_LANDLOCK_ABI and manifest.capabilities.network is not None:
            log.warning("plugin `%s`: Landlock ABI %d cannot restrict TCP ports (needs 4)", plugin.id, abi)
        netns = self._network_wall(plugin.id)
        proc = ProcessPlugin(ctx, self, use_landlock=use_landlock, landlock_abi=abi, netns=netns)
        if self.start == "eager" or ctx.options.get("start") == "eager":
            try:
                proc.ensure_started()
            except LoaderError:
                proc.shutdown()
                raise
        return proc


    def _network_wall(self, plugin_id: str) -> bool:
        """True: the child gets its own network namespace. Refuses (LoaderError) when the host
        cannot make one, unless ``netns_missing`` is ``seccomp-only``."""
        if self.network_wall == "seccomp-only":
            log.warning("plugin `%s`: network namespace switched off by the host: seccomp and Landlock "
                        "port rules only", plugin_id)
            return False
        problem = netns_problem()
        if problem is None:
            return True
        if self.netns_missing == "refuse":
            raise LoaderError(f"this host cannot give the plugin its own network namespace ({problem}), "
                              "so the process sandbox cannot confine its network", plugin=plugin_id,
                              fix="enable user namespaces (sysctl kernel.unprivileged_userns_clone=1 / "
                                  "user.max_user_namespaces) or let policy accept netns_missing: seccomp-only")
        log.warning("plugin `%s`: no network namespace (%s): seccomp and Landlock port rules only",
                    plugin_id, problem)
        return False


class ContainerLoader(ProcessLoader):
    """Loader for ``sandbox: container``: the process sandbox under bubblewrap (a mount
    namespace with a minimal read-only root: the runtime and the granted paths only, private
    /tmp and home; PID, IPC, UTS and network namespaces). No fallback: without ``bwrap`` or
    namespaces the plugin is refused."""

    kind = "container"

    def load(self, ctx: LoadContext) -> ProcessPlugin:
        if bwrap_path() is None:
            raise LoaderError("the container sandbox needs bubblewrap (`bwrap`), which is not installed",
                              plugin=ctx.plugin.id, fix="install it (Debian/Ubuntu: apt-get install bubblewrap)")
        return super().load(ctx)

    def _network_wall(self, plugin_id: str) -> bool:
        problem = netns_problem()
        if problem is not None:
            raise LoaderError(f"the container sandbox needs namespaces, which this host refuses ({problem})",
                              plugin=plugin_id, fix="enable user namespaces, or use `sandbox: process`")
        return True


def _allow_native_library(ctx: LoadContext) -> None:
    """A library plugin is native code: the policy must allow its `native.load` (asked here, by
    the host, before any child starts; the child's own dlopen is decided again in the child)."""
    from promptline.policy import Request, Verdict
    plugin = ctx.plugin
    library = os.path.join(str(plugin.root), *(plugin.manifest.entry.library or "").split("/"))
    d = ctx.enforcer.check(plugin.id, Request("native.load", plugin.id, name="dlopen", path=library))
    if d.verdict is not Verdict.ALLOW:
        raise LoaderError(f"loading native library `{plugin.manifest.entry.library}` is refused by policy: "
                          f"{d.reason()}", plugin=plugin.id,
                          fix="a library plugin needs `native.load`; ask the admin, or use a python or wasm build")


class ProcessPlugin(LoadedPlugin):
    """A plugin in a child process: the MCP surface (tools, prompts, context, completion,
    resources) over a :class:`~._child.Child`. Thread-safe; calls are answered in the
    child's order."""

    def __init__(self, ctx: LoadContext, loader: ProcessLoader, *, use_landlock: bool,
                 landlock_abi: int, netns: bool = True) -> None:
        self.ctx = ctx
        self.id = ctx.plugin.id
        self.version = ctx.plugin.version
        self.sandbox = loader.kind
        self.network_wall = "namespace" if netns else "seccomp-only"
        self.landlock_abi = landlock_abi
        self._tools: tuple[ToolSpec, ...] | None = None
        self._templates: tuple[PromptTemplate, ...] | None = None
        self._tools_stale = False
        self._tmp = tempfile.mkdtemp(prefix=f"promptline-{self.id}-")
        os.chmod(self._tmp, 0o700)
        workdir = os.path.join(self._tmp, "work")
        os.mkdir(workdir, 0o700)
        try:
            self.spec = build_spec(ctx, workdir=workdir, code=os.path.join(self._tmp, "code"),
                                   rlimits=loader.rlimits, use_landlock=use_landlock, netns=netns,
                                   container=loader.kind == "container", fork=loader.template)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        stderr_log = ctx.options.get("stderr_log") or (
            os.path.join(loader.stderr_dir, f"{self.id}.stderr.log") if loader.stderr_dir else None)
        self.bridge = HostBridge(self.id, self.version, enforcer=ctx.enforcer, audit=self._host_audit_log(),
                                 on_tools_changed=self._mark_tools_stale,
                                 child_policy=child_policy(self.spec), tool_caller=ctx.config.tool_caller)
        self.child = Child(self.id, self.spec, on_started=self._on_started,
                           on_notification=self.bridge.notification,
                           on_ask=self.bridge.answer_ask if ctx.plugin.kind in ("python", "library") else None,
                           stderr_log=stderr_log, make_wall=self._make_wall,
                           on_call_tool=self.bridge.call_tool if ctx.plugin.kind == "python" else None)

    def _host_audit_log(self) -> Any:
        log_obj = self.ctx.options.get("audit_log")
        if log_obj is None:
            log_obj = getattr(self.ctx.enforcer, "audit_log", None)
        if log_obj is None and self.ctx.audit_log_path:
            from promptline.enforcer.audit import AuditLog
            log_obj = AuditLog(self.ctx.audit_log_path)
        return log_obj

    def _make_wall(self) -> Wall:
        return make_wall(self.id, self.version, enforcer=self.ctx.enforcer, audit=self.bridge.audit,
                         exec_guard=self.spec.exec_guard)

    @property
    def pid(self) -> int | None:
        return self.child.pid

    @property
    def starts(self) -> int:
        return self.child.starts

    def ensure_started(self, timeout: float | None = None) -> MCPClient:
        """Start the child if it is not running, within ``timeout`` seconds (at most
        ``START_TIMEOUT``); raises LoaderError when it cannot."""
        return self.child.ensure_started(timeout)

    def shutdown(self) -> None:
        self.child.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _call(self, method: str, params: Any, timeout: float) -> Any:
        return self.child.call(method, params, timeout)

    def _on_started(self, client: MCPClient) -> None:
        self.bridge.child_started()
        self._tools = self._list_tools(client, self.child.start_left)

    def _mark_tools_stale(self) -> None:
        self._tools_stale = True   # re-listed on the next tools() call, not here (no thread per message)

    def _list_tools(self, client: MCPClient, left: Callable[[], float]) -> tuple[ToolSpec, ...]:
        result = client.request("tools/list", {}, timeout=left())
        items = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(items, list):
            raise rpc.ProtocolError("`tools/list` answered without a `tools` array")
        cursor = result.get("nextCursor")
        pages = 0
        while isinstance(cursor, str) and cursor and pages < 20 and len(items) < MAX_TOOLS:
            more = client.request("tools/list", {"cursor": cursor}, timeout=left())
            if not isinstance(more, dict) or not isinstance(more.get("tools"), list):
                break
            items += more["tools"]
            cursor, pages = more.get("nextCursor"), pages + 1
        specs = []
        seen = set()
        for item in items[:MAX_TOOLS]:
            if not isinstance(item, dict):
                continue
            name, desc, schema = item.get("name"), item.get("description", ""), item.get("inputSchema")
            if not isinstance(name, str) or not TOOL_NAME.match(name) or name in seen:
                log.warning("plugin `%s`: tool name `%s` refused", self.id, str(name)[:80])
                continue
            if schema is None:
                schema = {"type": "object", "properties": {}}
            if not isinstance(schema, dict) or schema.get("type", "object") != "object":
                log.warning("plugin `%s`: tool `%s` has no object inputSchema; left out", self.id, name)
                continue
            seen.add(name)
            specs.append(ToolSpec(name, desc if isinstance(desc, str) else "", schema))
        return tuple(specs)

    def tools(self) -> Sequence[ToolSpec]:
        if self._tools_stale:
            self._refresh_tools()
        if self._tools is None:
            try:
                self.ensure_started()
            except LoaderError as exc:
                log.warning("%s", exc)
                return ()
        return self._tools or ()

    def call_tool(self, name: str, args: dict, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> ToolResult:
        try:
            result = self._call("tools/call", {"name": name, "arguments": args if args is not None else {}}, timeout)
        except ToolError as exc:
            exc.tool = name
            return ToolResult(False, exc.message, None, exc)
        except rpc.RpcError as exc:
            kind = "invalid-arguments" if exc.code == rpc.INVALID_PARAMS else "failed"
            return ToolResult.failure(ToolError(f"the plugin answered with an error: {exc.message[:500]}",
                                                tool=name, kind=kind))
        return self._tool_result(name, result)

    def _tool_result(self, name: str, result: Any) -> ToolResult:
        if not isinstance(result, dict) or not isinstance(result.get("content", []), list):
            return ToolResult.failure(ToolError("returned a malformed result: expected an MCP tool result "
                                                "with a `content` array", tool=name, kind="malformed-result"))
        text = content_text(result.get("content") or [])
        meta = result.get("_meta") if isinstance(result.get("_meta"), dict) else {}
        data = meta.get("promptline/data", result.get("structuredContent"))
        if result.get("isError") is True:
            err = ToolError.from_dict(meta["promptline/error"], tool=name) if "promptline/error" in meta \
                else ToolError(text or "tool failed", tool=name)
            if err.tool is None:
                err.tool = name
            return ToolResult(False, text or err.message, data, err)
        return coerce_result(ToolResult(True, text, data), tool=name)

    def templates(self) -> Sequence[PromptTemplate]:
        if self._templates is not None:
            return self._templates
        out: list[PromptTemplate] = []
        try:
            client = self.ensure_started()
            if "prompts" in client.server_capabilities:
                result = self._call("prompts/list", {}, LIST_TIMEOUT)
                for item in (result or {}).get("prompts", [])[:MAX_TOOLS]:
                    tpl = self._template(item)
                    if tpl is not None:
                        out.append(tpl)
        except (LoaderError, ToolError, rpc.RpcError, AttributeError) as exc:
            log.warning("plugin `%s`: prompts unavailable: %s", self.id, exc)
            return ()
        self._templates = tuple(out)
        return self._templates

    def _template(self, item: Any) -> PromptTemplate | None:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        meta = item.get("_meta") if isinstance(item.get("_meta"), dict) else {}
        text = meta.get("promptline/template")
        desc = item.get("description") if isinstance(item.get("description"), str) else ""
        if not isinstance(text, str):
            # a foreign server: render it with each argument standing for itself
            args = [a.get("name") for a in item.get("arguments") or [] if isinstance(a, dict)]
            args = [a for a in args if isinstance(a, str)]
            try:
                got = self._call("prompts/get", {"name": item["name"],
                                                 "arguments": {a: "{{ " + a + " }}" for a in args}}, LIST_TIMEOUT)
                msgs = got.get("messages") or []
                text = "\n".join(m["content"]["text"] for m in msgs
                                 if isinstance(m, dict) and isinstance(m.get("content"), dict)
                                 and isinstance(m["content"].get("text"), str))
            except (ToolError, rpc.RpcError, AttributeError, TypeError):
                return None
        try:
            return PromptTemplate(item["name"], text, desc)
        except (ValueError, TypeError):
            return None

    def get_context(self, query: str, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> str:
        try:
            result = self._call(CONTEXT_METHOD, {"query": query}, timeout)
        except (ToolError, rpc.RpcError) as exc:
            log.warning("plugin `%s`: context unavailable: %s", self.id, exc)
            return ""
        text = result.get("text") if isinstance(result, dict) else None
        return text if isinstance(text, str) else ""

    def model_info(self, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> ModelInfo | None:
        """``promptline/model`` in the child: the provider's name and ``is_available()``."""
        if "model" not in self.ctx.plugin.manifest.types:
            return None
        try:
            result = self._call(MODEL_METHOD, {}, timeout)
        except (ToolError, rpc.RpcError) as exc:
            return ModelInfo("", False, str(getattr(exc, "message", exc))[:300])
        return ModelInfo.from_dict(result)

    def complete(self, prompt: str, *, timeout: float = DEFAULT_CALL_TIMEOUT, **options: Any) -> ToolResult:
        """A model plugin's completion (``promptline/complete`` in the child); never raises."""
        if "model" not in self.ctx.plugin.manifest.types:
            return super().complete(prompt, timeout=timeout, **options)
        import json
        try:
            json.dumps([prompt, options], allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return ToolResult.failure(ToolError("the prompt and options must be JSON data", tool="complete",
                                                kind="invalid-arguments"))
        try:
            result = self._call(COMPLETE_METHOD, {"prompt": prompt, "options": options}, timeout)
        except ToolError as exc:
            exc.tool = "complete"
            return ToolResult(False, exc.message, None, exc)
        except rpc.RpcError as exc:
            kind = "invalid-arguments" if exc.code == rpc.INVALID_PARAMS else "failed"
            return ToolResult.failure(ToolError(f"the plugin answered with an error: {exc.message[:500]}",
                                                tool="complete", kind=kind))
        return coerce_result(result, tool="complete")

    def resources(self, *, timeout: float = LIST_TIMEOUT) -> list[dict[str, Any]]:
        """MCP ``resources/list`` (empty when the plugin offers none or fails)."""
        try:
            result = self._call("resources/list", {}, timeout)
        except (ToolError, rpc.RpcError):
            return []
        items = result.get("resources") if isinstance(result, dict) else None
        return [r for r in items if isinstance(r, dict)] if isinstance(items, list) else []

    def read_resource(self, uri: str, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> str:
        """MCP ``resources/read``: the text of its contents (raises ToolError on failure)."""
        try:
            result = self._call("resources/read", {"uri": uri}, timeout)
        except rpc.RpcError as exc:
            raise ToolError(f"resource `{uri[:200]}`: {exc.message[:300]}", kind="failed") from None
        contents = result.get("contents") if isinstance(result, dict) else None
        if not isinstance(contents, list):
            raise ToolError("the plugin answered `resources/read` without `contents`", kind="malformed-result")
        return "\n".join(c["text"] for c in contents if isinstance(c, dict) and isinstance(c.get("text"), str))

    def _refresh_tools(self) -> None:
        client = self.child.client
        if client is None:
            return
        self._tools_stale = False
        try:
            self._tools = self._list_tools(client, lambda: START_TIMEOUT)
        except (rpc.ProtocolError, rpc.RpcError, CallTimeout) as exc:
            log.warning("plugin `%s`: re-listing tools failed: %s", self.id, exc)

    def __repr__(self) -> str:
        return f"<ProcessPlugin {self.id} {'running' if self.child.running else 'stopped'} pid={self.pid}>"
