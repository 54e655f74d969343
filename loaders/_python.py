"""In-process Python plugins (sandbox `none`): a guard rail for trusted plugins, not a wall.

Modules are imported from the verified snapshot (the bytes whose digest was checked), never
re-read from disk, and their code objects carry file names inside the plugin directory so the
enforcer attributes them to the plugin. Everything the plugin runs — import-time code,
``initialize``, tools, ``shutdown`` — runs inside ``enforcer.guard(plugin_id)``.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from promptline.sdk import (
    Plugin,
    PromptTemplate,
    ToolError,
    ToolPlugin,
    ToolResult,
    ToolSpec,
    bind_manifest,
    call_with_recovery,
    error_result,
    invoke_tool,
    maybe_await,
    tool_spec,
)

from ._errors import LoaderError
from ._loader import DEFAULT_CALL_TIMEOUT, LoadContext, LoadedPlugin

_IMPORT_LOCK = threading.Lock()
CALL_GRACE = 0.5   # seconds beyond the tool timeout before the caller stops waiting


class _SnapshotFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves a plugin's own modules from verified bytes held in memory."""

    def __init__(self, plugin_id: str, root: str, files: Mapping[str, bytes]) -> None:
        self.plugin_id = plugin_id
        self.root = root
        self.files = files
        self.names = _module_names(files)

    def find_spec(self, fullname, path=None, target=None):
        rel = self.names.get(fullname)
        if rel is None:
            return None
        is_pkg = rel.endswith("/__init__.py") or rel == "__init__.py"
        origin = os.path.join(self.root, rel)
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=origin, is_package=is_pkg)
        spec.has_location = True
        if is_pkg:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        rel = self.names[module.__name__]
        code = compile(self.files[rel], os.path.join(self.root, rel), "exec", dont_inherit=True)
        exec(code, module.__dict__)


def _ours(module, plugin_id: str) -> bool:
    loader = getattr(getattr(module, "__spec__", None), "loader", None)
    return isinstance(loader, _SnapshotFinder) and loader.plugin_id == plugin_id


