"""Who is running: the plugin a guarded call is attributed to.

Two sources, checked in order:

1. a context variable set by ``Enforcer.guard()`` around every plugin entry point (the fast
   path; asyncio tasks, ``asyncio.to_thread`` and ``loop.call_soon`` copy it), and by the
   hand-off wrappers below for threads, executors, ``atexit`` and ``weakref.finalize``;
2. frame provenance: a frame whose code lives in a plugin's directory (or whose code object
   the plugin created with ``exec``/``compile``) belongs to that plugin. This finds plugin
   code that the host runs later without a guard: ``__del__``, generators and iterators
   resumed by the host, callbacks, dunder methods of objects a plugin returned.

``privileged()`` marks trusted host code called by a plugin: frames from its entry point
upwards count as the host's, unless plugin code shows up above it again.

In host context the frame walk is memoised per thread (:meth:`Owners.walk_host`): a
regular (non-generator) frame found host-owned with everything below it stays so while it
is on the stack — its callers cannot change while it runs — so the next walk stops at the
first such frame it meets, without reading ``f_code`` (an audited attribute) again. The
memo holds the frames, so a returned frame's locals live on until the next walk on its
thread or the next garbage collection (the enforcer's ``gc.callbacks`` entry forgets every
memo), the way objects in reference cycles do. Frames the memo lets go of are released only
where the hook is not running on the releasing thread (``_GRAVE``, see ``release_frames``):
their locals' finalizers may raise audit events of their own.
"""

from __future__ import annotations

import _thread
import contextvars
import sys
import weakref

ACTIVE: contextvars.ContextVar = contextvars.ContextVar("promptline_plugin", default=None)
"""The plugin id (str) running in this context, a ``Privileged`` marker, or None (host)."""

_identity_hash = object.__hash__  # address-based; no audit event (unlike id())

MAX_OWNER_CACHE = 200_000  # code objects remembered per snapshot before the cache is reset
MAX_HOST_CHAIN = 4_096     # host frames remembered per thread (deeper ones are walked)

# code that can be suspended and resumed under another caller: its frame is never memoised
SUSPENDABLE = 0x20 | 0x80 | 0x100 | 0x200  # CO_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR


FORGED = "<forged attribution>"
"""What code runs as when the context variable holds an object the enforcer did not create
(a forged ``privileged()`` marker): a plugin id no manifest can have, so every guarded call
is refused and logged."""


class Privileged:
    """The context value inside ``privileged()``: host code entered at ``frame``. Only
    markers made by :func:`mint` are honoured."""

    __slots__ = ("frame", "plugin", "__weakref__")

    def __init__(self, frame, plugin: str | None) -> None:
        self.frame = frame
        self.plugin = plugin


_MINTED: dict[int, weakref.ref] = {}   # object.__hash__(marker) -> weak reference to it


def mint(frame, plugin: str | None) -> Privileged:
    """A ``Privileged`` marker the hook will honour (registered by identity while alive)."""
    marker = Privileged(frame, plugin)
    key = _identity_hash(marker)
    def forget(_ref: weakref.ref, k: int = key) -> None:
        _MINTED.pop(k, None)
    _MINTED[key] = weakref.ref(marker, forget)
    return marker


def is_minted(value) -> bool:
    """True for a live marker made by :func:`mint`; reads no attribute of ``value``."""
    ref = _MINTED.get(_identity_hash(value))
    return ref is not None and ref() is value


_MEMO = [_thread._local()]
"""Per thread: ``.state = (owners, chain, index)``: the ``Owners`` it is for, host frames
(outermost first) and frame -> position in chain."""

_GRAVE: list = []
"""What the memo let go of, kept until :func:`release_frames` (freeing a frame runs its
locals' finalizers, which must not run while the hook is busy on their thread)."""


def forget_host_frames() -> None:
    """Drop every thread's memo of host frames (released by :func:`release_frames`)."""
    _GRAVE.append(_MEMO[0])
    _MEMO[0] = _thread._local()


def release_frames() -> None:
    """Free what the memo let go of; call only where the hook is not busy on this thread."""
    _GRAVE.clear()


