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

TEMPLATES = 4096
"""Parse trees kept by *shape*: the source with every plain string literal emptied. Rules of
one shape (``within(request.path, "...")`` in every manifest, thousands of org rules written
alike) are parsed once; each gets a copy of the shape's tree with its own literal tokens."""

_templates: dict[str, tuple] = {}   # shape -> (tree, STRING_LIT token paths)


class _Shaped(_Tree):
    """The root of a tree built from a shape: tokens after a literal carry the shape's
    positions, so an error found in it is reported from an exact parse (``parse_exact``).
    ``template`` is the shape's text, ``longest`` the length of its longest literal (quotes
    included): the static check remembers its verdict per shape (see ``_static``)."""

    __slots__ = ("template", "longest")
    template: str
    longest: int


def is_shaped(tree: lark.Tree) -> bool:
    return type(tree) is _Shaped


def shape_of(tree: lark.Tree) -> tuple[str, int] | None:
    """(shape text, longest literal's length) of a tree built from a shape, else None."""
    return (tree.template, tree.longest) if type(tree) is _Shaped else None


def parse(source: str) -> lark.Tree:
    """Parse ``source`` with celpy's grammar; syntax errors become ``CelCompileError``.
    The same text parsed again soon after gets the same tree (errors are not kept); a text
    of a shape seen before gets the shape's tree with its literals (see ``TEMPLATES``)."""
    tree = _trees.get(source)
    if tree is None:
        tree = _from_shape(source)
        if tree is None:
            tree = _parse(source)
        _remember(_trees, RECENT_TREES, source, tree)
    return tree


def parse_exact(source: str) -> lark.Tree:
    """Parse ``source`` itself (never from a shape): exact positions for error messages, and
    the tree the reference backend evaluates."""
    return _parse(source)


def _remember(cache: dict, size: int, key: str, tree: Any) -> None:
    if len(cache) >= size:
        try:
            del cache[next(iter(cache))]
        except (KeyError, StopIteration, RuntimeError):   # another thread got there first
            pass
    cache[key] = tree


def shape(source: str) -> tuple[str, list[str]] | None:
    """``source`` with each string literal emptied, and the literals in order; None when the
    text has anything that would make this split differ from the lexer's (escapes, raw or
    bytes prefixes, triple quotes, comments, newlines inside a literal, no literal at all)."""
    out: list[str] = []
    literals: list[str] = []
    i, n, start = 0, len(source), 0
    while i < n:
        c = source[i]
        if c == "\\":
            return None
        if c == "/" and source.startswith("//", i):
            return None   # a comment: quotes inside it are not literals
        if c == '"' or c == "'":
            if i and (source[i - 1].isalnum() or source[i - 1] == "_"):
                return None   # r"..", b"..", or a quote glued to a name
            j = i + 1
            while j < n and source[j] != c:
                if source[j] == "\\" or source[j] == "\n":
                    return None
                j += 1
            if j >= n or (j == i + 1 and j + 1 < n and source[j + 1] == c):
                return None   # unterminated, or a triple quote
            out.append(source[start:i] + c + c)
            literals.append(source[i:j + 1])
            i = start = j + 1
            continue
        i += 1
    if not literals:
        return None
    out.append(source[start:])
    return "".join(out), literals


def _from_shape(source: str) -> lark.Tree | None:
    split = shape(source)
    if split is None:
        return None
    text, literals = split
    entry = _templates.get(text)
    if entry is None:
        try:
            tree = _parse(text)
        except CelCompileError:
            return None   # the exact parse reports it, at its own position
        paths = _token_paths(tree)
        entry = (tree, paths, _plan([(path, n) for n, (path, _) in enumerate(paths)]))
        _remember(_templates, TEMPLATES, text, entry)
    tree, paths, plan = entry
    if len(paths) != len(literals):
        return None
    tokens = [lark.Token.new_borrow_pos("STRING_LIT", value, token)
              for (_, token), value in zip(paths, literals)]
    out = _copy(tree, plan, tokens, _Shaped)
    out.template = text
    out.longest = max(map(len, literals))
    return out


def _token_paths(tree: lark.Tree) -> list[tuple[tuple[int, ...], lark.Token]]:
    """(child indices from the root, token) of every STRING_LIT token, in text order."""
    out = []
    stack: list[tuple[Any, tuple[int, ...]]] = [(tree, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, lark.Token):
            if node.type == "STRING_LIT":
                out.append((path, node))
        else:
            stack.extend((c, path + (i,)) for i, c in enumerate(node.children))
    out.sort(key=lambda item: item[1].start_pos or 0)
    return out


def _plan(paths: list[tuple[tuple[int, ...], int]]) -> tuple:
    """How to copy a template for its literals, from (child indices, literal number) pairs:
    ((child index, the literal's number or the plan of that child), ...)."""
    groups: dict[int, list] = {}
    for path, n in paths:
        groups.setdefault(path[0], []).append((path[1:], n))
    out = []
    for i, sub in groups.items():
        if len(sub) == 1 and not sub[0][0]:
            out.append((i, sub[0][1]))
        else:
            out.append((i, _plan(sub)))
    return tuple(out)


def _copy(node: Any, plan: tuple, tokens: list, cls: type | None = None) -> Any:
    """A copy of ``node`` with the literal tokens ``plan`` places; only the nodes on those
    paths are copied, the rest is shared (trees are never mutated)."""
    children = node.children.copy()
    for i, sub in plan:
        children[i] = tokens[sub] if type(sub) is int else _copy(children[i], sub, tokens)
    out: Any = object.__new__(cls or _Tree)
    out.data = node.data
    out.children = children
    out._meta = node._meta
    return out


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

# celpy's own escape table and pattern (celpy.evaluation.CEL_ESCAPES[_PAT]), copied so that
# decoding a literal does not import celpy's evaluator (pendulum, dateutil: ~25 ms at load).
# `.` without DOTALL skips newlines in cooked literals, as celpy's does.
_ESCAPES_PAT = re.compile(
    "\\\\[abfnrtv\"'\\\\]|\\\\\\d{3}|\\\\x[0-9a-fA-F]{2}|\\\\u[0-9a-fA-F]{4}|\\\\U[0-9a-fA-F]{8}|."
)
_ESCAPES = {"\\a": "\a", "\\b": "\b", "\\f": "\f", "\\n": "\n", "\\r": "\r", "\\t": "\t",
            "\\v": "\v", '\\"': '"', "\\'": "'", "\\\\": "\\"}


def decode_string(token: Any) -> str:
    """The value of a CEL string literal token, exactly as cel-python decodes it
    (``celpy.evaluation.celstr``, ported line for line; the test compares the two)."""
    text = str(token)
    if _PLAIN.fullmatch(text):
        return text[1:-1]
    if text[:1] in ("R", "r"):
        if text[1:4] == '"""' or text[1:4] == "'''":
            return text[4:-3]
        return text[2:-1]
    body = text[3:-3] if text[0:3] == '"""' or text[0:3] == "'''" else text[1:-1]
    out = []
    for match in (m.group() for m in _ESCAPES_PAT.finditer(body)):
        if len(match) == 1:
            out.append(match)
        elif match[:2] == r"\x" or match[:2] in {r"\u", r"\U"}:
            out.append(chr(int(match[2:], 16)))
        elif match[:1] == "\\" and len(match) == 4:
            out.append(chr(int(match[1:], 8)))
        else:
            out.append(_ESCAPES.get(match, match))
    return "".join(out)
