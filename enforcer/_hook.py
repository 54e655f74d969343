"""The process-wide audit hook, hand-off wrappers and the guarded environment.

One hook per process (CPython cannot remove audit hooks). It serves the snapshot in
``BOX[0]`` — the frozen state of the installed ``Enforcer`` (policy set, plugin
directories, caches) — and exits after one dict lookup for events it does not map, and
after a context-variable read for mapped events in host code when no plugin directory is
registered.

Recursion: while the hook works on a thread, ``BUSY[thread]`` says what it is doing.
Nested events raised then are refused, except the frame reads of its own attribution walk
(``WALK``) and its own call-outs to the audit log and the prompter (``CALLOUT``).
"""

from __future__ import annotations

import _thread
import atexit
import concurrent.futures
import contextvars
import functools
import gc
import os
import queue
import sys
import threading
import weakref
from typing import Any

from ._attribution import _GRAVE, _MEMO, ACTIVE, FORGED, forget_host_frames, is_minted, release_frames
from ._events import SQLITE_OPENING, TABLE, Refuse, guard_sqlite

try:  # the audit log is optional (and may not be importable in a partial checkout)
    from promptline.enforcer.audit import writing as _audit_writing
except ImportError:  # pragma: no cover
    def _audit_writing() -> bool:
        return False

PING_EVENT = "promptline.enforcer.ping"

WALK, DECIDE, CALLOUT = 1, 2, 3

BOX: list = [None]          # [snapshot]: what the hook decides against; swapped atomically
BUSY: dict[int, int] = {}   # thread id -> what the hook is doing on that thread
_installed: list = []       # [hook] once installed
_pings: list = [None]
_install_lock = threading.Lock()


_PROBES = _thread._local()
"""Per thread: ``.next``, the ``__next__`` of a generator that yields the frame of the code
its caller's caller runs (see ``_frame_probe``)."""


def _frame_probe():
    """Holds its own frame (read once through the audited ``gi_frame``); while it runs, that
    frame's ``f_back`` (not audited) is the hook, and the hook's ``f_back`` is the code that
    raised the event: the hook gets it without the nested ``sys._getframe`` event."""
    frame = yield
    while True:   # no local may keep a frame between calls: it would keep the raiser's locals
        yield None if frame.f_back is None else frame.f_back.f_back   # None: raised from C


def _caller_frame(getframe):
    """The frame that raised the event, for the hook (called with ``BUSY`` set to WALK)."""
    try:
        nxt = _PROBES.next
    except AttributeError:
        probe = _frame_probe()
        next(probe)
        probe.send(probe.gi_frame)
        nxt = _PROBES.next = probe.__next__
    try:
        f = nxt()   # the hook (this function's caller): one more step down
    except (ValueError, StopIteration):   # already running on this thread (a nested event)
        return getframe(2)
    return f.f_back


def _on_gc(phase, _info) -> None:
    """A collection starts: the host memo lets go of its frames (a returned frame's locals
    are collected as if the memo did not exist), freed now unless the hook is busy here."""
    if phase == "start":
        forget_host_frames()
        if _thread.get_ident() not in BUSY:
            release_frames()


gc.callbacks.append(_on_gc)


