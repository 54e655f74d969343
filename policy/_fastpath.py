"""A native tier for simple rules: CEL expressions of a small subset run as Python closures.

Most rules — every manifest grant and most admin rules — are ORs and ANDs of helper calls on
literal patterns, string comparisons and port checks. Evaluating them through a CEL runtime
costs a conversion of the request plus a few µs per program; as closures over the Request they
cost about what a hand-written checker costs (docs/design.md §6, §12).

``translate(source, plugin)`` returns a closure ``f(request) -> True | False | ERROR`` or None
when the expression uses anything outside the subset (then the CEL program runs). The subset
mirrors CEL semantics exactly, including errors: ``&&``/``||`` absorb errors the way CEL's
commutative logic does, and an out-of-range list index is an error, not False. Only used with
the cel-expr-python backend, so the differential test against cel-python checks this tier too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ._capabilities import HELPERS, matcher

ERROR = object()   # a CEL evaluation error inside the closure

STR_FIELDS = frozenset({"action", "plugin", "path", "host", "scheme", "url", "name", "tool"})
INT_FIELDS = frozenset({"port"})
LIST_FIELDS = frozenset({"argv"})

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<int>\d+)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|[!<>().,\[\]])
""", re.VERBOSE)
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r"}


class _Bail(Exception):
    """The expression is outside the subset."""


_NOLIT = object()


class Val:
    """A typed sub-expression: ``type`` is bool | str | int | list, ``get(request)`` its value
    (or ERROR), ``lit`` the constant when it is one, ``elem`` a list's element type."""

    __slots__ = ("type", "get", "lit", "elem", "field")

    def __init__(self, type: str, get, lit=_NOLIT, elem: str | None = None,
                 field: str | None = None) -> None:
        self.type, self.get, self.lit, self.elem, self.field = type, get, lit, elem, field

    @property
    def is_lit(self) -> bool:
        return self.lit is not _NOLIT


def _decode(lit: str) -> str:
    body, out, i = lit[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "uU":
            width = 4 if nxt == "u" else 8
            digits = body[i + 2:i + 2 + width]
            if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise _Bail
            code = int(digits, 16)
            if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                raise _Bail
            out.append(chr(code))
            i += 2 + width
        else:
            raise _Bail
    return "".join(out)


def _tokens(source: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise _Bail
        pos = m.end()
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group(kind)))
    return out


def _and(a, b):
    def f(r):
        x = a(r)
        if x is False:
            return False
        y = b(r)
        if y is False:
            return False
        return ERROR if x is ERROR or y is ERROR else True
    return f


def _or(a, b):
    def f(r):
        x = a(r)
        if x is True:
            return True
        y = b(r)
        if y is True:
            return True
        return ERROR if x is ERROR or y is ERROR else False
    return f


def _not(a):
    def f(r):
        x = a(r)
        return ERROR if x is ERROR else not x
    return f


