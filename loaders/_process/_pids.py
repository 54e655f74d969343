"""A pids cgroup of its own for each child a root host starts: its process count.

The kernel exempts a real uid of 0 from ``RLIMIT_NPROC``, so a root host's child used to get
an unprivileged real uid of its own — which made ``access(2)`` (checked with the real uid)
refuse the child's own granted work dir while ``open(2)`` (the effective uid) allowed it:
``git init`` failed there. A pids cgroup counts the same tasks (threads included) of that
child and its descendants, whatever their uids, so the child keeps real uid = effective uid
and ``access(2)`` agrees with ``open(2)`` and Landlock.

The host makes ``<its own pids cgroup>/promptline-<host pid>/<n>`` with ``pids.max`` set
(:func:`create`); the shim writes ``0`` to its ``cgroup.procs`` before it drops its
capabilities, so every later fork is counted. The child cannot leave the group or raise
``pids.max``: that takes a write into the cgroup filesystem, which Landlock refuses (a child
whose write grants cover the cgroup filesystem does not get a group: :func:`usable_for`).
Where no pids controller is writable the caller keeps the unprivileged real uid.

Standard library only.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
from collections.abc import Iterable

PROCS = "cgroup.procs"
_lock = threading.Lock()
_counter = itertools.count(1)
_parent: list[str | None] = []      # probed once per host process: this host's parent group, or None
_owner = [0]
_leftover: list[str] = []           # released groups not yet empty (retried at each create and at exit)


def _own_pids_dir() -> str | None:
    """This process's own cgroup directory in a hierarchy with the pids controller."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            mounts = [line.split() for line in fh]
        with open("/proc/self/cgroup", encoding="utf-8") as fh:
            groups = [line.rstrip("\n").split(":", 2) for line in fh]
    except OSError:
        return None
    for fields in mounts:
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        root, point = fields[3], fields[4]
        if fstype == "cgroup" and "pids" in options:
            own = next((g[2] for g in groups if "pids" in g[1].split(",")), None)
        elif fstype == "cgroup2":
            own = next((g[2] for g in groups if g[0] == "0"), None)
        else:
            continue
        if own is None:
            continue
        rel = own[len(root):] if root != "/" and own.startswith(root) else own
        path = os.path.normpath(point + "/" + rel.lstrip("/"))
        if fstype == "cgroup2" and "pids" not in _read(os.path.join(path, "cgroup.controllers")).split():
            continue
        if os.path.isdir(path):
            return path
    return None


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return ""


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _make_parent() -> str | None:
    own = _own_pids_dir()
    if own is None:
        return None
    parent = os.path.join(own, f"promptline-{os.getpid()}")
    try:
        os.makedirs(parent, exist_ok=True)
        if os.path.exists(os.path.join(own, "cgroup.subtree_control")):   # cgroup v2: delegate pids
            _write(os.path.join(own, "cgroup.subtree_control"), "+pids")
            _write(os.path.join(parent, "cgroup.subtree_control"), "+pids")
    except OSError:
        try:
            os.rmdir(parent)
        except OSError:
            pass
        return None
    atexit.register(_remove_all, parent, os.getpid())
    return parent


def mount_points() -> tuple[str, ...]:
    """Where cgroup filesystems are mounted (a write grant under one of them gets no group)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            mounts = [line.split() for line in fh]
    except OSError:
        return ("/sys/fs/cgroup",)
    return tuple(f[4] for f in mounts if f[f.index("-") + 1] in ("cgroup", "cgroup2"))


def usable_for(write_paths: Iterable[str]) -> bool:
    """False when a path the child may write is a cgroup filesystem or holds one: Landlock
    would then let it write ``cgroup.procs`` or ``pids.max`` (leave its group, raise the limit)."""
    points = mount_points()
    for w in write_paths:
        w = os.path.realpath(w).rstrip("/") or "/"
        for m in points:
            if m == w or m.startswith(w.rstrip("/") + "/") or w.startswith(m + "/"):
                return False
    return True


class PidsGroup:
    """One child's pids cgroup: ``procs`` is the file its shim writes ``0`` to."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.procs = os.path.join(path, PROCS)

    def release(self, wait: float = 1.0) -> None:
        """Remove the group once its last task is gone (the rest later, at exit at the latest)."""
        deadline = time.monotonic() + wait
        while not _try_rmdir(self.path):
            if time.monotonic() > deadline:
                with _lock:
                    _leftover.append(self.path)
                return
            time.sleep(0.01)


def create(limit: int) -> PidsGroup | None:
    """A new pids cgroup allowing ``limit`` tasks, or None when this host cannot make one."""
    with _lock:
        if _owner[0] != os.getpid():   # a forked host makes groups of its own
            _owner[0] = os.getpid()
            _parent[:] = []
            _leftover.clear()
        if not _parent:
            _parent.append(_make_parent())
        parent = _parent[0]
        _leftover[:] = [p for p in _leftover if not _try_rmdir(p)]
    if parent is None:
        return None
    path = os.path.join(parent, str(next(_counter)))
    try:
        os.mkdir(path, 0o755)
    except OSError:
        return None
    try:
        _write(os.path.join(path, "pids.max"), str(int(limit)))
    except OSError:
        _try_rmdir(path)
        return None
    return PidsGroup(path)


def _try_rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _remove_all(parent: str, owner: int) -> None:
    if owner != os.getpid():   # an inherited handler in a forked process: not its groups
        return
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        if name.isdigit():
            _try_rmdir(os.path.join(parent, name))
    _try_rmdir(parent)