def _make_hook():
    box, busy, pings = BOX, BUSY, _pings
    get = TABLE.get
    active_get = ACTIVE.get
    ident = _thread.get_ident
    getframe = sys._getframe
    writing = _audit_writing
    str_ = str
    type_ = type
    minted = is_minted
    forged = FORGED
    refuse_type = Refuse
    probes = _PROBES
    memo = _MEMO
    grave, release = _GRAVE, release_frames

    def promptline_audit_hook(event, args):
        h = get(event)
        if h is None:
            if event == PING_EVENT:
                pings[0] = args[0]
            return
        if event == "object.__getattr__" or event == "sys._getframe":
            # the frame reads of the hook's own attribution walk: the commonest nested events
            if busy.get(ident()) == WALK:
                return
        snap = box[0]
        if snap is None:
            return
        who = active_get()
        if who is None:
            if not snap.provenance:
                return
            try:   # the memo's newest frame raised it again: the host's (Owners.walk_host)
                f = probes.next()
                owners, chain, _ = memo[0].state
                if owners is snap.owners and chain and chain[-1] is f:
                    return
            except (AttributeError, ValueError, StopIteration):
                pass
        tid = ident()
        state = busy.get(tid)
        if state is not None:
            if state == WALK and (event == "sys._getframe" or event == "object.__getattr__"):
                return
            if state == CALLOUT or writing():
                return
            raise PermissionError(f"`{event}` refused: raised while the enforcer's audit hook was running")
        busy[tid] = WALK
        try:
            if who is None:
                plugin = snap.owners.walk_host(_caller_frame(getframe))
            elif type_(who) is str_:
                plugin = who
            elif minted(who):
                plugin = snap.owners.walk(getframe(1), who.frame)
            else:
                plugin = forged   # an object the enforcer did not make: refuse everything
            if plugin is None:
                return
            if writing():
                return
            try:
                items = h(plugin, args, snap)  # type: ignore[operator]
            except PermissionError:
                raise
            except refuse_type as r:
                busy[tid] = DECIDE
                snap.refuse(plugin, r)
                return
            except Exception as exc:  # fail closed: a handler that cannot read its event refuses it
                busy[tid] = DECIDE
                snap.refuse(plugin, Refuse("native.load", event, f"event arguments not understood ({exc!r})"))
                return
            if items:
                busy[tid] = DECIDE
                enforce = snap.enforce
                for action, fields in items:
                    enforce(plugin, action, fields)
        finally:
            del busy[tid]
            if grave:
                release()   # frames the host memo let go of: their finalizers may audit

    return promptline_audit_hook


def install_hook() -> None:
    """Add the audit hook once per process and check that it sees events."""
    with _install_lock:
        if not _installed:
            hook = _make_hook()
            sys.addaudithook(hook)
            _installed.append(hook)
            _install_handoffs()
            _install_dns_memory()
            _install_unaudited()
    token = object()
    sys.audit(PING_EVENT, token)
    if _pings[0] is not token:
        raise RuntimeError("the enforcer's audit hook is not active after install")


def installed() -> bool:
    return bool(_installed)


def current_plugin(depth: int = 1) -> str | None:
    """The plugin the code ``depth`` frames above the caller runs as (contextvar, else
    frame provenance)."""
    snap = BOX[0]
    who = ACTIVE.get()
    if type(who) is str:
        return who
    if who is not None and not is_minted(who):
        return FORGED
    if snap is None or (who is None and not snap.provenance):
        return None
    tid = _thread.get_ident()
    mine = tid not in BUSY
    if mine:
        BUSY[tid] = WALK
    try:
        f = sys._getframe(depth + 1)
        if who is None:
            return snap.owners.walk_host(f)
        return snap.owners.walk(f, who.frame)
    finally:
        if mine:
            del BUSY[tid]
            if _GRAVE:
                release_frames()


class callout:
    """Context for the enforcer's own work outside the hook logic (log, prompt)."""

    __slots__ = ("tid", "prev")

    def __enter__(self):
        self.tid = _thread.get_ident()
        self.prev = BUSY.get(self.tid)
        BUSY[self.tid] = CALLOUT
        return self

    def __exit__(self, *exc):
        if self.prev is None:
            BUSY.pop(self.tid, None)
        else:
            BUSY[self.tid] = self.prev
        return False


# -- hand-offs: work a plugin gives to threads, executors and callbacks keeps its plugin ----

def _as(plugin: str, fn):
    ctx = contextvars.copy_context()
    ctx.run(ACTIVE.set, plugin)

    def run_as_plugin(*args, **kwargs):
        return ctx.copy().run(fn, *args, **kwargs)
    return run_as_plugin


