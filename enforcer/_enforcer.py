"""The Enforcer: decisions for the core, and the guard around in-process plugins.

    enf = Enforcer(load_policy_set([...], [...]), audit_log=log, prompter=None)
    enf.install()                       # once per process: audit hook, environ, hand-offs
    d = enf.check("notes", Request("fs.read", "notes", path="~/notes/a.md"))
    enf.require("notes", request)       # raises PolicyViolation when refused
    with enf.guard("notes"):            # or @enf.guard("notes") on a sync or async function
        plugin.run()
    enf.use(new_policy_set)             # atomic swap; calls already deciding finish on the old

``check`` never raises. An ASK decision goes to the optional ``prompter`` (an object with
``ask(plugin_id, request, decision) -> Decision``); without one, ask means deny.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
import threading
import types
from typing import Any

from promptline.policy import DecidedBy, Decision, Request, Verdict, interpreter_dirs, stdlib_dirs

from . import _hook
from ._attribution import ACTIVE, Owners, mint
from ._environ import UNSET
from ._errors import PolicyViolation
from ._events import Refuse
from ._netmemory import NetMemory
from ._paths import TRUSTED_PATH_TYPES, canonical_path
from ._prompt import Prompter, resolve_ask
from ._protocols import AuditSink, GrantLookup

MODES = ("enforce", "audit")
FRONT_CACHE_SIZE = 16_384  # allowed decisions the hook remembers per snapshot (then reset)
_ENFORCER_DIR = os.path.dirname(os.path.abspath(__file__)) + "/"


def _code_roots() -> tuple[str, ...]:
    """Where importable code lives at install time: pure-Python modules read from here by
    the import system need no fs.read grant."""
    import site
    import sysconfig
    roots = set(stdlib_dirs()) | set(interpreter_dirs())   # the base installation, venv or not
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_path(key)
        if p:
            roots.add(p)
    try:
        roots.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover
        pass
    home = os.path.expanduser("~")
    for p in sys.path:
        if p and os.path.isabs(p) and p not in ("/", home) and os.path.isdir(p):
            roots.add(p)
    return tuple(sorted(os.path.realpath(r).rstrip("/") + "/" for r in roots))


class Snapshot:
    """Frozen state the hook decides against (one per ``use()``)."""

    code_type = types.CodeType

    def __init__(self, enforcer: Enforcer, policy_set, dirs: tuple[tuple[str, str], ...],
                 code_roots: tuple[str, ...]) -> None:
        self.enforcer = enforcer
        self.policy_set = policy_set
        self.owners = Owners(dirs)
        self.provenance = bool(dirs)
        self.code_roots = code_roots
        self.plugin_dirs = {pid: d for d, pid in dirs}
        self.netmemory = enforcer._netmemory
        self.egress = enforcer._egress
        self.cache: dict[tuple, Decision] = {}
        self.fast: dict[tuple, tuple[int, int]] = {}
        self.log_allows = enforcer._log_allows()

    # -- helpers the event handlers use ---------------------------------------------------

    def free_read(self, plugin: str, path: str) -> bool:
        """Reads that need no grant: the plugin's own directory; importable .py/.pyc code."""
        own = self.plugin_dirs.get(plugin)
        if own is not None and (path.startswith(own) or path + "/" == own):
            return True
        if path.endswith((".py", ".pyc")):
            for root in self.code_roots:
                if path.startswith(root):
                    return True
        return False

    def free_list(self, plugin: str, path: str) -> bool:
        """Listings that need no grant: the plugin's own directory and the code roots (the
        import system lists package directories to find modules; only names are revealed)."""
        if self.free_read(plugin, path):
            return True
        below = path.rstrip("/") + "/"
        for root in self.code_roots:
            if below.startswith(root):
                return True
        return False

    def has_process(self, plugin: str) -> bool:
        info = self.policy_set.plugins.get(plugin)
        try:
            caps = info.manifest.capabilities
            return bool(caps.process) or bool(caps.native)
        except AttributeError:
            return False

    is_thread_bootstrap = staticmethod(_hook.is_thread_bootstrap)

    @staticmethod
    def is_enforcer_code(code) -> bool:
        f = code.co_filename
        return type(f) is str and f.startswith(_ENFORCER_DIR)

    @staticmethod
    def is_protected_object(obj) -> bool:
        # identity, not equality: a plugin's metaclass __eq__/__hash__ never runs here
        return any(obj is t for t in _PROTECTED)

    # -- deciding -------------------------------------------------------------------------

    def enforce(self, plugin: str, action: str, fields: tuple) -> Decision:
        key = (plugin, action, fields)
        d = self.cache.get(key)
        if d is not None:
            return d
        request = Request(action, plugin, **dict(fields))
        d = self.enforcer._decide(plugin, request, self.policy_set)
        if not d.allowed:
            raise PolicyViolation(plugin, request, d)
        if d.decided_by is not DecidedBy.PROMPT_ONCE:
            if len(self.cache) >= FRONT_CACHE_SIZE:
                self.cache.clear()
            self.cache[key] = d
        return d

    @staticmethod
    def cacheable(d: Decision) -> bool:
        return d.decided_by is not DecidedBy.PROMPT_ONCE

    def remember_fast(self, key: tuple, ident: tuple[int, int]) -> None:
        if self.log_allows:
            return  # every allow goes to the log: no shortcut past enforce()
        if len(self.fast) >= FRONT_CACHE_SIZE:
            self.fast.clear()
        self.fast[key] = ident

    def may(self, plugin: str, action: str, fields: tuple, log: bool | str) -> bool:
        key = (plugin, action, fields)
        d = self.cache.get(key)
        if d is not None:
            return True
        request = Request(action, plugin, **dict(fields))
        quiet = log == UNSET   # a variable that is not set: only audit-mode records are kept
        d = self.enforcer._decide(plugin, request, self.policy_set, log=log is True, prompt=log is True)
        if quiet and d.would_deny:
            self.enforcer._log(plugin, request, d)
        if d.allowed:
            self.cache[key] = d
        return d.allowed

    def refuse(self, plugin: str, r: Refuse):
        request = Request(r.action, plugin, name=r.resource if r.action in ("native.load", "env.read", "env.write") else "",
                          path=r.resource if r.action.startswith("fs.") and r.resource.startswith("/") else "")
        d = Decision(Verdict.DENY, DecidedBy.DEFAULT, self.policy_set.version, (), (r.why,))
        self.enforcer._log(plugin, request, d)
        raise PolicyViolation(plugin, request, d)