def _module_names(files: Mapping[str, bytes]) -> dict[str, str]:
    names: dict[str, str] = {}
    for rel in files:
        if not rel.endswith(".py"):
            continue
        parts = rel[:-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
            if not parts:
                continue
        if all(p.isidentifier() for p in parts):
            names[".".join(parts)] = rel
    return names


class InProcessPlugin(LoadedPlugin):
    """A plugin object living in the host process, called under the enforcer's guard."""

    sandbox = "none"

    def __init__(self, plugin_id: str, version: str, instance: Plugin, enforcer: Any,
                 finder: _SnapshotFinder | None) -> None:
        self.id = plugin_id
        self.version = version
        self.instance = instance
        self.enforcer = enforcer
        self._finder = finder
        self._tools: dict[str, Any] = {}
        self._specs: list[ToolSpec] = []
        if isinstance(instance, ToolPlugin):
            with enforcer.guard(plugin_id):
                tools = list(instance.tools())
            for tool in tools:
                spec = tool_spec(tool, plugin=plugin_id)
                if spec.name in self._tools:
                    raise LoaderError(f"two tools are named `{spec.name}`", plugin=plugin_id,
                                      fix="give every tool a unique name")
                self._tools[spec.name] = tool
                self._specs.append(spec)

    def tools(self) -> Sequence[ToolSpec]:
        return tuple(self._specs)

    def call_tool(self, name: str, args: dict, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> ToolResult:
        tool = self._tools.get(name)
        if tool is None:
            return ToolResult.failure(ToolError(f"no tool `{name}` in plugin `{self.id}`", tool=name,
                                                kind="unknown-tool"))
        guard = self.enforcer.guard(self.id)

        async def invoke(t, a):
            with guard:
                return await invoke_tool(t, a, timeout=timeout)

        async def run():
            return await call_with_recovery(self.instance, tool, args, invoke=invoke)

        box: list[ToolResult] = []

        def worker() -> None:
            try:
                box.append(asyncio.run(run()))
            except BaseException as exc:  # noqa: BLE001 - a plugin never crashes the host
                box.append(error_result(exc, tool=name))

        # A daemon thread, so a tool that blocks past its timeout cannot hold the caller
        # (Python threads cannot be killed: one more reason untrusted code runs in a process).
        thread = threading.Thread(target=worker, name=f"plugin-{self.id}-{name}", daemon=True)
        thread.start()
        thread.join(timeout + CALL_GRACE)
        if not box:
            return ToolResult.failure(ToolError(f"did not answer within {timeout:g} s", tool=name,
                                                kind="timeout", retryable=True))
        return box[0]

    def templates(self) -> Sequence[PromptTemplate]:
        fn = getattr(self.instance, "templates", None)
        if fn is None:
            return ()
        try:
            with self.enforcer.guard(self.id):
                found = list(fn())
        except (Exception, SystemExit):  # noqa: BLE001
            return ()
        return tuple(t for t in found if isinstance(t, PromptTemplate))

    def get_context(self, query: str, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> str:
        fn = getattr(self.instance, "get_context", None)
        if fn is None:
            return ""

        async def run():
            with self.enforcer.guard(self.id):
                return await asyncio.wait_for(maybe_await(fn(query)), timeout)
        try:
            value = asyncio.run(run())
        except (Exception, SystemExit):  # noqa: BLE001
            return ""
        return value if isinstance(value, str) else ""

    def complete(self, prompt: str, *, timeout: float = DEFAULT_CALL_TIMEOUT, **options: Any) -> ToolResult:
        provider_fn = getattr(self.instance, "provider", None)
        if provider_fn is None:
            return super().complete(prompt, timeout=timeout, **options)
        box: list[ToolResult] = []

        def worker() -> None:
            async def run():
                with self.enforcer.guard(self.id):
                    model = provider_fn()
                    return await asyncio.wait_for(maybe_await(model.complete(prompt, **options)), timeout)
            try:
                value = asyncio.run(run())
                box.append(ToolResult.success(value) if isinstance(value, str) else
                           ToolResult.failure(ToolError("the model returned a non-string", kind="malformed-result")))
            except BaseException as exc:  # noqa: BLE001
                box.append(error_result(exc, tool="complete"))
        thread = threading.Thread(target=worker, name=f"plugin-{self.id}-complete", daemon=True)
        thread.start()
        thread.join(timeout + CALL_GRACE)
        return box[0] if box else ToolResult.failure(ToolError(f"did not answer within {timeout:g} s",
                                                               kind="timeout", retryable=True))

    def shutdown(self) -> None:
        try:
            with self.enforcer.guard(self.id):
                result = self.instance.shutdown()
                if asyncio.iscoroutine(result):
                    asyncio.run(result)
        except (Exception, SystemExit):  # noqa: BLE001
            pass
        finally:
            if self._finder is not None:
                with _IMPORT_LOCK:
                    if self._finder in sys.meta_path:
                        sys.meta_path.remove(self._finder)
                    for mod in list(self._finder.names):
                        if getattr(getattr(sys.modules.get(mod), "__spec__", None), "loader", None) is self._finder:
                            sys.modules.pop(mod, None)


class PythonLoader:
    """Loads `entry: {python: module:Class}` plugins into this process (sandbox `none`)."""

    kind = "none"

    def load(self, ctx: LoadContext) -> InProcessPlugin:
        plugin = ctx.plugin
        manifest = plugin.manifest
        pid = manifest.id
        target = manifest.entry.python
        if target is None:
            raise LoaderError("only `entry: {python: ...}` plugins can run in process", plugin=pid,
                              fix="use `sandbox: process` for command plugins")
        module_name, _, attr = target.partition(":")
        attr = attr or "Plugin"
        finder = None
        enforcer = ctx.enforcer
        with _IMPORT_LOCK:
            if plugin.package is None:
                if ctx.files is None:
                    raise LoaderError("no verified snapshot to load from", plugin=pid,
                                      fix="load plugins through the PluginManager")
                finder = _SnapshotFinder(pid, os.path.realpath(str(plugin.root)), ctx.files)
                clash = [n for n in finder.names if n in sys.modules and not _ours(sys.modules[n], pid)]
                if clash:
                    raise LoaderError(f"module `{clash[0]}` is already imported by someone else", plugin=pid,
                                      fix="rename the plugin's top-level module to something unique")
                for name in finder.names:        # an update replaces the old version's modules;
                    sys.modules.pop(name, None)  # running calls keep the old module objects
                for other in [f for f in sys.meta_path if isinstance(f, _SnapshotFinder) and f.plugin_id == pid]:
                    sys.meta_path.remove(other)
                sys.meta_path.insert(0, finder)
            try:
                with enforcer.guard(pid):
                    module = importlib.import_module(module_name)
                    cls = getattr(module, attr)
                    instance = cls()
            except LoaderError:
                raise
            except BaseException as exc:  # noqa: BLE001 - plugin import code is hostile
                if finder is not None and finder in sys.meta_path:
                    sys.meta_path.remove(finder)
                raise LoaderError(f"cannot import `{target}`: {type(exc).__name__}: {exc}", plugin=pid,
                                  fix="run the plugin's own tests") from None
        if not isinstance(instance, Plugin):
            raise LoaderError(f"`{target}` is not a promptline Plugin", plugin=pid,
                              fix="derive the class from promptline.ToolPlugin (or another plugin type)")
        bind_manifest(instance, manifest)
        try:
            with enforcer.guard(pid):
                result = instance.initialize(ctx.config)
                if asyncio.iscoroutine(result):
                    asyncio.run(result)
        except BaseException as exc:  # noqa: BLE001
            raise LoaderError(f"initialize() failed: {type(exc).__name__}: {exc}", plugin=pid,
                              fix="check the plugin's configuration") from None
        return InProcessPlugin(pid, manifest.version, instance, enforcer, finder)
