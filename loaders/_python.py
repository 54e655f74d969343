"""In-process Python plugins (sandbox `none`): a guard rail for trusted plugins, not a wall.

Modules are imported from the verified snapshot (the bytes whose digest was checked), never
re-read from disk, and their code objects carry file names inside the plugin directory so the
enforcer attributes them to the plugin. Everything the plugin runs — import-time code,
``initialize``, tools, ``shutdown`` — runs inside ``enforcer.guard(plugin_id)``.

Starting is bounded like a child process's start: the import runs on its own daemon thread
and, with ``initialize`` and the tool listing, must finish within ``START_TIMEOUT`` seconds.
A plugin that does not is reported failed; Python cannot kill a thread, so the one stuck in
its code is abandoned (a daemon: it never holds the host's exit) and keeps running under the
plugin's guard, with the plugin's modules removed from the import system.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from promptline.sdk import (
    MAX_TOOL_RETRIES,
    ModelPlugin,
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
from ._loader import DEFAULT_CALL_TIMEOUT, START_TIMEOUT, LoadContext, LoadedPlugin
from ._loop import PluginLoop
from ._model import ModelInfo, describe_model
from ._requires import check_class_requires

_IMPORT_LOCK = threading.Lock()
CALL_GRACE = 0.5   # seconds beyond the tool timeout before the caller stops waiting
HOOK_TIMEOUT = 60.0  # seconds for templates() and shutdown (a start gets START_TIMEOUT for all of it)


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
    """A plugin object living in the host process, called under the enforcer's guard.
    Every hook (sync or async) runs on the plugin's host-owned event loop (:class:`PluginLoop`)."""

    sandbox = "none"

    def __init__(self, plugin_id: str, version: str, instance: Plugin, enforcer: Any,
                 finder: _SnapshotFinder | None, loop: PluginLoop, *, start_timeout: float = HOOK_TIMEOUT) -> None:
        self.id = plugin_id
        self.version = version
        self.instance = instance
        self.enforcer = enforcer
        self._finder = finder
        self._loop = loop
        self._tools: dict[str, Any] = {}
        self._specs: list[ToolSpec] = []
        if isinstance(instance, ToolPlugin):
            tools = list(loop.run(instance.tools, start_timeout))
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

        async def invoke(t, a):
            # a synchronous execute runs on its own daemon thread, so it cannot stall the loop
            return await invoke_tool(t, a, timeout=timeout, offload_sync=True)

        def attempt():
            return call_with_recovery(self.instance, tool, args, invoke=invoke)
        budget = timeout * (MAX_TOOL_RETRIES + 1) + CALL_GRACE
        try:
            return self._loop.run(attempt, budget)
        except TimeoutError:
            return ToolResult.failure(ToolError(f"did not answer within {timeout:g} s", tool=name,
                                                kind="timeout", retryable=True))
        except BaseException as exc:  # noqa: BLE001 - a plugin never crashes the host
            return error_result(exc, tool=name)

    def templates(self) -> Sequence[PromptTemplate]:
        fn = getattr(self.instance, "templates", None)
        if fn is None:
            return ()
        try:
            found = list(self._loop.run(fn, HOOK_TIMEOUT))
        except (Exception, SystemExit):  # noqa: BLE001
            return ()
        return tuple(t for t in found if isinstance(t, PromptTemplate))

    def get_context(self, query: str, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> str:
        fn = getattr(self.instance, "get_context", None)
        if fn is None:
            return ""
        try:
            value = self._loop.run(lambda: fn(query), timeout)
        except (Exception, SystemExit):  # noqa: BLE001
            return ""
        return value if isinstance(value, str) else ""

    def model_info(self, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> ModelInfo | None:
        if not isinstance(self.instance, ModelPlugin):
            return None
        instance = self.instance

        async def probe():
            return describe_model(instance.provider(), await maybe_await(instance.is_available()))
        try:
            return self._loop.run(probe, timeout)
        except BaseException as exc:  # noqa: BLE001 - a failing probe means unavailable
            return ModelInfo("", False, f"is_available raised `{type(exc).__name__}`")

    def complete(self, prompt: str, *, timeout: float = DEFAULT_CALL_TIMEOUT, **options: Any) -> ToolResult:
        if not isinstance(self.instance, ModelPlugin):
            return super().complete(prompt, timeout=timeout, **options)
        instance = self.instance
        try:
            value = self._loop.run(lambda: instance.provider().complete(prompt, **options), timeout)
        except TimeoutError:
            return ToolResult.failure(ToolError(f"did not answer within {timeout:g} s", tool="complete",
                                                kind="timeout", retryable=True))
        except BaseException as exc:  # noqa: BLE001
            return error_result(exc, tool="complete")
        if not isinstance(value, str):
            return ToolResult.failure(ToolError("the model returned a non-string", tool="complete",
                                                kind="malformed-result"))
        return ToolResult.success(value)

    def shutdown(self) -> None:
        try:
            self._loop.run(self.instance.shutdown, HOOK_TIMEOUT)
        except BaseException:  # noqa: BLE001
            pass
        finally:
            self._loop.close()
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
            if plugin.package is not None:
                # finding the installed package (listing its site directory) is host business;
                # running its code is the plugin's
                try:
                    importlib.util.find_spec(plugin.package.partition(".")[0])
                except (ImportError, ValueError):
                    pass
            deadline = time.monotonic() + START_TIMEOUT
            try:
                instance = _import_bounded(pid, enforcer, module_name, attr, START_TIMEOUT)
            except BaseException as exc:  # noqa: BLE001 - plugin import code is hostile
                _forget(finder)
                if isinstance(exc, LoaderError):
                    raise
                raise LoaderError(f"cannot import `{target}`: {type(exc).__name__}: {exc}", plugin=pid,
                                  fix="run the plugin's own tests") from None
        if not isinstance(instance, Plugin):
            raise LoaderError(f"`{target}` is not a promptline Plugin", plugin=pid,
                              fix="derive the class from promptline.ToolPlugin (or another plugin type)")
        bind_manifest(instance, manifest)
        check_class_requires(instance, pid)
        loop = PluginLoop(pid, lambda: enforcer.guard(pid))
        try:
            loop.run(lambda: instance.initialize(ctx.config), _left(deadline))
            return InProcessPlugin(pid, manifest.version, instance, enforcer, finder, loop,
                                   start_timeout=_left(deadline))
        except BaseException as exc:  # noqa: BLE001
            hung = isinstance(exc, TimeoutError)
            loop.close(0.05 if hung else 2.0)   # a loop stuck in plugin code is abandoned (a daemon thread)
            with _IMPORT_LOCK:
                _forget(finder)
            if isinstance(exc, LoaderError):
                raise
            if hung:
                raise LoaderError(f"did not start within {START_TIMEOUT:g} s: initialize() or tools() did not "
                                  "answer (the thread running it is abandoned)", plugin=pid,
                                  fix="make initialize() return promptly; start slow work in the background"
                                  ) from None
            raise LoaderError(f"initialize() failed: {type(exc).__name__}: {exc}", plugin=pid,
                              fix="check the plugin's configuration") from None


def _left(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())


def _import_bounded(pid: str, enforcer: Any, module_name: str, attr: str, budget: float) -> Plugin:
    """Import ``module_name`` and instantiate ``attr`` as the plugin, on a daemon thread;
    LoaderError when that takes more than ``budget`` seconds (the thread is abandoned)."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            with enforcer.guard(pid):
                module = importlib.import_module(module_name)
                outcome["value"] = getattr(module, attr)()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting host thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name=f"plugin-{pid}-import", daemon=True)
    worker.start()
    worker.join(budget)
    if worker.is_alive():
        raise LoaderError(f"did not start within {budget:g} s: importing `{module_name}` did not finish "
                          "(the thread running it is abandoned)", plugin=pid,
                          fix="do not block at import time; move slow work into initialize() or a tool")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _forget(finder: _SnapshotFinder | None) -> None:
    """Take a plugin that failed to start out of the import system (caller holds _IMPORT_LOCK)."""
    if finder is None:
        return
    if finder in sys.meta_path:
        sys.meta_path.remove(finder)
    for mod in list(finder.names):
        if getattr(getattr(sys.modules.get(mod), "__spec__", None), "loader", None) is finder:
            sys.modules.pop(mod, None)
