"""PluginManager: discover, verify, approve, decide `plugin.load`, load, call, unload.

    with PluginManager(policy_files=["policies/default.yaml"], audit_log=log) as pm:
        report = pm.load_all()
        for name, spec in pm.list_tools(): ...
        result = pm.call_tool("notes.search", {"query": "todo"})

A plugin's exception, hang or malformed result never crashes the host: it becomes an error
ToolResult (or the plugin's ``on_tool_error`` recovery). Every tool call is a ``tool.call``
request, so admins can deny or ask for a tool or for particular arguments.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from promptline.policy import PolicyError, Request, Verdict, load_policy_set
from promptline.sdk import PluginConfig, ToolError, ToolResult, ToolSpec

from ._approval import ApprovalStore, ApprovalSubject
from ._discovery import DiscoveredPlugin, DiscoveryProblem, discover, manifest_from_tree, org_publishers
from ._errors import ApprovalRequired, ApprovalStoreError, LoaderError, SignatureError
from ._loader import DEFAULT_CALL_TIMEOUT, LoadContext, LoadedPlugin
from ._signing import verify_plugin
from ._swap import STALE, rebuild_and_swap

# Where each sandbox's loader lives; imported lazily so a host without wasmtime still runs
# the others. A missing loader refuses the plugin: there is no fallback to a weaker sandbox.
LOADER_MODULES = {
    "none": ("promptline.loaders._python", "PythonLoader"),
    "process": ("promptline.loaders._process", "ProcessLoader"),
    "container": ("promptline.loaders._process", "ContainerLoader"),
    "wasm": ("promptline.loaders._wasm", "WasmLoader"),
}


MAX_ARGUMENT_DEPTH = 60   # nesting of a tool call's arguments (they travel inside a JSON-RPC message)


@dataclass
class LoadReport:
    """What load_all() did: plugins loaded, and for every other one why not."""

    loaded: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)    # (plugin id or origin, why)
    problems: list[DiscoveryProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused and not any(p.severity == "error" for p in self.problems)


@dataclass(frozen=True)
class ModelEntry:
    """One model provider as :meth:`PluginManager.list_models` reports it."""

    plugin: str
    name: str
    available: bool
    reason: str = ""
    sandbox: str = ""


@dataclass(frozen=True)
class _Candidate:
    plugin: DiscoveredPlugin
    files: Mapping[str, bytes]
    manifest_text: str
    signed: bool
    key_id: str | None


def _default_audit_log() -> Any:
    from promptline.enforcer.audit import AuditLog, default_log_path
    path = default_log_path()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return AuditLog(path)


@dataclass(frozen=True)
class ManagerConfig:
    """Everything a PluginManager is configured with (all optional).

    ``policy_files`` the policy files (org, project, user layers); ``search_path``,
    ``config_path`` and ``entry_points`` where plugins are discovered; ``audit_log`` the audit
    sink (None: the user's default log, as the CLI writes it — ``$PROMPTLINE_AUDIT_LOG`` or
    the user state dir; False: no audit log); ``prompter`` who answers asks; ``approvals``/``approve_all``/``approve_callback`` how
    approval is decided; ``grants`` the user's remembered answers; ``backend`` the CEL backend;
    ``settings`` per-plugin settings (plugin id -> mapping); ``call_timeout`` seconds per call;
    ``install_hook`` whether in-process plugins get the audit hook; ``data_dir`` where each
    plugin's data directory lives; ``watch`` hot reload; ``bundle`` a signed org policy bundle
    to pull and keep current (a ``BundleConfig`` or its mapping, see ``_bundle._fetch``).
    """

    policy_files: Sequence[str | os.PathLike] = ()
    search_path: Sequence[str | os.PathLike] | None = None
    config_path: str | os.PathLike | None = None
    entry_points: bool = True
    audit_log: Any = None
    prompter: Any = None
    approvals: ApprovalStore | None = None
    approve_all: bool = False
    approve_callback: Callable[[Any], bool] | None = None
    grants: str | os.PathLike | None = None
    backend: str | None = None
    settings: Mapping[str, Mapping[str, Any]] | None = None
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    install_hook: bool = True
    data_dir: str | os.PathLike | None = None
    watch: bool = False
    bundle: Any = None


class PluginManager:
    """Loads plugins under policy and serves their tools to the host.

        PluginManager(ManagerConfig(policy_files=[...]))      # or the same fields as keywords
        PluginManager(policy_files=[...], loaders={"process": MyLoader()})

    ``loaders`` replaces the loader of a sandbox level (tests use a fake one); the others are
    imported on first use from :data:`LOADER_MODULES`.
    """

    def __init__(self, config: ManagerConfig | None = None, /, *, loaders: Mapping[str, Any] | None = None,
                 **fields: Any) -> None:
        if config is None:
            config = ManagerConfig(**fields)
        elif fields:
            config = replace(config, **fields)
        self.config = config
        self.policy_files = [os.fspath(p) for p in config.policy_files]
        self.search_path = config.search_path
        self.config_path = config.config_path
        self.entry_points = config.entry_points
        self.audit_log = _default_audit_log() if config.audit_log is None else (config.audit_log or None)
        self.prompter = config.prompter
        self.approvals = config.approvals or ApprovalStore()
        self.approve_all = config.approve_all
        self.approve_callback = config.approve_callback
        self.grants = os.fspath(config.grants) if config.grants is not None else None
        self.backend = config.backend
        self.plugin_settings = dict(config.settings or {})
        self.call_timeout = config.call_timeout
        self.install_hook = config.install_hook
        self.data_dir = Path(config.data_dir) if config.data_dir else None
        self.enforcer = None
        self.policy_set = None
        self._plugins: dict[str, LoadedPlugin] = {}
        self._candidates: dict[str, _Candidate] = {}
        self._inline: dict[str, Any] = {}             # id -> Manifest of plugins from register_plugin
        self._inflight: dict[int, int] = {}          # id(LoadedPlugin) -> calls running on it
        self._idle = threading.Condition(threading.RLock())
        self._lock = self._idle
        self._loaders: dict[str, Any] = dict(loaders or {})
        self._reload_lock = threading.Lock()          # one reload at a time
        self.watch = config.watch
        self.watcher = None
        self.last_reload_error: str = ""
        self.plugin_reload_errors: dict[str, str] = {}  # plugin id -> why its update was not applied
        self.bundle = None                            # BundleUpdater, when configured
        self._bundle_files: list[str] = []            # policy files of the bundle in force
        if config.bundle is not None:
            from ._bundle import BundleConfig, BundleUpdater
            cfg = config.bundle if isinstance(config.bundle, BundleConfig) else BundleConfig.from_mapping(config.bundle)
            self.bundle = BundleUpdater(self, cfg)

    # -- context manager -------------------------------------------------------------

    def __enter__(self) -> PluginManager:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    # -- loading ---------------------------------------------------------------------

    def _lifecycle(self, plugin_id: str, version: str, event: str, detail: str = "") -> None:
        if self.audit_log is not None:
            self.audit_log.lifecycle(plugin_id, version, event, detail)

    def _protected(self) -> list[tuple[str, str]]:
        out = [(str(self.approvals.path), "the approvals file")]
        log_path = getattr(self.audit_log, "path", None)
        if log_path:
            out.append((os.path.dirname(os.fspath(log_path)) or ".", "the audit log"))
        if self.bundle is not None:
            out.append((str(self.bundle.cache), "the org bundle cache"))
        return out

    def discover(self):
        return discover(search_path=self.search_path, config_path=self.config_path,
                        entry_points=self.entry_points)

    def load_all(self, only: Iterable[str] | None = None) -> LoadReport:
        """Discover every plugin, verify, check approval, build the policy, and load.
        ``only``: load just these plugin ids (the others are not verified, asked about or
        started — `promptline tool call notes.search` starts `notes` alone).
        With ``watch=True`` a watcher then reloads policies and plugins as files change."""
        wanted = None if only is None else set(only)
        with self._reload_lock:
            if self.bundle is not None and self.bundle.current is None:
                self._bundle_files = self.bundle.load_cached()     # offline start: the last good bundle
            report = LoadReport()
            found = self.discover()
            report.problems.extend(found.problems)
            if wanted is not None:            # and what they depend on, loaded first
                from ._registry import dependency_closure
                wanted = dependency_closure(wanted, {p.id: p.manifest.dependencies for p in found})
            base = load_policy_set(self._all_policy_files(), backend=self.backend, grants=self.grants)
            candidates: list[_Candidate] = []
            for plugin in found:
                if wanted is not None and plugin.id not in wanted:
                    continue
                self._lifecycle(plugin.id, plugin.version, "discovered", plugin.origin)
                cand = self._verify_and_approve(plugin, base.settings, report)
                if cand is not None:
                    candidates.append(cand)
            candidates = self._dependencies_first(candidates, report)
            self._install_policy(self._build_policy(candidates))
            self._candidates = {c.plugin.id: c for c in candidates}
            for cand in candidates:
                self._load_one(cand, report)
        if self.bundle is not None:
            self.bundle.start()
        if self.watch and self.watcher is None:
            from ._reload import Watcher
            self.watcher = Watcher(self)
            self.watcher.start()
        return report

    # -- in-code plugins ----------------------------------------------------------------

    def register_plugin(self, obj: Any, manifest: Any = None) -> LoadedPlugin:
        """Add a plugin object the core built itself (loaders/_inline.py). ``manifest``: a
        Manifest, a mapping or a plugin.yaml path; None builds it from the class attributes
        ``id``, ``version`` (required), ``name``, ``description``, ``requires``, ``types``,
        ``capabilities``, ``limits``, ``config``. The plugin is trusted by construction
        (no signature, no approval) and runs in process, decided by policy like any other:
        ``plugin.load`` first, its tool calls as ``tool.call``, its guarded calls by the
        enforcer as that plugin, all audited (lifecycle ``registered``, then ``loaded``).
        Refused (LoaderError, nothing changed) when the id is taken, when the policy needs a
        sandbox above ``none`` for it (``sandbox_minimum``) or refuses ``plugin.load``; a
        policy installed later that needs more than ``none`` unloads it."""
        from ._inline import inline_manifest, start_inline
        m = inline_manifest(obj, manifest)
        pid, version = m.id, m.version
        origin = f"in-code {type(obj).__module__}.{type(obj).__qualname__}"
        with self._reload_lock:
            if pid in self._candidates or pid in self._inline or pid in self.plugins:
                raise LoaderError(f"plugin id `{pid}` is already loaded", plugin=pid,
                                  fix="give the in-code plugin its own id")
            self._lifecycle(pid, version, "registered", origin)

            def refuse(why: str, fix: str) -> LoaderError:
                if self._inline.pop(pid, None) is not None and self.policy_set is not None and \
                        pid in self.policy_set.plugins:
                    self._install_policy(self._build_policy(list(self._candidates.values())))
                self._lifecycle(pid, version, "failed", why)
                return LoaderError(why, plugin=pid, fix=fix)

            self._inline[pid] = m
            try:
                ps = self._build_policy(list(self._candidates.values()))
            except PolicyError as exc:
                raise refuse(f"its manifest does not compile: {exc}", "fix the manifest") from None
            info = ps.plugins[pid]
            if info.sandbox != "none":
                raise refuse(f"the policy requires sandbox `{info.sandbox}` for it (sandbox_minimum "
                             f"`{info.minimum}`), and an in-code plugin can only run in process",
                             "ship it as a plugin directory the manager discovers, or lower sandbox_minimum")
            self._install_policy(ps)
            enforcer = self.enforcer
            assert enforcer is not None       # _install_policy made it
            d = enforcer.check(pid, Request("plugin.load", pid))
            if d.verdict is not Verdict.ALLOW:
                raise refuse(f"loading refused by policy: {d.reason()}", "ask the policy's admin to allow it")
            settings = dict(m.config)
            settings.update(self.plugin_settings.get(pid, {}))
            data_dir = self._data_dir(pid)
            if data_dir is not None:
                os.makedirs(data_dir, mode=0o700, exist_ok=True)
            config = PluginConfig(pid, settings, Path(data_dir) if data_dir else None,
                                  functools.partial(self.call_dependency_tool, pid))
            if self.install_hook and not enforcer.installed:
                enforcer.install()
            try:
                loaded = start_inline(obj, m, enforcer, config)
            except LoaderError as exc:
                raise refuse(exc.message, exc.fix or "fix the plugin") from None
            with self._lock:
                self._plugins[pid] = loaded
            self._lifecycle(pid, version, "loaded", "sandbox none, in-code")
            return loaded

    def _drop_inline_below(self, ps) -> None:
        """Unload the in-code plugins a new policy needs above sandbox `none` (fail closed:
        they cannot move into a sandbox)."""
        for pid in [p for p in self._inline if p in ps.plugins and ps.plugins[p].sandbox != "none"]:
            version = self._inline[pid].version
            if self.unload(pid):
                self._lifecycle(pid, version, "failed", f"unloaded: the policy now requires sandbox "
                                                        f"`{ps.plugins[pid].sandbox}` and an in-code plugin "
                                                        "runs only in process")

    # -- reloading (called by the watcher; safe to call by hand) -----------------------

    def reload_policy(self, settled: Callable[[], bool] | None = None) -> bool:
        """Compile the policy files aside and swap them in; on error keep the old policy,
        record why (audit log, ``last_reload_error``) and return False. ``settled`` (the
        watcher's) is asked after compiling: False means the files changed meanwhile, and
        nothing is swapped or recorded."""
        with self._reload_lock:
            why = rebuild_and_swap(
                lambda: self._build_policy(list(self._candidates.values())), self._install_policy,
                audit_log=self.audit_log, current=self.policy_set, settled=settled)
            if why is not STALE:
                self.last_reload_error = why
            return not why

    def use_bundle_files(self, files: Sequence[str], note: str = "") -> str:
        """Compile ``files`` (an org bundle's policy files) with the configured policy files
        aside and swap them in; on error keep everything as it is. Returns "" or why not."""
        files = [os.fspath(f) for f in files]

        def install(ps) -> None:
            self._bundle_files = files
            self._install_policy(ps)

        with self._reload_lock:
            error = rebuild_and_swap(lambda: self._build_policy(list(self._candidates.values()), bundle_files=files),
                                     install, audit_log=self.audit_log, current=self.policy_set)
        return f"{note}: {error}" if error and note else error

    def _all_policy_files(self, bundle_files: Sequence[str] | None = None) -> list[str]:
        """The bundle's policy files (org layer, pulled) before the configured ones."""
        return list(self._bundle_files if bundle_files is None else bundle_files) + self.policy_files

    def reload_plugins(self) -> LoadReport:
        """Rediscover plugins and apply what changed, rebuild-then-swap (DESIGN.md §9): a
        changed plugin's new version is verified, approved, compiled into the policy and
        started (imported, ``initialize`` answered) while the old instance keeps serving;
        only then do new calls switch to it (running calls finish on the old one). A new
        version that fails any step keeps the old one serving, and says why: a
        ``plugin_reload ok=false`` audit record, ``plugin_reload_errors[id]`` and the
        report's ``refused``. A plugin is unloaded only when its directory or its
        plugin.yaml is gone — an unreadable or invalid plugin.yaml keeps the old one."""
        with self._reload_lock:
            report = LoadReport()
            found = self.discover()
            report.problems.extend(found.problems)
            base = self.policy_set
            settings = base.settings if base is not None else load_policy_set(
                self._all_policy_files(), backend=self.backend, grants=self.grants).settings
            previous = dict(self._candidates)
            roots = {os.path.realpath(c.plugin.root): pid for pid, c in previous.items()}
            fresh: dict[str, _Candidate] = {}
            changed: list[_Candidate] = []
            for plugin in found:
                old = previous.get(plugin.id)
                owner = roots.get(os.path.realpath(plugin.root))
                if owner is not None and owner != plugin.id:
                    continue   # the old plugin's directory now names another id: kept below
                if old is not None and old.plugin.root == plugin.root and _same_tree(old, plugin):
                    fresh[plugin.id] = old
                    self.plugin_reload_errors.pop(plugin.id, None)   # back to what serves
                    continue
                self._lifecycle(plugin.id, plugin.version, "discovered", plugin.origin)
                cand = self._verify_and_approve(plugin, settings, report)
                if cand is None:
                    if old is not None:
                        fresh[plugin.id] = old   # keep serving the last good version
                        self._update_failed(old, plugin.version, report.refused[-1][1])
                    continue
                fresh[plugin.id] = cand
                changed.append(cand)
            for pid, old in previous.items():
                if pid not in fresh and _still_there(old):
                    fresh[pid] = old
                    self._update_failed(old, old.plugin.version, _why_not_found(old, found))
            removed = [pid for pid in previous if pid not in fresh]
            if not changed and not removed:
                return report
            try:
                ps = self._build_policy(list(fresh.values()))
            except Exception as exc:  # noqa: BLE001 - whatever a hostile manifest makes the compiler raise
                why = _why(exc, "cannot compile the policy with the new plugin versions")
                report.refused.append(("policy", why))
                for cand in changed:
                    self._update_failed(previous.get(cand.plugin.id), cand.plugin.version, why, report)
                return report
            self._install_policy(ps)
            self._candidates = fresh
            started = self._start_changed(changed, previous, fresh, report, base)
            for cand, loaded in started:
                pid = cand.plugin.id
                self._swap_in(pid, loaded, report, "reloaded" if pid in previous else "loaded")
                self.plugin_reload_errors.pop(pid, None)
                self._plugin_reload(pid, cand.plugin.version, True, "")
            for pid in removed:
                self.unload(pid)
            return report

    def _start_changed(self, changed: list[_Candidate], previous: Mapping[str, _Candidate],
                       fresh: dict[str, _Candidate], report: LoadReport, base) -> list:
        """Start every changed plugin aside; roll the ones that fail back to their old
        version (policy included). Returns the (candidate, instance) pairs to swap in."""
        started, failed = [], []
        for cand in changed:
            loaded = self._start_one(cand, report)
            (started.append((cand, loaded)) if loaded is not None else failed.append(cand))
        if not failed:
            return started
        for cand in failed:
            pid = cand.plugin.id
            old = previous.get(pid)
            if old is not None:
                fresh[pid] = old
            else:
                fresh.pop(pid, None)
            self._update_failed(old, cand.plugin.version, dict(report.refused).get(pid, "failed to start"))
        try:
            self._install_policy(self._build_policy(list(fresh.values())))
            self._candidates = fresh
        except Exception as exc:  # noqa: BLE001 - back to exactly what ran before
            why = _why(exc, "cannot compile the policy back")
            if base is not None:
                self._install_policy(base)
            self._candidates = dict(previous)
            for cand, loaded in started:
                loaded.shutdown()
                self._update_failed(previous.get(cand.plugin.id), cand.plugin.version, why, report)
            return []
        return started

    def _update_failed(self, old: _Candidate | None, version: str, why: str,
                       report: LoadReport | None = None) -> None:
        """A new version of a plugin was not swapped in: say why (the old one serves)."""
        if old is None:
            return
        pid = old.plugin.id
        if report is not None:
            report.refused.append((pid, why))
        why = f"update to {version} not applied, {old.plugin.version} keeps serving: {why}"
        self.plugin_reload_errors[pid] = why
        self._plugin_reload(pid, version, False, why)

    def _plugin_reload(self, pid: str, version: str, ok: bool, error: str) -> None:
        record = getattr(self.audit_log, "plugin_reload", None)
        if record is not None:
            record(pid, version, ok, error)

    def _verify_and_approve(self, plugin: DiscoveredPlugin, settings, report: LoadReport) -> _Candidate | None:
        pid, version = plugin.id, plugin.version
        try:
            verified = verify_plugin(plugin.root, settings.trusted_keys,
                                     require_signature=settings.require_signature, plugin=pid)
        except SignatureError as exc:
            self._refuse(report, pid, version, str(exc))
            return None
        self._lifecycle(pid, version, "verified", verified.describe())
        rel = os.path.relpath(plugin.manifest_path, plugin.root)
        data = verified.files.get(rel.replace(os.sep, "/"))
        if data is None:
            self._refuse(report, pid, version, "plugin.yaml is outside the verified tree")
            return None
        try:
            manifest = manifest_from_tree(verified, origin=str(plugin.manifest_path))
        except PolicyError as exc:
            self._refuse(report, pid, version, str(exc))
            return None
        if manifest.id != pid:
            self._refuse(report, pid, version, f"plugin.yaml changed while it was being verified (id `{manifest.id}`)")
            return None
        plugin = replace(plugin, manifest=manifest)
        subject = ApprovalSubject.from_verified(manifest, verified)
        try:
            status = self.approvals.status(subject, preapproved_publishers=org_publishers(settings),
                                           mode=settings.approve)
        except ApprovalStoreError as exc:
            self._refuse(report, pid, version, str(exc))
            return None
        if not status.ok:
            granted = self.approve_all or (self.approve_callback is not None and self._ask_approval(status))
            if not granted:
                try:
                    status.require()
                except ApprovalRequired as exc:
                    self._refuse(report, pid, version, str(exc))
                return None
            try:
                self.approvals.approve(subject)
            except ApprovalStoreError as exc:
                self._refuse(report, pid, version, str(exc))
                return None
            self._lifecycle(pid, version, "approved", "capabilities: " + ", ".join(sorted(subject.capabilities)))
        return _Candidate(plugin, verified.files, data.decode("utf-8"), verified.signed, verified.key_id)

    def _dependencies_first(self, candidates: list[_Candidate], report: LoadReport) -> list[_Candidate]:
        """Candidates with each plugin's manifest ``dependencies`` before it; a plugin whose
        dependency is missing, refused or in a cycle is refused with why."""
        from ._registry import load_order
        by_id = {c.plugin.id: c for c in candidates}
        order, bad = load_order({pid: c.plugin.manifest.dependencies for pid, c in by_id.items()},
                                {pid: c.plugin.version for pid, c in by_id.items()})
        for pid, why in sorted(bad.items()):
            self._refuse(report, pid, by_id[pid].plugin.version, f"not loaded: {why}")
        return [by_id[pid] for pid in order]

    def _ask_approval(self, status) -> bool:
        try:
            return self.approve_callback(status) is True
        except Exception:  # noqa: BLE001 - a failing UI means no approval
            return False

    def _refuse(self, report: LoadReport, pid: str, version: str, why: str) -> None:
        report.refused.append((pid, why))
        self._lifecycle(pid, version, "failed", why)

    def _data_dir(self, plugin_id: str) -> str | None:
        """The plugin's own data directory (``PluginConfig.data_dir``): read and write at
        every sandbox level (the policy's baseline grants it), or None without ``data_dir``."""
        return os.path.abspath(os.path.join(self.data_dir, plugin_id)) if self.data_dir else None

    def _build_policy(self, candidates: list[_Candidate], *, bundle_files: Sequence[str] | None = None):
        """A new PolicySet for these plugins, built aside (raises PolicyError, changes nothing)."""
        facts = {c.plugin.id: {"signed": c.signed, "publisher": c.key_id or "",
                               "data_dir": self._data_dir(c.plugin.id)} for c in candidates}
        manifests: list[Any] = [(str(c.plugin.manifest_path), c.manifest_text) for c in candidates]
        for pid, inline in self._inline.items():     # in-code plugins: trusted by construction
            facts[pid] = {"signed": False, "publisher": "", "trusted": True, "data_dir": self._data_dir(pid)}
            manifests.append(inline)
        protected = self._protected() + [(str(c.plugin.root), "a plugin directory") for c in candidates]
        return load_policy_set(self._all_policy_files(bundle_files), manifests, backend=self.backend,
                               grants=self.grants, protected_paths=protected, plugin_facts=facts)

    def _install_policy(self, ps) -> None:
        """Swap ``ps`` in: one reference assignment in the enforcer, decisions follow it."""
        from promptline.enforcer import Enforcer
        if self.enforcer is None:
            from promptline.enforcer import GrantStore
            store = GrantStore(self.grants) if self.grants else None
            self.enforcer = Enforcer(ps, audit_log=self.audit_log, prompter=self.prompter, grants=store)
        else:
            self.enforcer.use(ps)
        self.policy_set = ps
        self._drop_inline_below(ps)

    def _loader(self, sandbox: str):
        loader = self._loaders.get(sandbox)
        if loader is None:
            module, attr = LOADER_MODULES[sandbox]
            try:
                loader = getattr(importlib.import_module(module), attr)()
            except (ImportError, AttributeError) as exc:
                raise LoaderError(f"the `{sandbox}` sandbox is not available here: {exc}",
                                  fix="install PromptLine's full dependencies") from None
            self._loaders[sandbox] = loader
        return loader

    def _load_one(self, cand: _Candidate, report: LoadReport, event: str = "loaded") -> None:
        loaded = self._start_one(cand, report)
        if loaded is not None:
            self._swap_in(cand.plugin.id, loaded, report, event)

    def _start_one(self, cand: _Candidate, report: LoadReport) -> LoadedPlugin | None:
        """Start ``cand`` under the policy in force (imported, ``initialize`` answered);
        None (refused, recorded) when it cannot run. Nothing is swapped in."""
        plugin = cand.plugin
        pid, version = plugin.id, plugin.version
        info = self.policy_set.plugins[pid]
        if info.below_minimum:
            self._refuse(report, pid, version,
                         f"cannot run in the `{info.minimum}` sandbox the policy requires (sandbox_minimum); "
                         f"its `{plugin.manifest.entry.kind}` entry runs at most in `{info.sandbox}` — "
                         f"ask its author for a {info.minimum} build, or lower `sandbox_minimum`")
            return None
        d = self.enforcer.check(pid, Request("plugin.load", pid))
        if d.verdict is not Verdict.ALLOW:
            self._refuse(report, pid, version, f"loading refused by policy: {d.reason()}")
            return None
        settings = dict(plugin.manifest.config)
        settings.update(self.plugin_settings.get(pid, {}))
        data_dir = self._data_dir(pid)
        if data_dir is not None:
            try:
                os.makedirs(data_dir, mode=0o700, exist_ok=True)
            except OSError as exc:
                self._refuse(report, pid, version, f"cannot create its data directory `{data_dir}`: {exc.strerror}")
                return None
            data_dir = Path(data_dir)
        ctx = LoadContext(plugin=plugin, info=info, enforcer=self.enforcer,
                          config=PluginConfig(pid, settings, data_dir,
                                              functools.partial(self.call_dependency_tool, pid)),
                          files=cand.files,
                          policy_files=tuple(self.policy_set.sources),
                          audit_log_path=os.fspath(getattr(self.audit_log, "path", "") or "") or None)
        try:
            loader = self._loader(info.sandbox)
            if info.sandbox == "none" and self.install_hook and not self.enforcer.installed:
                self.enforcer.install()
            loaded = loader.load(ctx)
        except LoaderError as exc:
            self._refuse(report, pid, version, str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - a broken plugin never takes the host down
            self._refuse(report, pid, version, f"failed to load: {type(exc).__name__}: {exc}")
            return None
        start = getattr(loaded, "ensure_started", None)   # a child process: it must answer now
        try:
            if callable(start):
                start()   # within START_TIMEOUT (a restart during a call gets the call's timeout)
        except Exception as exc:  # noqa: BLE001 - a broken plugin never takes the host down
            loaded.shutdown()
            why = str(exc) if isinstance(exc, LoaderError) else f"{type(exc).__name__}: {exc}"
            self._refuse(report, pid, version, f"did not start: {why}")
            return None
        return loaded

    def _swap_in(self, pid: str, loaded: LoadedPlugin, report: LoadReport, event: str) -> None:
        """New calls go to ``loaded``; the instance it replaces retires once idle."""
        with self._lock:
            old = self._plugins.get(pid)
            self._plugins[pid] = loaded
        if old is not None:
            self._retire(old)
        report.loaded.append(pid)
        wall = getattr(loaded, "network_wall", None)   # which network wall a sandboxed child got
        info = self.policy_set.plugins.get(pid) if self.policy_set is not None else None
        sandbox = getattr(info, "sandbox", None) or getattr(loaded, "sandbox", "")
        self._lifecycle(pid, getattr(loaded, "version", ""), event,
                        f"sandbox {sandbox}" + (f", network {wall}" if wall else ""))

    def _retire(self, old: LoadedPlugin, wait: float = 60.0) -> None:
        """Shut ``old`` down once the calls running on it have finished (in the background)."""
        def finish() -> None:
            with self._idle:
                self._idle.wait_for(lambda: self._inflight.get(id(old), 0) == 0, timeout=wait)
            old.shutdown()
        threading.Thread(target=finish, name=f"retire-{old.id}", daemon=True).start()

    # -- using -----------------------------------------------------------------------

    @property
    def plugins(self) -> Mapping[str, LoadedPlugin]:
        with self._lock:
            return dict(self._plugins)

    def list_tools(self) -> list[tuple[str, ToolSpec]]:
        """Every loaded tool as (`plugin.tool`, spec), sorted by name."""
        out = []
        for pid, loaded in sorted(self.plugins.items()):
            for spec in loaded.tools():
                out.append((f"{pid}.{spec.name}", spec))
        return out

    def call_tool(self, name: str, args: Any = None, *, timeout: float | None = None) -> ToolResult:
        """Call `plugin.tool` with ``args`` under policy; never raises for plugin failures."""
        pid, _, tool = name.partition(".")
        with self._lock:
            loaded = self._plugins.get(pid)
            if loaded is not None:
                self._inflight[id(loaded)] = self._inflight.get(id(loaded), 0) + 1
        if loaded is None or not tool:
            if loaded is not None:
                self._done(loaded)
            return ToolResult.failure(ToolError(f"no loaded plugin provides `{name}`", tool=name,
                                                kind="unknown-tool"))
        try:
            return self._call(loaded, pid, tool, name, args, timeout)
        finally:
            self._done(loaded)

    def call_dependency_tool(self, caller: str, name: str, args: Any = None, *,
                             timeout: float | None = None) -> ToolResult:
        """``caller`` calls `dep.tool` of one of its manifest dependencies (its
        ``PluginConfig.call_tool``): decided as the caller's ``tool.call`` of `dep.tool` (its
        policy, its audit record), then run as any call of `dep` (the dependency's policy,
        grants and sandbox; its own audit record). Capabilities never flow across."""
        dep = name.partition(".")[0]
        running = self.enforcer.current_plugin()
        if running is not None and running != caller:      # in-process code speaks only for itself
            return ToolResult.failure(ToolError(f"plugin `{running}` may not call tools as `{caller}`", tool=name,
                                                kind="denied"))
        cand = self._candidates.get(caller)
        if cand is None or dep not in cand.plugin.manifest.dependencies:
            return ToolResult.failure(ToolError(f"`{dep}` is not a dependency of `{caller}`: a plugin calls only "
                                                "the plugins its manifest `dependencies` names", tool=name,
                                                kind="denied"))
        try:
            request = Request.tool_call(caller, name, args if isinstance(args, dict) else {})
        except (TypeError, ValueError) as exc:
            return ToolResult.failure(ToolError(f"arguments cannot be encoded: {exc}", tool=name,
                                                kind="invalid-arguments"))
        d = self.enforcer.check(caller, request)
        if d.verdict is not Verdict.ALLOW:
            return ToolResult.failure(ToolError(f"refused by policy: {d.reason()}", tool=name, kind="denied"))
        with self.enforcer.privileged():     # host code a plugin called: the dependency runs as itself
            return self.call_tool(name, args, timeout=timeout)

    def _done(self, loaded: LoadedPlugin) -> None:
        with self._idle:
            n = self._inflight.get(id(loaded), 1) - 1
            if n <= 0:
                self._inflight.pop(id(loaded), None)
            else:
                self._inflight[id(loaded)] = n
            self._idle.notify_all()

    def _call(self, loaded: LoadedPlugin, pid: str, tool: str, name: str, args: Any,
              timeout: float | None) -> ToolResult:
        args = {} if args is None else args
        if not isinstance(args, dict):
            return ToolResult.failure(ToolError("tool arguments must be a JSON object", tool=name,
                                                kind="invalid-arguments"))
        from ._process._jsonrpc import MAX_DEPTH, depth_ok
        if not depth_ok(args, MAX_ARGUMENT_DEPTH):   # one limit at every sandbox level
            return ToolResult.failure(ToolError(f"tool arguments nest deeper than {MAX_ARGUMENT_DEPTH} levels "
                                                f"(a JSON-RPC message nests at most {MAX_DEPTH}) — pass a "
                                                "flatter object", tool=name, kind="invalid-arguments"))
        try:
            request = Request.tool_call(pid, tool, args)
        except (TypeError, ValueError) as exc:
            return ToolResult.failure(ToolError(f"arguments cannot be encoded: {exc}", tool=name,
                                                kind="invalid-arguments"))
        d = self.enforcer.check(pid, request)
        if d.verdict is not Verdict.ALLOW:
            return ToolResult.failure(ToolError(f"refused by policy: {d.reason()}", tool=name, kind="denied"))
        return loaded.call_tool(tool, args, timeout=timeout or self.call_timeout_of(pid))

    def call_timeout_of(self, plugin_id: str) -> float:
        """Seconds one call of ``plugin_id`` may take: its manifest's ``limits.call_timeout``
        (capped by the policy), else the manager's ``call_timeout`` (also capped)."""
        info = self.policy_set.plugins.get(plugin_id) if self.policy_set is not None else None
        if info is None:
            return self.call_timeout
        limits = info.limits
        if info.manifest.limits.call_timeout is not None:
            return limits.call_timeout
        caps = self.policy_set.settings.limits
        cap = caps.call_timeout if caps is not None else None
        return min(self.call_timeout, cap) if cap is not None else self.call_timeout

    def templates(self) -> list[tuple[str, Any]]:
        """Every prompt template of the loaded plugins as (`plugin.template`, PromptTemplate)."""
        out = []
        for pid, loaded in sorted(self.plugins.items()):
            for t in loaded.templates():
                out.append((f"{pid}.{t.name}", t))
        return out

    def context(self, query: str, *, timeout: float | None = None) -> list[tuple[str, str]]:
        """(plugin id, text) from every loaded context plugin that answers ``query``."""
        out = []
        for pid, loaded in sorted(self.plugins.items()):
            if "context" not in loaded_types(self, pid):
                continue
            text = loaded.get_context(query, timeout=timeout or self.call_timeout)
            if text:
                out.append((pid, text))
        return out

    def context_plugins(self) -> list[str]:
        """Ids of the loaded context plugins, sorted."""
        return [pid for pid in sorted(self.plugins) if "context" in loaded_types(self, pid)]

    def context_of(self, plugin_id: str, query: str, *, timeout: float | None = None) -> ToolResult:
        """Context plugin ``plugin_id``'s answer to ``query`` as a ToolResult (never raises);
        decided like a call of the plugin's tool `context`."""
        loaded = self.plugins.get(plugin_id)
        if loaded is None or "context" not in loaded_types(self, plugin_id):
            return ToolResult.failure(ToolError(f"no loaded context plugin `{plugin_id}`", kind="unknown-tool"))
        d = self.enforcer.check(plugin_id, Request.tool_call(plugin_id, "context", {"query": query[:4096]}))
        if d.verdict is not Verdict.ALLOW:
            return ToolResult.failure(ToolError(f"refused by policy: {d.reason()}", tool="context", kind="denied"))
        return ToolResult.success(loaded.get_context(query, timeout=timeout or self.call_timeout))

    def list_models(self, *, timeout: float | None = None) -> list[ModelEntry]:
        """Every loaded model plugin's provider, asked ``is_available()`` now (an unavailable
        model is listed with why, and :meth:`complete` refuses it)."""
        out = []
        for pid, loaded in sorted(self.plugins.items()):
            info = loaded.model_info(timeout=timeout or self.call_timeout)
            if info is not None:
                out.append(ModelEntry(pid, info.name or pid, info.available, info.reason, loaded.sandbox))
        return out

    def complete(self, plugin_id: str, prompt: str, *, timeout: float | None = None, **options: Any) -> ToolResult:
        """Ask model plugin ``plugin_id`` to complete ``prompt`` (never raises); a model whose
        ``is_available()`` is not True is refused with kind ``unavailable``."""
        loaded = self.plugins.get(plugin_id)
        if loaded is None:
            return ToolResult.failure(ToolError(f"no loaded plugin `{plugin_id}`", kind="unknown-tool"))
        info = loaded.model_info(timeout=timeout or self.call_timeout)
        if info is not None and not info.available:
            return ToolResult.failure(ToolError(f"model `{info.name or plugin_id}` is not available: "
                                                f"{info.reason or 'is_available() said no'}",
                                                tool="complete", kind="unavailable", retryable=True))
        # a completion is decided like a call of the plugin's tool `complete`
        d = self.enforcer.check(plugin_id, Request.tool_call(plugin_id, "complete", {"prompt": prompt[:4096]}))
        if d.verdict is not Verdict.ALLOW:
            return ToolResult.failure(ToolError(f"refused by policy: {d.reason()}", tool="complete", kind="denied"))
        return loaded.complete(prompt, timeout=timeout or self.call_timeout, **options)

    # -- stopping --------------------------------------------------------------------

    def unload(self, plugin_id: str) -> bool:
        with self._lock:
            loaded = self._plugins.pop(plugin_id, None)
            self._candidates.pop(plugin_id, None)
            self._inline.pop(plugin_id, None)
        if loaded is None:
            return False
        with self._idle:
            self._idle.wait_for(lambda: self._inflight.get(id(loaded), 0) == 0, timeout=60.0)
        loaded.shutdown()
        self._lifecycle(plugin_id, loaded.version, "unloaded")
        return True

    def shutdown(self) -> None:
        if self.bundle is not None:
            self.bundle.stop()
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        for pid in list(self.plugins):
            self.unload(pid)
        if self.audit_log is not None:
            try:
                self.audit_log.flush()
            except Exception:  # noqa: BLE001
                pass


def loaded_types(manager: PluginManager, plugin_id: str) -> tuple[str, ...]:
    cand = manager._candidates.get(plugin_id)
    if cand is None and plugin_id in manager._inline:
        return tuple(manager._inline[plugin_id].types)
    return tuple(cand.plugin.manifest.types) if cand else ()


def _still_there(cand: _Candidate) -> bool:
    """Whether the plugin's directory and plugin.yaml still exist (gone: it was removed)."""
    from ._discovery import MANIFEST_FILE
    return os.path.isfile(os.path.join(cand.plugin.root, MANIFEST_FILE))


def _why_not_found(cand: _Candidate, found) -> str:
    """Why discovery no longer yields ``cand`` though its plugin.yaml is there."""
    root = os.path.realpath(cand.plugin.root)
    for p in found.problems:
        origin = os.path.realpath(p.origin.split(":", 1)[0]) if p.origin else ""
        if origin == root or origin.startswith(root + os.sep):
            return str(p)
    for plugin in found:
        if os.path.realpath(plugin.root) == root:
            return (f"{cand.plugin.manifest_path}: its plugin.yaml now names plugin `{plugin.id}` — a "
                    f"plugin keeps its id; remove the directory and add the new one to rename it")
    return f"{cand.plugin.manifest_path}: discovery no longer finds plugin `{cand.plugin.id}` there"


def _why(exc: BaseException, what: str) -> str:
    if isinstance(exc, (PolicyError, OSError)):
        return str(exc)
    return f"{what} ({type(exc).__name__}: {str(exc)[:200]})"


def _same_tree(old: _Candidate, plugin: DiscoveredPlugin) -> bool:
    """True when the plugin's files on disk are byte-for-byte those already loaded."""
    from ._signing import read_tree
    try:
        tree = read_tree(plugin.root, plugin=plugin.id)
    except LoaderError:
        return False
    return dict(tree.files) == dict(old.files)
