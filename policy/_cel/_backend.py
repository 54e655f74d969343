"""The backend interface, backend selection, and safe CEL string literals."""

from __future__ import annotations

import importlib.util
import threading
from typing import Any, Protocol, runtime_checkable

BACKEND_NAMES = ("cel-expr-python", "cel-python")
"""Every backend, fastest first; ``get_backend()`` picks the first one installed."""

_MODULES = {"cel-expr-python": "cel_expr_python", "cel-python": "celpy"}


@runtime_checkable
class CelProgram(Protocol):
    """A compiled CEL expression."""

    source: str

    def evaluate(self, activation: dict) -> object:
        """Evaluate against ``{"request": ..., "plugin": ...}`` (or a ``prepare``d
        activation); return a plain Python value or raise ``CelEvalError`` — a CEL error value
        is raised, never returned. Programs compiled with ``expect_bool`` raise on non-bool."""
        ...


@runtime_checkable
class CelBackend(Protocol):
    """One CEL implementation; ``compile`` raises ``CelCompileError`` with a 1-based
    line/column within the source."""

    name: str

    def compile(self, source: str, *, expect_bool: bool = False,
                prechecked: bool = False) -> CelProgram:
        """``prechecked``: the text was assembled by the engine from expressions that each
        passed every check (skips the static checks, not the compiler)."""
        ...

    def prepare(self, activation: dict) -> Any: ...


_backends: dict[str, CelBackend] = {}
_lock = threading.Lock()


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(_MODULES[name]) is not None
    except (ImportError, ValueError):
        return False


def available_backends() -> list[str]:
    """Names of the installed backends, fastest first."""
    return [name for name in BACKEND_NAMES if _installed(name)]


def get_backend(name: str | None = None) -> CelBackend:
    """The backend called ``name``; ``None``/``"auto"`` picks cel-expr-python when installed,
    else cel-python. Backends are created once and shared."""
    if name in (None, "auto"):
        found = available_backends()
        if not found:
            raise RuntimeError("no CEL backend is installed — install `cel-python`")
        name = found[0]
    if name not in _MODULES:
        raise ValueError(f"unknown CEL backend `{name}` — use one of {', '.join(BACKEND_NAMES)}")
    backend = _backends.get(name)
    if backend is not None:
        return backend
    with _lock:
        backend = _backends.get(name)
        if backend is None:
            if name == "cel-expr-python":
                from ._cel_expr import CelExprBackend
                backend = CelExprBackend()
            else:
                from ._celpy import CelPythonBackend
                backend = CelPythonBackend()
            _backends[name] = backend
    return backend


def cel_string(value: str) -> str:
    """A double-quoted CEL string literal denoting exactly ``value``.

    Only printable ASCII is written as itself (except ``"`` and ``\\``, which are escaped);
    everything else — control characters, NUL, newlines, bidi marks, look-alikes — becomes a
    ``\\uXXXX`` or ``\\UXXXXXXXX`` escape, so the literal is one line of plain ASCII that
    cannot end early. Lone surrogates are not valid in CEL strings: ``ValueError``.
    """
    if not isinstance(value, str):
        raise TypeError(f"cel_string() needs a str, got {type(value).__name__}")
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"lone surrogate U+{code:04X} cannot be written as a CEL string")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