class _Sealed:
    """A pool work item with the plugin (or None: the host) that queued it."""

    __slots__ = ("_item", "_plugin")

    def __init__(self, item, plugin: str | None) -> None:
        self._item, self._plugin = item, plugin

    @property
    def future(self):
        return self._item.future

    def run(self):
        if self._plugin is None:
            return self._item.run()
        ctx = contextvars.copy_context()
        ctx.run(ACTIVE.set, self._plugin)
        return ctx.run(self._item.run)


class _Dropped:
    """What a worker gets for an item that bypassed ``GuardedQueue.put``: nothing runs."""

    __slots__ = ()

    class future:   # noqa: N801 - what shutdown() touches on a queued item
        @staticmethod
        def cancel():
            return False

        @staticmethod
        def set_exception(exc):
            return None

    def run(self):
        return None


_DROPPED = _Dropped()
_sq_put, _sq_get, _sq_get_nowait = queue.SimpleQueue.put, queue.SimpleQueue.get, \
    queue.SimpleQueue.get_nowait


class GuardedQueue(queue.SimpleQueue):
    """A thread pool's work queue: items are sealed with who put them (see ``_Sealed``)."""

    __slots__ = ()

    def put(self, item, block=True, timeout=None):
        if item is not None and type(item) is not _Sealed:
            item = _Sealed(item, current_plugin(1))
        return _sq_put(self, item, block, timeout)

    def put_nowait(self, item):
        return self.put(item, False)

    @staticmethod
    def _checked(item):
        if item is None or type(item) is _Sealed:
            return item
        return _DROPPED

    def get(self, block=True, timeout=None):
        return self._checked(_sq_get(self, block, timeout))

    def get_nowait(self):
        return self._checked(_sq_get_nowait(self))


_thread_bootstrap = threading.Thread._bootstrap  # type: ignore[attr-defined]
_pool = threading.local()


def is_thread_bootstrap(fn) -> bool:
    return type(fn) is type(threading.Thread.start.__get__(threading.main_thread())) and \
        getattr(fn, "__func__", None) is _thread_bootstrap


def _install_handoffs() -> None:
    orig_start = threading.Thread.start

    @functools.wraps(orig_start)
    def start(self):
        plugin = None if getattr(_pool, "submitting", False) else current_plugin(1)
        if plugin is not None:
            self.run = _as(plugin, self.run)
        return orig_start(self)
    threading.Thread.start = start  # type: ignore[method-assign]

    orig_submit = concurrent.futures.ThreadPoolExecutor.submit

    @functools.wraps(orig_submit)  # type: ignore[arg-type]
    def submit(self, fn, /, *args, **kwargs):
        plugin = current_plugin(1)
        if plugin is None:
            return orig_submit(self, fn, *args, **kwargs)
        # the task carries the plugin; a worker thread started now belongs to the pool
        _pool.submitting = True
        try:
            return orig_submit(self, _as(plugin, fn), *args, **kwargs)
        finally:
            _pool.submitting = False
    concurrent.futures.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]

    # Work reaching a pool some other way (`submit.__wrapped__`, a `_WorkItem` put straight on
    # `_work_queue`) is sealed with the plugin that put it there; a worker only runs items
    # that went through that door. An initializer a plugin passes runs as the plugin.
    orig_pool_init = concurrent.futures.ThreadPoolExecutor.__init__

    @functools.wraps(orig_pool_init)
    def pool_init(self, *args, **kwargs):
        plugin = current_plugin(1)
        if plugin is not None:
            names = ("max_workers", "thread_name_prefix", "initializer", "initargs")
            bound = dict(zip(names, args))
            bound.update(kwargs)
            if bound.get("initializer") is not None:
                bound["initializer"] = _as(plugin, bound["initializer"])
            args, kwargs = (), bound
        orig_pool_init(self, *args, **kwargs)
        self._work_queue = GuardedQueue()
    concurrent.futures.ThreadPoolExecutor.__init__ = pool_init  # type: ignore[method-assign]
    wrapped: tuple[Any, ...] = (start, submit, pool_init)
    for fn in wrapped:
        del fn.__wrapped__   # functools.wraps exposed the unwrapped original

    orig_register = atexit.register

    @functools.wraps(orig_register)  # type: ignore[arg-type]
    def register(fn, /, *args, **kwargs):
        plugin = current_plugin(1)
        if plugin is not None:
            wrapped = _as(plugin, fn)
            orig_register(wrapped, *args, **kwargs)
            return fn
        return orig_register(fn, *args, **kwargs)
    atexit.register = register

    orig_finalize_init = weakref.finalize.__init__

    @functools.wraps(orig_finalize_init)
    def finalize_init(self, obj, func, /, *args, **kwargs):
        plugin = current_plugin(1)
        if plugin is not None:
            func = _as(plugin, func)
        return orig_finalize_init(self, obj, func, *args, **kwargs)
    weakref.finalize.__init__ = finalize_init  # type: ignore[method-assign]

    import signal as _signal_mod
    orig_signal = _signal_mod.signal

    @functools.wraps(orig_signal)
    def signal(signalnum, handler):
        plugin = current_plugin(1)
        if plugin is not None:
            snap = BOX[0]
            snap.refuse(plugin, Refuse("native.load", "signal.signal",
                                       "installing signal handlers is refused in plugin context"))
        return orig_signal(signalnum, handler)
    _signal_mod.signal = signal


