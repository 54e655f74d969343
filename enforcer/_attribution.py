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

ACTIVE: contextvars.ContextVar = contextvars.ContextVar("promptline_plugin", default=None)
"""The plugin id (str) running in this context, a ``Privileged`` marker, or None (host)."""

MAX_OWNER_CACHE = 200_000  # code objects remembered per snapshot before the cache is reset


class Privileged:
    """The context value inside ``privileged()``: host code entered at ``frame``."""

    __slots__ = ("frame", "plugin")

    def __init__(self, frame, plugin: str | None) -> None:
        self.frame = frame
        self.plugin = plugin


class Owners:
    """Maps code objects to the plugin that owns them (filename under a plugin directory,
    or registered when the plugin executed it).

    Keyed by the code object itself: ``id()`` raises an audit event of its own. Code
    objects compare by content, so a plugin that executes a byte-identical copy of a host
    function (same file name, line, bytecode) gets that host code attributed to itself:
    a way to be refused more, never less."""

    __slots__ = ("dirs", "_by_code", "_registered")

    def __init__(self, dirs: tuple[tuple[str, str], ...]) -> None:
        self.dirs = dirs  # ((directory + "/", plugin id), ...), longest first
        self._by_code: dict[object, str] = {}
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
            self._by_code.pop(c, None)
            stack.extend(k for k in c.co_consts if type(k) is type(code))

    def owner(self, code) -> str:
        hit = self._by_code.get(code)
        if hit is None:
            hit = self._registered.get(code)
            if hit is None:
                hit = self.owner_of_file(code.co_filename)
            if len(self._by_code) >= MAX_OWNER_CACHE:
                self._by_code.clear()
            self._by_code[code] = hit
        return hit

    def walk(self, frame, stop=None) -> str | None:
        """The plugin owning the most recent plugin frame from ``frame`` down to ``stop``."""
        if not self.dirs and not self._registered:
            return None
        owner = self.owner
        f = frame
        while f is not None and f is not stop:
            o = owner(f.f_code)
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
    return owners.walk(frame, who.frame)


def caller_frame(depth: int = 2):
    return sys._getframe(depth)
