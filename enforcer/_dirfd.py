"""The directory fd of an ``os.open`` whose audit event does not carry it.

CPython's ``open`` event for ``os.open(name, flags, dir_fd=fd)`` reports ``(name, None,
flags)``: the dir_fd is invisible. The standard library opens relative names that way in
``shutil.rmtree`` and ``os.fwalk``. For those callers alone the fd is read from the caller's
own frame: the functions are found by code identity, and the local variable each passes as
``dir_fd=`` is read from their source once, at import (so it follows 3.11-3.13 alike). The
fd's value is then judged by what ``/proc/self/fd`` says it names, so a caller cannot lie
about the directory. Any other relative ``os.open`` stays refused.
"""

from __future__ import annotations

import ast
import os
import shutil
import sys

_CALLERS = (
    (shutil, "rmtree"), (shutil, "_rmtree_safe_fd"), (os, "fwalk"), (os, "_fwalk"),
)
_ENFORCER_DIR = os.path.dirname(os.path.abspath(__file__)) + "/"


def _dir_fd_names(fn, module) -> tuple[str, ...]:
    """Names of the variables passed as ``dir_fd=`` to ``open``/``os.open`` in ``fn``, read
    from its module's source file (``os`` is frozen: ``inspect`` cannot find its source)."""
    code = fn.__code__
    try:
        with open(module.__file__, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
    except (OSError, TypeError, AttributeError, SyntaxError, ValueError):
        return ()
    defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
            and n.name == fn.__name__ and n.lineno == code.co_firstlineno]
    if len(defs) != 1:
        return ()   # the file on disk is not the code that runs
    names: list[str] = []
    for node in ast.walk(defs[0]):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        called = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if called != "open":
            continue
        for kw in node.keywords:
            if kw.arg == "dir_fd" and isinstance(kw.value, ast.Name) and kw.value.id not in names:
                names.append(kw.value.id)
    return tuple(names)


def _table() -> dict:
    out = {}
    for module, name in _CALLERS:
        fn = getattr(module, name, None)
        code = getattr(fn, "__code__", None)
        if code is None:
            continue
        names = _dir_fd_names(fn, module)
        if len(names) == 1 and names[0] in code.co_varnames:
            out[id(code)] = (code, names[0])   # by identity: hashing a code object is slow
    return out


KNOWN = _table()
"""id(code) of a stdlib caller -> (code, the local variable it passes as ``dir_fd``)."""

_getframe = sys._getframe
_int = int


def caller_dir_fd() -> int | None:
    """The dir_fd the calling ``os.open`` used when its caller is a known stdlib function:
    the fd, or -1 when that caller passed none (the path is relative to the working
    directory); None for any other caller. Called by an event handler inside the hook."""
    f = _getframe(1)
    while f is not None:
        code = f.f_code
        filename = code.co_filename
        if not (type(filename) is str and filename.startswith(_ENFORCER_DIR)):
            break
        f = f.f_back  # type: ignore[assignment]
    if f is None:
        return None
    hit = KNOWN.get(id(code))
    if hit is None or hit[0] is not code:
        return None
    value = f.f_locals.get(hit[1])
    if value is None:
        return -1
    return value if type(value) is _int and value >= 0 else None
