"""Path arguments of audit events, read without running plugin code, and resolved.

The hook reads only arguments of exact trusted types: ``str``, ``bytes``, ``int`` (a file
descriptor) and the stdlib's own ``pathlib`` classes. Anything else (a plugin's own
``os.PathLike``, a ``str`` subclass) is refused in plugin context: converting it would run
plugin code inside the hook.

Symlinks are resolved with ``policy.private_realpath``, a copy of ``posixpath.realpath``
whose ``os`` and ``stat`` names are bound at import, so patching ``os.readlink``,
``os.lstat`` or ``stat.S_ISLNK`` later does not change what the enforcer sees.
"""

from __future__ import annotations

import os
import pathlib
import stat as _stat_mod

from promptline.policy import private_realpath

TRUSTED_PATH_TYPES = frozenset(
    getattr(pathlib, n) for n in ("PurePath", "PurePosixPath", "PureWindowsPath", "Path",
                                  "PosixPath", "WindowsPath") if hasattr(pathlib, n))

_fsdecode = os.fsdecode
_normpath = os.path.normpath
_abspath = os.path.abspath
_str = str
_readlink = os.readlink
_getcwd = os.getcwd
_pathlib_fspath = {t: t.__fspath__ for t in TRUSTED_PATH_TYPES}


class UntrustedArgument(Exception):
    """An event argument the hook will not convert (its conversion could run plugin code)."""


def path_arg(value) -> str | int | None:
    """``str`` for a path, ``int`` for a file descriptor, None for None."""
    t = type(value)
    if t is str:
        return value
    if t is bytes:
        return _fsdecode(value)
    if t is int:
        return value
    if value is None:
        return None
    if t in TRUSTED_PATH_TYPES:
        s = _pathlib_fspath[t](value)
        if type(s) is _str:
            return s
    raise UntrustedArgument(f"argument of type `{t.__name__}`")


realpath = private_realpath   # one realpath for check(), the hook and Request (policy._canon)

_stat, _lstat, _islnk = os.stat, os.lstat, _stat_mod.S_ISLNK
MAX_DIR_CACHE = 65_536  # resolved directories remembered (validated by inode on every use)
_dir_cache: dict[str, tuple[str, int, int]] = {}


def resolve(p: str) -> str:
    """``realpath(p)`` in two syscalls for the common case (see :func:`resolve_identity`)."""
    return resolve_identity(p)[0]


def resolve_identity(p: str) -> tuple[str, tuple[int, int] | None]:
    """``(realpath(p), (st_dev, st_ino) of the file or None)``, in two syscalls for the
    common case; the identity is None when it was not learnt on the way (a symlink, a
    path taking the full resolution, a file that does not exist).

    The directory's resolution is cached and re-validated on each use: ``stat(dir)`` and
    ``stat(cached resolution)`` must both still land on the inode the cached resolution had
    (a component swapped for a symlink elsewhere, or the directory renamed and a symlink
    repointed at it, changes one of them; when the directory resolves to itself the two are
    one ``stat``); the last component is ``lstat``-ed and resolved in full when it is a
    symlink. ``.``/``..`` components and relative paths take the full path.
    """
    if not p.startswith("/") or "/." in p or "//" in p:
        return realpath(p), None
    d, _, name = p.rpartition("/")
    if not name or not d:
        return realpath(p), None
    try:
        st = _stat(d)
    except OSError:
        return realpath(p), None
    hit = _dir_cache.get(d)
    if hit is not None and hit[0] != d:
        # the directory may have been renamed (same inode) and a symlink on the way repointed:
        # the cached resolution must still lead to that same inode
        try:
            st_hit = _stat(hit[0])
        except OSError:
            hit = None
        else:
            if st_hit.st_ino != st.st_ino or st_hit.st_dev != st.st_dev:
                hit = None
    if hit is None or hit[1] != st.st_ino or hit[2] != st.st_dev:
        rd = realpath(d)
        try:
            st2 = _stat(rd)
        except OSError:
            return realpath(p), None
        if st2.st_ino != st.st_ino or st2.st_dev != st.st_dev:
            return realpath(p), None  # changing under us: no caching
        if len(_dir_cache) >= MAX_DIR_CACHE:
            _dir_cache.clear()
        hit = (rd, st.st_ino, st.st_dev)
        _dir_cache[d] = hit
    try:
        lst = _lstat(p)
    except OSError:
        lst = None  # does not exist (yet): nothing to follow
    if lst is not None and _islnk(lst.st_mode):
        return realpath(p), None
    rp = hit[0] + "/" + name if hit[0] != "/" else "/" + name
    return rp, (None if lst is None else (lst.st_dev, lst.st_ino))


def canonical_path(p: str) -> tuple[str, str]:
    """``(resolved, lexical)`` spellings of an absolute or relative path: ``resolved``
    follows symlinks in POSIX order (before ``..``), ``lexical`` only folds ``.``/``..``.
    The one resolution ``Enforcer.check()`` and the audit hook share (docs/design.md §5a)."""
    lexical = _normpath(p) if p.startswith("/") else _abspath(p)
    return resolve(p), lexical


def lexical_alias(raw, resolved: str) -> tuple[str, ...]:
    """The lexical spelling of the str path argument ``raw`` when it differs from
    ``resolved`` (a deny matches if either spelling does)."""
    if type(raw) is not str:
        try:
            raw = path_arg(raw)
        except UntrustedArgument:
            return ()
    if type(raw) is not str or not raw:
        return ()
    lexical = _normpath(raw) if raw.startswith("/") else _abspath(raw)
    return () if lexical == resolved else (lexical,)


def identity(p: str):
    """(st_dev, st_ino) of what ``p`` leads to now, or None."""
    try:
        st = _stat(p)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def fd_path(fd: int) -> str:
    """What an open file descriptor refers to (``/proc/self/fd``), e.g. ``pipe:[123]``."""
    try:
        return _readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""
