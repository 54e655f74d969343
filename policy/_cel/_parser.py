"""The one CEL parser every load-time check shares: celpy's grammar (``cel.lark``) run by
lark directly, so parsing does not import celpy's evaluator (which pulls pendulum, dateutil
and, through it, ctypes into every process that compiles a policy — sandboxed children too).
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Any

import lark
from lark.exceptions import LarkError, UnexpectedInput

from .._errors import CelCompileError


@functools.cache
def _parser() -> lark.Lark:
    spec = importlib.util.find_spec("celpy")   # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise CelCompileError("the CEL grammar (package cel-python) is not installed",
                              fix="pip install cel-python")
    grammar = (Path(next(iter(spec.submodule_search_locations))) / "cel.lark").read_text(encoding="utf-8")
    return lark.Lark(grammar, parser="lalr", start="expr", g_regex_flags=re.M,
                     lexer_callbacks={"IDENT": _ambiguous_literals}, propagate_positions=True,
                     maybe_placeholders=False, priority="invert", tree_class=_Tree)


class _Tree(lark.Tree):
    """A parse tree whose ``data`` is a plain ``str`` (lark passes a Token): every walk compares
    it, and Token's Python-level ``__eq__`` made that a fifth of the static check's time."""

    __slots__ = ()

    def __init__(self, data: str, children: list, meta: Any = None) -> None:
        super().__init__(str.__str__(data), children, meta)


def _ambiguous_literals(t: lark.Token) -> lark.Token:
    """As celpy's parser does: `true` and `false` are literals, not identifiers."""
    return lark.Token("BOOL_LIT", t.value) if t.value in ("true", "false") else t


RECENT_TREES = 64
"""Parse trees kept by source text, newest last: the static check and the native tier, which
run one after the other when a rule is compiled, share one parse. Trees are never mutated."""

_trees: dict[str, lark.Tree] = {}
parses = 0   # times the lark parser ran (benchmarks report it)


def parse(source: str) -> lark.Tree:
    """Parse ``source`` with celpy's grammar; syntax errors become ``CelCompileError``.
    The same text parsed again soon after gets the same tree (errors are not kept)."""
    tree = _trees.get(source)
    if tree is None:
        tree = _parse(source)
        if len(_trees) >= RECENT_TREES:
            try:
                del _trees[next(iter(_trees))]
            except (KeyError, StopIteration, RuntimeError):   # another thread got there first
                pass
        _trees[source] = tree
    return tree


def _parse(source: str) -> lark.Tree:
    global parses
    parses += 1
    try:
        return _parser().parse(source)
    except UnexpectedInput as exc:
        line, column = getattr(exc, "line", None), getattr(exc, "column", None)
        line, column = (line if isinstance(line, int) and line > 0 else None,
                        column if isinstance(column, int) and column > 0 else None)
        raise CelCompileError("syntax error" + _near(source, line, column), line=line, column=column,
                              fix="check brackets, quotes and operators") from None
    except (LarkError, ValueError) as exc:  # pragma: no cover - defensive
        raise CelCompileError(f"syntax error: {str(exc).splitlines()[0]}", line=1, column=1,
                              fix="check brackets, quotes and operators") from None


def _near(source: str, line: int | None, column: int | None) -> str:
    if not line or not column:
        return ""
    lines = source.splitlines() or [""]
    if line > len(lines):
        return " at end of expression"
    rest = lines[line - 1][column - 1:column + 19]
    return f" near `{rest}`" if rest else " at end of line"


_PLAIN = re.compile(r'"[^"\\\n]*"|\'[^\'\\\n]*\'')


def decode_string(token: Any) -> str:
    """The value of a CEL string literal token, exactly as cel-python decodes it. Plain
    literals (no escapes, no prefix, one quote) are read directly; the rest go to celpy."""
    text = str(token)
    if _PLAIN.fullmatch(text):
        return text[1:-1]
    from celpy.evaluation import celstr
    return str(celstr(token))
