"""The thread-local "inside the audit writer" flag.

Everything the writer does to files runs with the flag set, so the enforcer's audit hook can
let the writer's own ``open``/``rename``/``flock`` events pass undecided (and not recurse).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_tls = threading.local()


def writing() -> bool:
    """True while the current thread is inside the audit writer.

    The enforcer's audit hook checks this first and lets such events through undecided:
    they are the writer opening, locking, rotating or deleting its own files.
    """
    return getattr(_tls, "active", False)


@contextmanager
def own_writes() -> Iterator[None]:
    """Mark the calling thread as inside the writer for the ``with`` block."""
    old = getattr(_tls, "active", False)
    _tls.active = True
    try:
        yield
    finally:
        _tls.active = old


def mark_thread() -> None:
    """Mark the calling thread as the writer for the rest of its life."""
    _tls.active = True
