"""The guarded environment: ``os.environ`` / ``os.environb`` as plugins see them.

CPython does not audit reading the environment, so ``install()`` replaces ``os.environ``
and ``os.environb`` (and ``posix.environ``, the startup copy) with mappings that ask the
enforcer: host code sees everything as before; a plugin sees only variables it may read.
A denied variable looks unset (``KeyError``, ``os.getenv`` returns the default) and the
refusal is logged (reading a variable that is not set at all is not a decision); iteration lists granted variables only. Writes go through unchanged:
``os.putenv``/``os.unsetenv`` raise audit events the hook decides as ``env.write``.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping

UNSET = "unset"
"""``check``'s ``log`` for a variable that is not set: decide, log only audit-mode records."""


class GuardedEnviron(MutableMapping):
    """Base type of the guarded environments built by :func:`guarded_environ`."""

    __slots__ = ()


def guarded_environ(real, check: Callable[[str, bool], bool],
                    plugin_of_caller: Callable[[], str | None], is_bytes: bool = False):
    """A guarded view of ``real`` (an ``os._Environ``).

    ``check(name, log)`` answers for the calling code: True when it may read ``name``
    (always True for host code); ``log`` is True, False or :data:`UNSET`. The wrapped mapping lives in this closure, not in an
    attribute of the returned object.
    """

    def name_of(key) -> str | None:
        if type(key) is str and not is_bytes:
            return key
        if type(key) is bytes and is_bytes:
            return key.decode("utf-8", "surrogateescape")
        return None

    def may(key, log: bool = True) -> bool:
        name = name_of(key)
        if name is None:
            return plugin_of_caller() is None
        return check(name, log)

    def allowed(key) -> bool:
        if name_of(key) is not None and key not in real:
            # a variable nobody set reveals nothing: its refusal is not logged (the stdlib
            # probes many: SSLKEYLOGFILE, *_proxy, NO_COLOR...); audit mode still records it
            return may(key, UNSET)  # type: ignore[arg-type]
        return may(key)

    class Guarded(GuardedEnviron):
        __slots__ = ()

        def __setattr__(self, name, value):
            raise AttributeError("the guarded environment has no settable attributes")

        def __getitem__(self, key):
            if not allowed(key):
                raise KeyError(key)
            return real[key]

        def __contains__(self, key) -> bool:
            return may(key, False) and key in real

        def get(self, key, default=None):
            if not allowed(key):
                return default
            return real.get(key, default)

        def __iter__(self):
            if plugin_of_caller() is None:
                yield from list(real)
                return
            for key in list(real):
                if may(key, False):
                    yield key

        def __len__(self) -> int:
            if plugin_of_caller() is None:
                return len(real)
            return sum(1 for _ in self)

        def __setitem__(self, key, value) -> None:
            real[key] = value

        def __delitem__(self, key) -> None:
            if not may(key, False):
                raise KeyError(key)
            del real[key]

        def copy(self) -> dict:
            return dict(self.items())

        def __repr__(self) -> str:
            return f"environ({self.copy()!r})"

        def __or__(self, other):
            return dict(self) | dict(other)

        def __ror__(self, other):
            return dict(other) | dict(self)

        def __ior__(self, other):
            self.update(other)
            return self

        def __getattr__(self, name):
            # os._Environ internals (_data, encodekey, ...) stay reachable for the host only
            if name.startswith("__") or plugin_of_caller() is not None:
                raise AttributeError(name)
            return getattr(real, name)

    return Guarded()