_PROTECTED: list = []


class Enforcer:
    """Decides requests of plugins against a PolicySet; guards in-process plugins."""

    __slots__ = ("_snap", "_audit_log", "_prompter", "_grants", "_mode", "_netmemory", "_extra_dirs",
                 "_code_roots", "_egress", "_lock", "__weakref__")
    # set once through object.__setattr__ (instances refuse attribute writes)
    _snap: Snapshot
    _audit_log: AuditSink | None
    _prompter: Prompter | None
    _grants: GrantLookup | None
    _mode: str
    _netmemory: NetMemory
    _extra_dirs: dict[str, str]
    _code_roots: Any
    _egress: tuple[str, int] | None
    _lock: threading.Lock

    def __init__(self, policy_set, *, audit_log: AuditSink | None = None, prompter: Prompter | None = None,
                 grants: GrantLookup | None = None, mode: str = "enforce",
                 plugin_dirs: dict[str, str] | None = None, egress: tuple[str, int] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode `{mode}` — use enforce or audit")
        s = object.__setattr__
        s(self, "_audit_log", audit_log)
        s(self, "_prompter", prompter)
        s(self, "_grants", grants)       # GrantStore for remembered answers, or None
        s(self, "_mode", mode)
        s(self, "_netmemory", NetMemory())
        s(self, "_extra_dirs", dict(plugin_dirs or {}))
        s(self, "_code_roots", _code_roots())
        # a sandboxed child's egress proxy (host, port): connects to it are decided by the
        # host's proxy, per target, not here
        s(self, "_egress", tuple(egress) if egress else None)
        s(self, "_lock", threading.Lock())
        s(self, "_snap", None)
        self._swap(policy_set)

    def __setattr__(self, name, value):
        raise AttributeError("Enforcer attributes are read-only; use use() to change the policy")

    # -- policy ---------------------------------------------------------------------------

    @property
    def policy_set(self):
        return self._snap.policy_set

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def audit_log(self):
        """The audit sink decisions are written to (None when not logging); host code only."""
        self._host_only("audit_log")
        return self._audit_log

    def use(self, policy_set) -> None:
        """Swap in a new PolicySet atomically; decisions already running finish on the old."""
        self._host_only("use")
        self._swap(policy_set)

    def register_plugin_dir(self, plugin_id: str, directory: str) -> None:
        """Attribute code under ``directory`` to ``plugin_id`` (besides the manifests' dirs)."""
        self._host_only("register_plugin_dir")
        with self._lock:
            self._extra_dirs[plugin_id] = directory
        self._swap(self._snap.policy_set)

    def _swap(self, policy_set) -> None:
        dirs = {}
        for pid, info in getattr(policy_set, "plugins", {}).items():
            if getattr(info, "directory", ""):
                dirs[os.path.realpath(info.directory).rstrip("/") + "/"] = pid
        for pid, d in self._extra_dirs.items():
            dirs[os.path.realpath(d).rstrip("/") + "/"] = pid
        ordered = tuple(sorted(dirs.items(), key=lambda kv: -len(kv[0])))
        snap = Snapshot(self, policy_set, ordered, self._code_roots)
        with self._lock:
            object.__setattr__(self, "_snap", snap)
            if _hook.BOX[0] is not None and _hook.BOX[0].enforcer is self:
                _hook.BOX[0] = snap

    # -- the hook -------------------------------------------------------------------------

    def install(self) -> Enforcer:
        """Make this enforcer the one the process-wide audit hook serves (idempotent)."""
        self._host_only("install")
        _hook.install_environ()
        if not _PROTECTED:
            _PROTECTED.extend(_protected_types())
        with self._lock:
            _hook.BOX[0] = self._snap
        _hook.install_hook()
        return self

    def uninstall(self) -> None:
        """Stop deciding (the hook stays, as CPython cannot remove it, but ignores events)."""
        self._host_only("uninstall")
        with self._lock:
            if _hook.BOX[0] is not None and _hook.BOX[0].enforcer is self:
                _hook.BOX[0] = None

    @property
    def installed(self) -> bool:
        return _hook.BOX[0] is not None and _hook.BOX[0].enforcer is self and _hook.installed()

    # -- the core's API -------------------------------------------------------------------

    def check(self, plugin_id: str, request: Request) -> Decision:
        """Decide ``request`` for ``plugin_id``; never raises. A path is resolved first, the
        way the audit hook resolves it (``canonical_request``)."""
        snap = self._snap
        if request.plugin != plugin_id:
            request = dataclasses.replace(request, plugin=plugin_id)
        with _hook.callout():
            request = canonical_request(request)
            return self._decide(plugin_id, request, snap.policy_set)

    def require(self, plugin_id: str, request: Request) -> Decision:
        """Like ``check`` but raises ``PolicyViolation`` unless allowed."""
        d = self.check(plugin_id, request)
        if not d.allowed:
            if request.plugin != plugin_id:
                request = dataclasses.replace(request, plugin=plugin_id)
            raise PolicyViolation(plugin_id, request, d)
        return d

    def ask(self, plugin_id: str, request: Request, decision: Decision) -> Decision:
        """Resolve an ASK taken elsewhere (a sandboxed child's enforcer) with this enforcer's
        prompter and grants: ALLOW or DENY (other verdicts come back unchanged); no prompter
        means deny; never raises. Nothing is logged here: the deciding side logs."""
        self._host_only("ask")
        if not isinstance(decision, Decision) or decision.verdict is not Verdict.ASK:
            return decision
        if request.plugin != plugin_id:
            request = dataclasses.replace(request, plugin=plugin_id)
        return self._ask(plugin_id, request, decision)

    def guard(self, plugin_id: str) -> Guard:
        """Run code as ``plugin_id``: a context manager, and a decorator (sync or async)."""
        if not isinstance(plugin_id, str) or not plugin_id:
            raise ValueError("plugin id must be a non-empty string")
        return Guard(plugin_id)

    def privileged(self, fn=None):
        """Trusted host code called by a plugin runs as the host (context or decorator)."""
        return privileged(fn)

    def current_plugin(self) -> str | None:
        """The plugin the calling code runs as, or None for the host."""
        return _hook.current_plugin(1)

    # -- internals ------------------------------------------------------------------------

    def _host_only(self, what: str) -> None:
        plugin = _hook.current_plugin(2)
        if plugin is not None:
            request = Request("plugin.load", plugin, name=what)
            d = Decision(Verdict.DENY, DecidedBy.DEFAULT, self._snap.policy_set.version, (),
                         (f"`Enforcer.{what}` may only be called by the host",))
            self._log(plugin, request, d)
            raise PolicyViolation(plugin, request, d)

    def _log_allows(self) -> bool:
        log = self._audit_log
        if log is None:
            return False
        try:
            return bool(log.settings.log_allows)
        except AttributeError:
            return True

    def _decide(self, plugin: str, request: Request, policy_set, *, log: bool = True,
                prompt: bool = True) -> Decision:
        try:
            d = policy_set.decide(request)
        except Exception as exc:  # fail closed
            d = Decision(Verdict.DENY, DecidedBy.DEFAULT, getattr(policy_set, "version", ""),
                         (), (f"policy evaluation failed: {exc}",))
        if d.verdict is Verdict.ASK:
            d = self._ask(plugin, request, d) if prompt else dataclasses.replace(d, verdict=Verdict.DENY)
        if self._mode == "audit" and not d.allowed and not any(r.layer == "builtin" for r in d.rules):
            d = dataclasses.replace(d, verdict=Verdict.ALLOW, decided_by=DecidedBy.MODE_AUDIT,
                                    would_deny=True)
        if log and (not d.allowed or d.would_deny or self._log_allows()
                    or d.decided_by in (DecidedBy.PROMPT_ONCE, DecidedBy.PROMPT_ALWAYS)):
            if not self._log(plugin, request, d) and d.allowed and d.would_deny:
                d = dataclasses.replace(d, verdict=Verdict.DENY, decided_by=DecidedBy.DEFAULT,
                                        would_deny=False,
                                        errors=d.errors + ("the audit log could not record it",))
        return d

    def _ask(self, plugin: str, request: Request, d: Decision) -> Decision:
        """An ASK becomes ALLOW or DENY: a remembered answer in the grants, else the prompter
        (``resolve_ask``); no prompter means deny."""
        prompter = self._prompter
        if prompter is None:
            return dataclasses.replace(d, verdict=Verdict.DENY,
                                       errors=d.errors + ("no prompter: ask means deny",))
        try:
            with _hook.callout():
                answer = resolve_ask(prompter, plugin, request, d, self._grants)
        except Exception as exc:
            return dataclasses.replace(d, verdict=Verdict.DENY, errors=d.errors + (f"prompt failed: {exc}",))
        if not isinstance(answer, Decision) or answer.verdict is Verdict.ASK:
            return dataclasses.replace(d, verdict=Verdict.DENY)
        return answer

    def _log(self, plugin: str, request: Request, d: Decision) -> bool:
        log = self._audit_log
        if log is None:
            return True
        info = self._snap.policy_set.plugins.get(plugin) if hasattr(self._snap.policy_set, "plugins") else None
        try:
            with _hook.callout():
                log.decision(plugin, getattr(info, "version", ""), request.action,
                             request.resource, d.to_dict(), request=request.to_dict())
            return True
        except Exception:
            return False


_PATH_ACTIONS = frozenset({"fs.read", "fs.write", "native.load"})


def canonical_request(request: Request) -> Request:
    """``request`` with its path resolved as the audit hook resolves it (symlinks followed
    before ``..``, by ``_paths.canonical_path``), the spellings it had kept as aliases."""
    if request.action not in _PATH_ACTIONS or not request.path:
        return request
    resolved, lexical = canonical_path(request.given_path)
    if resolved == request.path and lexical == request.path:
        return request
    aliases = request.aliases + tuple(p for p in (request.path, lexical) if p != resolved)
    return dataclasses.replace(request, path=resolved, aliases=aliases)


def _protected_types():
    import concurrent.futures
    import weakref

    from ._environ import GuardedEnviron
    out = [Enforcer, Snapshot, Guard, GuardedEnviron, Owners, NetMemory, threading.Thread,
           concurrent.futures.ThreadPoolExecutor, weakref.finalize, Request, Decision]
    out.extend(TRUSTED_PATH_TYPES)
    return out


class Guard:
    """``with enforcer.guard("p"):`` or ``@enforcer.guard("p")`` — code runs as plugin p."""

    __slots__ = ("plugin", "_tokens")

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self._tokens: list = []

    def __enter__(self) -> Guard:
        current = _hook.current_plugin(1)
        if current is not None and current != self.plugin:
            raise PermissionError(f"plugin `{current}` may not run code as plugin `{self.plugin}`")
        self._tokens.append(ACTIVE.set(self.plugin))
        return self

    def __exit__(self, *exc: object) -> None:
        ACTIVE.reset(self._tokens.pop())

    def __call__(self, fn):
        plugin = self.plugin
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def guarded_async(*args, **kwargs):
                with Guard(plugin):
                    return await fn(*args, **kwargs)
            return guarded_async

        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            with Guard(plugin):
                return fn(*args, **kwargs)
        return guarded


class _Privileged:
    __slots__ = ("_token",)

    def __enter__(self):
        snap = _hook.BOX[0]
        frame = _hook.own_frame(1)
        if snap is not None and _hook.owner_of_frame(snap, frame):
            raise PermissionError("plugin code may not enter privileged()")
        prev = ACTIVE.get()
        self._token = ACTIVE.set(mint(frame, prev if type(prev) is str else None))
        return self

    def __exit__(self, *exc: object) -> None:
        ACTIVE.reset(self._token)


def privileged(fn=None):
    """Trusted host code that a plugin calls runs with the host's rights — that code only:
    plugin code it calls back is attributed to its plugin again. Refused for plugin code."""
    if fn is None:
        return _Privileged()
    snap = _hook.BOX[0]
    code = getattr(fn, "__code__", None)
    if snap is not None and code is not None and snap.owners.owner(code):
        raise PermissionError("plugin code may not be made privileged")

    @functools.wraps(fn)
    def run_privileged(*args: Any, **kwargs: Any):
        with _Privileged():
            return fn(*args, **kwargs)
    return run_privileged