class _Parser:
    def __init__(self, tokens, plugin: dict) -> None:
        self.t = tokens
        self.i = 0
        self.plugin = plugin

    def peek(self, value=None):
        if self.i >= len(self.t):
            return None
        tok = self.t[self.i]
        return tok if value is None or tok[1] == value else None

    def take(self, value=None):
        tok = self.peek(value)
        if tok is None:
            raise _Bail
        self.i += 1
        return tok

    def parse(self):
        v = self.or_()
        if self.i != len(self.t) or v.type != "bool":
            raise _Bail
        return v.get

    def or_(self):
        v = self.and_()
        while self.peek("||"):
            self.take()
            w = self.and_()
            if v.type != "bool" or w.type != "bool":
                raise _Bail
            v = Val("bool", _or(v.get, w.get))
        return v

    def and_(self):
        v = self.unary()
        while self.peek("&&"):
            self.take()
            w = self.unary()
            if v.type != "bool" or w.type != "bool":
                raise _Bail
            v = Val("bool", _and(v.get, w.get))
        return v

    def unary(self):
        if self.peek("!"):
            self.take()
            v = self.unary()
            if v.type != "bool":
                raise _Bail
            return Val("bool", _not(v.get))
        return self.relation()

    def relation(self):
        left = self.primary()
        tok = self.peek()
        if tok and tok[1] in ("==", "!=", "<", "<=", ">", ">="):
            op = self.take()[1]
            right = self.primary()
            return Val("bool", _compare(op, left, right))
        if tok and tok[1] == "in":
            self.take()
            right = self.primary()
            return Val("bool", _member(left, right))
        return left

    def primary(self):
        kind, text = self.take()
        if text == "(":
            v = self.or_()
            self.take(")")
            return v
        if kind == "str":
            value = _decode(text)
            return Val("str", lambda r, v=value: v, value)
        if kind == "int":
            value = int(text)
            if value >= 1 << 63:
                raise _Bail
            return Val("int", lambda r, v=value: v, value)
        if text in ("true", "false"):
            value = text == "true"
            return Val("bool", lambda r, v=value: v, value)
        if text == "[":
            items = []
            while not self.peek("]"):
                item = self.primary()
                if not item.is_lit or item.type not in ("str", "int"):
                    raise _Bail     # only lists of literal strings or ints
                items.append(item)
                if not self.peek(","):
                    break
                self.take(",")
            self.take("]")
            types = {it.type for it in items}
            if len(types) > 1:
                raise _Bail
            values = [it.lit for it in items]
            return Val("list", lambda r, v=values: v, values, types.pop() if types else None)
        if kind != "id":
            raise _Bail
        if text == "request":
            return self.request_field()
        if text == "plugin":
            return self.plugin_value()
        if text == "size":
            self.take("(")
            arg = self.primary()
            self.take(")")
            if arg.type not in ("str", "list"):
                raise _Bail
            return Val("int", lambda r, g=arg.get: _size(g(r)))
        if text in HELPERS:
            return self.helper(text)
        raise _Bail

    def request_field(self):
        self.take(".")
        kind, name = self.take()
        if kind != "id":
            raise _Bail
        if name in STR_FIELDS:
            typ, get = "str", (lambda r, n=name: getattr(r, n))
        elif name in INT_FIELDS:
            return Val("int", lambda r, n=name: getattr(r, n))
        elif name in LIST_FIELDS:
            if self.peek("["):
                self.take("[")
                kind, idx = self.take()
                if kind != "int":
                    raise _Bail
                self.take("]")
                index = int(idx)
                get = lambda r, n=name, i=index: _index(getattr(r, n), i)  # noqa: E731
                typ = "str"
            else:
                return Val("list", lambda r, n=name: getattr(r, n), elem="str")
        else:
            raise _Bail
        if typ == "str" and self.peek("."):
            self.take(".")
            kind, method = self.take()
            if method not in ("startsWith", "endsWith", "contains"):
                raise _Bail
            self.take("(")
            arg = self.primary()
            self.take(")")
            if not arg.is_lit or arg.type != "str":
                raise _Bail
            fn = {"startsWith": str.startswith, "endsWith": str.endswith,
                  "contains": lambda s, x: x in s}[method]
            return Val("bool", lambda r, g=get, f=fn, v=arg.lit: _method(f, g(r), v))
        return Val(typ, get, field=name if typ == "str" and name in STR_FIELDS else None)

    def plugin_value(self):
        value: Any = self.plugin
        while self.peek("."):
            self.take(".")
            kind, name = self.take()
            if kind != "id" or not isinstance(value, dict) or name not in value:
                raise _Bail
            value = value[name]
        if isinstance(value, bool):
            return Val("bool", lambda r, v=value: v, value)
        if isinstance(value, str):
            return Val("str", lambda r, v=value: v, value)
        if isinstance(value, int):
            return Val("int", lambda r, v=value: v, value)
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            return Val("list", lambda r, v=tuple(value): v, list(value), "str")
        raise _Bail

    def helper(self, name):
        self.take("(")
        arg = self.primary()
        self.take(",")
        pattern = self.primary()
        self.take(")")
        if arg.type != "str" or not pattern.is_lit or pattern.type != "str":
            raise _Bail
        fn = matcher(name, pattern.lit)
        if arg.field is not None:   # a plain string field is never an error: call directly
            return Val("bool", lambda r, f=fn, n=arg.field: f(getattr(r, n)))
        return Val("bool", lambda r, f=fn, g=arg.get: _call(f, g(r)))


def _call(fn, value):
    if value is ERROR:
        return ERROR
    return bool(fn(value))


def _method(fn, value, arg):
    return ERROR if value is ERROR else fn(value, arg)


def _size(value):
    return ERROR if value is ERROR else len(value)


def _index(values, i):
    return values[i] if 0 <= i < len(values) else ERROR


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _compare(op, left: Val, right: Val):
    lt = left.type
    if lt != right.type or lt not in ("str", "int", "bool", "list"):
        raise _Bail
    if lt == "list":
        if op not in ("==", "!=") or (left.elem and right.elem and left.elem != right.elem):
            raise _Bail
    elif op not in ("==", "!=") and lt != "int":
        raise _Bail
    f, a, b = _OPS[op], left.get, right.get

    def cmp(r):
        x, y = a(r), b(r)
        if x is ERROR or y is ERROR:
            return ERROR
        if lt == "list":
            return f(list(x), list(y))
        return f(x, y)
    return cmp


def _member(left: Val, right: Val):
    if right.type != "list" or right.elem != left.type or left.type not in ("str", "int"):
        raise _Bail
    a, b = left.get, right.get

    def member(r):
        x = a(r)
        return ERROR if x is ERROR else x in b(r)
    return member


def translate(source: str, plugin: dict) -> Callable[[Any], Any] | None:
    """A closure deciding ``source`` for requests of the plugin described by ``plugin``
    (its CEL `plugin` value), or None when ``source`` is outside the subset."""
    try:
        return _Parser(_tokens(source), plugin).parse()
    except (_Bail, IndexError, RecursionError):
        return None