class Owners:
    """Maps code objects to the plugin that owns them (filename under a plugin directory,
    or registered when the plugin executed it).

    The per-code cache is keyed by identity: ``object.__hash__`` (the address-based hash;
    ``id()`` raises an audit event of its own), with the code object kept in the entry so
    the address cannot be reused while the entry lives, and checked with ``is``. Hashing a
    code object by content re-hashes its constants and nested code objects on every lookup
    (microseconds for a large function), and content equality ignores ``co_filename``: a
    plugin file's function byte-identical to a host function (same name, line, bytecode)
    would share the host's cached entry. Registered code (``exec``) is still matched by
    content: a plugin that executes a byte-identical copy of a host function gets that
    host code attributed to itself, a way to be refused more, never less."""

    __slots__ = ("dirs", "_by_code", "_registered")

    def __init__(self, dirs: tuple[tuple[str, str], ...]) -> None:
        self.dirs = dirs  # ((directory + "/", plugin id), ...), longest first
        self._by_code: dict[int, tuple[object, str]] = {}  # object.__hash__(code) -> (code, owner)
        self._registered: dict[object, str] = {}

    def owner_of_file(self, filename: str) -> str:
        if type(filename) is not str:
            return ""
        for d, pid in self.dirs:
            if filename.startswith(d):
                return pid
        return ""

    def register(self, code, plugin: str) -> None:
        """Code the plugin executed (exec/compile, sourceless .pyc): its and its children's."""
        stack = [code]
        while stack:
            c = stack.pop()
            self._registered[c] = plugin
            stack.extend(k for k in c.co_consts if type(k) is type(code))
        # cached entries of code equal to a registered one (host code included) are stale
        self._by_code.clear()
        forget_host_frames()

    def owner(self, code) -> str:
        key = _identity_hash(code)
        hit = self._by_code.get(key)
        if hit is not None and hit[0] is code:
            return hit[1]
        o = self._registered.get(code)
        if o is None:
            o = self.owner_of_file(code.co_filename)
        if len(self._by_code) >= MAX_OWNER_CACHE:
            self._by_code.clear()
        self._by_code[key] = (code, o)
        return o

    def walk(self, frame, stop=None) -> str | None:
        """The plugin owning the most recent plugin frame from ``frame`` down to ``stop``."""
        if not self.dirs and not self._registered:
            return None
        get = self._by_code.get
        owner = self.owner
        f = frame
        while f is not None and f is not stop:
            code = f.f_code
            hit = get(_identity_hash(code))
            if hit is not None and hit[0] is code:
                o = hit[1]
            else:
                o = owner(code)
            if o:
                return o
            f = f.f_back
        return None

    def walk_host(self, frame) -> str | None:
        """``walk(frame)`` for host context, memoised per thread.

        Frames are walked from ``frame`` down until a frame remembered from an earlier walk
        on this thread: it is on the stack now (reached through ``f_back`` from the running
        frame), and a regular frame's callers stay the same while it runs, so it and all
        below it are still the host's. Frames above it in the memo have returned: dropped.
        Generator and coroutine frames are walked every time (resumed elsewhere, their
        callers change). A host result remembers the frames just walked."""
        if frame is None or (not self.dirs and not self._registered):
            return None   # no Python frame: no plugin code either
        memo = _MEMO[0]
        try:
            owners, chain, index = memo.state
        except AttributeError:
            owners = None
        if owners is not self:
            if owners is not None:
                _GRAVE.append(memo.state)
            chain, index = [], {}
            memo.state = (self, chain, index)
        at = index.get(frame, -1)   # frames hash and compare by identity
        if at >= 0 and at + 1 == len(chain):
            return None   # the common case: the same frame as the last walk on this thread
        get = self._by_code.get
        seen = []
        f = frame
        while f is not None:
            at = index.get(f, -1)   # frames hash and compare by identity
            if at >= 0:
                break
            code = f.f_code
            hit = get(_identity_hash(code))
            o = hit[1] if hit is not None and hit[0] is code else self.owner(code)
            if o:
                return o
            seen.append((f, code.co_flags))
            f = f.f_back
        keep = at + 1
        if keep < len(chain):
            gone = chain[keep:]
            for g in gone:
                del index[g]
            del chain[keep:]
            _GRAVE.append(gone)
        for g, flags in reversed(seen):
            if not flags & SUSPENDABLE and len(chain) < MAX_HOST_CHAIN:
                index[g] = len(chain)
                chain.append(g)
        return None


def current(owners: Owners, frame) -> str | None:
    """The plugin the code at ``frame`` runs as, or None for the host."""
    who = ACTIVE.get()
    if who is None:
        return owners.walk_host(frame)
    if type(who) is str:
        return who
    if not is_minted(who):
        return FORGED
    return owners.walk(frame, who.frame)


def caller_frame(depth: int = 2):
    return sys._getframe(depth)
