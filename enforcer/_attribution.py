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
"""

from __future__ import annotations

import contextvars
import sys
import weakref

ACTIVE: contextvars.ContextVar = contextvars.ContextVar("promptline_plugin", default=None)
"""The plugin id (str) running in this context, a ``Privileged`` marker, or None (host)."""

_identity_hash = object.__hash__  # address-based; no audit event (unlike id())

MAX_OWNER_CACHE = 200_000  # code objects remembered per snapshot before the cache is reset


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


def current(owners: Owners, frame) -> str | None:
    """The plugin the code at ``frame`` runs as, or None for the host."""
    who = ACTIVE.get()
    if who is None:
        return owners.walk(frame)
    if type(who) is str:
        return who
    if not is_minted(who):
        return FORGED
    return owners.walk(frame, who.frame)


def caller_frame(depth: int = 2):
    return sys._getframe(depth)