# -- the guarded environment ---------------------------------------------------------------

_real_environ: list = []


def install_environ() -> None:
    from ._environ import GuardedEnviron, guarded_environ
    if isinstance(os.environ, GuardedEnviron):
        return
    real, realb = os.environ, getattr(os, "environb", None)

    def check(name: str, log: bool) -> bool:
        plugin = current_plugin(1)
        if plugin is None:
            return True
        snap = BOX[0]
        return snap.may(plugin, "env.read", (("name", name),), log)

    def who():
        return current_plugin(1)

    _real_environ.append(real)
    os.environ = guarded_environ(real, check, who)  # noqa: B003 - the guarded mapping replaces it on purpose
    if realb is not None:
        os.environb = guarded_environ(realb, check, who, is_bytes=True)
    try:
        import posix
        posix.environ = guarded_environ(posix.environ, check, who, is_bytes=True)
    except ImportError:  # pragma: no cover - not POSIX
        pass


def _install_dns_memory() -> None:
    """Remember what a plugin resolved, so a connect to the address is judged by the name."""
    import socket

    orig_gai, orig_ghbn = socket.getaddrinfo, socket.gethostbyname

    @functools.wraps(orig_gai)
    def getaddrinfo(host, *args, **kwargs):
        result = orig_gai(host, *args, **kwargs)
        if type(host) in (str, bytes) and host:
            plugin = current_plugin(1)
            if plugin is not None:
                name = host.decode("idna") if type(host) is bytes else host
                BOX[0].netmemory.remember(plugin, name, [ai[4][0] for ai in result])
        return result

    @functools.wraps(orig_ghbn)
    def gethostbyname(host):
        result = orig_ghbn(host)
        if type(host) is str and host:
            plugin = current_plugin(1)
            if plugin is not None:
                BOX[0].netmemory.remember(plugin, host, [result])
        return result

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname


def _install_unaudited() -> None:
    """Doors CPython raises no audit event for: wrappers raise the enforcer's own event
    first (decided like any other, see ``_events``), then call the original. Code holding
    the original C function (``posix.mkfifo`` saved before install) is not covered."""
    import posix
    import signal as _signal_mod
    _audit = sys.audit

    def wrap(module, name, event, args_of):
        orig = getattr(module, name, None)
        if orig is None or getattr(orig, "__promptline__", False):
            return

        def wrapper(*args, **kwargs):
            _audit(event, *args_of(*args, **kwargs))
            return orig(*args, **kwargs)
        wrapper.__name__ = wrapper.__qualname__ = name
        wrapper.__doc__ = orig.__doc__
        setattr(wrapper, "__promptline__", True)  # noqa: B010 - mark as ours
        setattr(module, name, wrapper)

    def path_args(path, *rest, dir_fd=None, **kw):
        return (path, dir_fd)

    def pidfd_args(pidfd, sig, *rest, **kw):
        return (pidfd, sig)

    def trace_args(func, *rest, **kw):
        return (func,)

    for module in (os, posix):
        wrap(module, "mkfifo", "promptline.os.mkfifo", path_args)
        wrap(module, "mknod", "promptline.os.mknod", path_args)
    wrap(_signal_mod, "pidfd_send_signal", "promptline.signal.pidfd_send_signal", pidfd_args)
    for name in ("settrace", "setprofile", "settrace_all_threads", "setprofile_all_threads"):
        wrap(threading, name, "promptline.threading.settrace", trace_args)
    _install_socket_guard()
    _install_sqlite_guard()


def _install_socket_guard() -> None:
    """``socket.socket.connect``/``connect_ex`` decide before the C code resolves a name (its
    own ``socket.connect`` event comes after the DNS query); ``listen`` on an unbound socket
    (which binds a port) is decided as a bind."""
    import socket
    _audit = sys.audit
    cls = socket.socket

    def guard(name, event):
        orig = getattr(cls, name)
        if getattr(orig, "__promptline__", False):
            return

        def method(self, *args):
            _audit(event, self, *args)
            return orig(self, *args)
        method.__name__ = method.__qualname__ = name
        method.__doc__ = orig.__doc__
        setattr(method, "__promptline__", True)  # noqa: B010
        setattr(cls, name, method)

    guard("connect", "promptline.socket.connect")
    guard("connect_ex", "promptline.socket.connect")
    guard("listen", "promptline.socket.listen")


def _install_sqlite_guard() -> None:
    """``sqlite3.connect`` in plugin context returns a connection whose ``ATTACH`` statements
    are decided (``_events.guard_sqlite``)."""
    try:
        import sqlite3
        import sqlite3.dbapi2
    except ImportError:  # pragma: no cover
        return
    orig = sqlite3.connect
    if getattr(orig, "__promptline__", False):
        return
    opening = SQLITE_OPENING

    def connect(*args, **kwargs):
        plugin = current_plugin(1)
        if plugin is None:
            return orig(*args, **kwargs)
        tid = _thread.get_ident()
        opening.add(tid)
        try:
            conn = orig(*args, **kwargs)
        finally:
            opening.discard(tid)
        guard_sqlite(plugin, conn, lambda: BOX[0])
        return conn
    connect.__name__ = connect.__qualname__ = "connect"
    connect.__doc__ = orig.__doc__
    setattr(connect, "__promptline__", True)  # noqa: B010
    sqlite3.connect = sqlite3.dbapi2.connect = connect


def own_frame(depth: int = 1):
    """``sys._getframe`` for the enforcer's own use (its event is not decided)."""
    tid = _thread.get_ident()
    mine = tid not in BUSY
    if mine:
        BUSY[tid] = WALK
    try:
        return sys._getframe(depth + 1)
    finally:
        if mine:
            del BUSY[tid]


def owner_of_frame(snap, frame) -> str:
    """The plugin owning ``frame``'s code ('' for the host), read without a decision."""
    tid = _thread.get_ident()
    mine = tid not in BUSY
    if mine:
        BUSY[tid] = WALK
    try:
        return snap.owners.owner(frame.f_code)
    finally:
        if mine:
            del BUSY[tid]
