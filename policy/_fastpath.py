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

The closures are built from the one parse tree of ``_cel._parser`` (celpy's grammar), the tree
the static checker walked: the compiler calls ``prepare`` right after checking a rule, while
the parser still holds its tree, and the translation is kept by source text. A rule that does
not read ``plugin`` is translated once for every plugin it applies to; one that does keeps its
tree and is translated once per distinct value of what it reads (``plugin.trusted``...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from lark import Token, Tree

from ._capabilities import HELPERS, matcher
from ._cel._parser import decode_string, parse
from ._errors import CelCompileError

ERROR = object()   # a CEL evaluation error inside the closure

# Backends whose plans run simple rules as these closures. Not the reference backend: the
# differential test compares this tier against cel-python.
NATIVE_TIER_BACKENDS = frozenset({"cel-expr-python"})

STR_FIELDS = frozenset({"action", "plugin", "path", "host", "scheme", "url", "name", "tool"})
INT_FIELDS = frozenset({"port"})
LIST_FIELDS = frozenset({"argv"})

CACHE_SIZE = 65536   # translations kept by source text; the oldest goes first

# single-child links of the grammar's precedence chain (``expr -> conditionalor -> ...``)
_CHAIN = frozenset({"expr", "conditionalor", "conditionaland", "relation", "addition",
                    "multiplication", "unary", "member", "primary", "paren_expr"})
_RELATIONS = {"relation_eq": "==", "relation_ne": "!=", "relation_lt": "<",
              "relation_le": "<=", "relation_gt": ">", "relation_ge": ">="}
_METHODS: dict[str, Callable[[str, str], bool]] = {
    "startsWith": str.startswith, "endsWith": str.endswith, "contains": lambda s, x: x in s}


class _Bail(Exception):
    """The expression is outside the subset."""


class _NeedsPlugin(Exception):
    """Translated without a plugin, the expression turned out to read `plugin`."""


_NOLIT = object()


class Val:
    """A typed sub-expression: ``type`` is bool | str | int | list, ``get(request)`` its value
    (or ERROR), ``lit`` the constant when it is one, ``elem`` a list's element type."""

    __slots__ = ("type", "get", "lit", "elem", "field", "dnf")

    def __init__(self, type: str, get, lit=_NOLIT, elem: str | None = None,
                 field: str | None = None, dnf: list | None = None) -> None:
        self.type, self.get, self.lit, self.elem, self.field = type, get, lit, elem, field
        # a bool that is an OR of ANDs of error-free atoms (see _fused): the list of ANDs,
        # each a tuple of (kind, field, literal); None otherwise
        self.dnf = dnf

    @property
    def is_lit(self) -> bool:
        return self.lit is not _NOLIT


def _const(type: str, value, elem: str | None = None) -> Val:
    dnf = ([()] if value else []) if type == "bool" else None
    return Val(type, lambda r, v=value: v, value, elem, dnf=dnf)


MAX_ANDS = 64   # ANDs one rule may expand to (a && (b || c) is two); more stays per-rule


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


def _unwrap(node: Any) -> Any:
    while isinstance(node, Tree) and node.data in _CHAIN and len(node.children) == 1:
        node = node.children[0]
    return node


def _args(node: Tree, index: int) -> list[Any]:
    if len(node.children) > index:
        args = node.children[index]
        if isinstance(args, Tree) and args.data == "exprlist":
            return list(args.children)
    return []


def _ident(node: Any) -> str | None:
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == "ident":
        return str(node.children[0])
    return None


class _Translator:
    """Walks the parse tree into typed closures; raises ``_Bail`` outside the subset."""

    def __init__(self, plugin: dict | None) -> None:
        self.plugin = plugin

    def val(self, node: Any) -> Val:
        node = _unwrap(node)
        if not isinstance(node, Tree):
            raise _Bail
        method = getattr(self, "_" + node.data, None)
        if method is None:
            raise _Bail
        return method(node)

    def boolean(self, node: Any) -> Val:
        v = self.val(node)
        if v.type != "bool":
            raise _Bail
        return v

    # -- logic and relations

    def _expr(self, node: Tree) -> Val:
        raise _Bail   # `a ? b : c` (single-child exprs are unwrapped)

    def _conditionalor(self, node: Tree) -> Val:
        a, b = node.children
        x, y = self.boolean(a), self.boolean(b)
        dnf = x.dnf + y.dnf if x.dnf is not None and y.dnf is not None \
            and len(x.dnf) + len(y.dnf) <= MAX_ANDS else None
        return Val("bool", _or(x.get, y.get), dnf=dnf)

    def _conditionaland(self, node: Tree) -> Val:
        a, b = node.children
        x, y = self.boolean(a), self.boolean(b)
        dnf = [p + q for p in x.dnf for q in y.dnf] if x.dnf is not None and y.dnf is not None \
            and len(x.dnf) * len(y.dnf) <= MAX_ANDS else None
        return Val("bool", _and(x.get, y.get), dnf=dnf)

    def _unary(self, node: Tree) -> Val:
        op, operand = node.children
        if op.data != "unary_not":
            raise _Bail   # negation
        return Val("bool", _not(self.boolean(operand).get))

    def _relation(self, node: Tree) -> Val:
        op_node, right_node = node.children
        left, right = self.val(op_node.children[0]), self.val(right_node)
        if op_node.data == "relation_in":
            dnf = [(("in", left.field, tuple(right.lit)),)] \
                if left.field is not None and right.is_lit else None
            return Val("bool", _member(left, right), dnf=dnf)
        op = _RELATIONS[op_node.data]
        get = _compare(op, left, right)
        dnf = None
        if op == "==" and left.type in ("str", "int"):
            if left.field is not None and right.is_lit:
                dnf = [(("eq", left.field, right.lit),)]
            elif right.field is not None and left.is_lit:
                dnf = [(("eq", right.field, left.lit),)]
        return Val("bool", get, dnf=dnf)

    # -- values

    def _literal(self, node: Tree) -> Val:
        token = cast(Token, node.children[0])
        text = str(token)
        if token.type == "BOOL_LIT":
            return _const("bool", text == "true")
        if token.type == "INT_LIT":
            if not text.isdigit() or not text.isascii() or int(text) >= 1 << 63:
                raise _Bail   # negative and hex literals stay on CEL
            return _const("int", int(text))
        if token.type == "STRING_LIT" and text[0] in "\"'":   # no raw or triple quotes
            try:
                value = decode_string(token)
            except Exception:  # noqa: BLE001 - an escape celpy cannot decode: not in the subset
                raise _Bail from None
            if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
                raise _Bail
            return _const("str", value)
        raise _Bail

    def _list_lit(self, node: Tree) -> Val:
        items = [self.val(x) for x in _args(node, 0)]
        if any(not it.is_lit or it.type not in ("str", "int") for it in items):
            raise _Bail   # only lists of literal strings or ints
        types = {it.type for it in items}
        if len(types) > 1:
            raise _Bail
        return _const("list", [it.lit for it in items], types.pop() if types else None)

    def _member_dot(self, node: Tree) -> Val:
        target, name = node.children
        if _ident(target) == "request":
            name = str(name)
            if name in STR_FIELDS:
                return Val("str", lambda r, n=name: getattr(r, n), field=name)
            if name in INT_FIELDS:
                return Val("int", lambda r, n=name: getattr(r, n), field=name)
            if name in LIST_FIELDS:
                return Val("list", lambda r, n=name: getattr(r, n), elem="str")
            raise _Bail
        return self._plugin_value(node)

    def _plugin_value(self, node: Tree) -> Val:
        path: list[str] = []
        while isinstance(node, Tree) and node.data == "member_dot":
            path.append(str(node.children[1]))
            node = _unwrap(node.children[0])
        if _ident(node) != "plugin":
            raise _Bail
        if self.plugin is None:
            raise _NeedsPlugin
        value: Any = self.plugin
        for name in reversed(path):
            if not isinstance(value, dict) or name not in value:
                raise _Bail
            value = value[name]
        if isinstance(value, bool):
            return _const("bool", value)
        if isinstance(value, str):
            return _const("str", value)
        if isinstance(value, int):
            return _const("int", value)
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            return Val("list", lambda r, v=tuple(value): v, list(value), "str")
        raise _Bail

    def _member_index(self, node: Tree) -> Val:
        target, index = node.children
        target = _unwrap(target)
        if not (isinstance(target, Tree) and target.data == "member_dot"
                and _ident(target.children[0]) == "request" and target.children[1] in LIST_FIELDS):
            raise _Bail   # only `request.argv[N]`
        i = self.val(index)
        if i.type != "int" or not i.is_lit:
            raise _Bail
        name = str(target.children[1])
        return Val("str", lambda r, n=name, i=i.lit: _index(getattr(r, n), i))

    def _member_dot_arg(self, node: Tree) -> Val:
        target, name = node.children[0], str(node.children[1])
        args = _args(node, 2)
        if name not in _METHODS or len(args) != 1:
            raise _Bail
        receiver, arg = self.val(target), self.val(args[0])
        if receiver.type != "str" or not arg.is_lit or arg.type != "str":
            raise _Bail
        fn = _METHODS[name]
        return Val("bool", lambda r, g=receiver.get, f=fn, v=arg.lit: _method(f, g(r), v))

    def _ident_arg(self, node: Tree) -> Val:
        name = str(node.children[0])
        args = _args(node, 1)
        if name == "size" and len(args) == 1:
            arg = self.val(args[0])
            if arg.type not in ("str", "list"):
                raise _Bail
            return Val("int", lambda r, g=arg.get: _size(g(r)))
        if name in HELPERS and len(args) == 2:
            arg, pattern = self.val(args[0]), self.val(args[1])
            if arg.type != "str" or not pattern.is_lit or pattern.type != "str":
                raise _Bail
            fn = matcher(name, pattern.lit)
            if arg.field is not None:   # a plain string field is never an error: call directly
                return Val("bool", lambda r, f=fn, n=arg.field: f(getattr(r, n)),
                           dnf=[((name, arg.field, pattern.lit),)])
            return Val("bool", lambda r, f=fn, g=arg.get: _call(f, g(r)))
        raise _Bail


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


def translate_tree(tree: Tree, plugin: dict) -> Val | None:
    """The translation of a parse tree of ``_cel._parser`` for the plugin's CEL `plugin`
    value, or None when the expression is outside the subset."""
    try:
        return _Translator(plugin).boolean(tree)
    except (_Bail, RecursionError):
        return None


_MISSING = object()


def _plugin_paths(tree: Tree) -> tuple[tuple[str, ...], ...]:
    """Every ``plugin.a.b`` the expression reads as a value (not the prefixes of longer ones)."""
    paths: set[tuple[str, ...]] = set()
    stack: list[Any] = [tree]
    while stack:
        node = _unwrap(stack.pop())
        names: list[str] = []
        inner = node
        while isinstance(inner, Tree) and inner.data == "member_dot":
            names.append(str(inner.children[1]))
            inner = _unwrap(inner.children[0])
        if _ident(inner) == "plugin":
            paths.add(tuple(reversed(names)))
        elif isinstance(node, Tree):
            stack.extend(node.children)
    return tuple(sorted(paths))


def _freeze(value: Any) -> Any:
    """A hashable image of a `plugin` value that tells True from 1 and lists from strings."""
    if isinstance(value, dict):
        return ("map", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_freeze(v) for v in value))
    return (type(value).__name__, value)


class _PerPlugin:
    """An expression reading `plugin`: its tree, the values it reads, and one translation per
    distinct combination of those values (20 plugins mostly share a few)."""

    __slots__ = ("tree", "paths", "bound")

    MAX_BOUND = 256

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.paths = _plugin_paths(tree)
        self.bound: dict[tuple, Val | None] = {}

    def bind(self, plugin: dict) -> Val | None:
        key = []
        for path in self.paths:
            value: Any = plugin
            for name in path:
                value = value.get(name, _MISSING) if isinstance(value, dict) else _MISSING
            key.append(_MISSING if value is _MISSING else _freeze(value))
        k = tuple(key)
        try:
            return self.bound[k]
        except KeyError:
            pass
        fn = translate_tree(self.tree, plugin)
        if len(self.bound) >= self.MAX_BOUND:
            self.bound.clear()
        self.bound[k] = fn
        return fn


# source text -> Val (plugin-independent), None (outside the subset) or _PerPlugin
_cache: dict[str, Any] = {}


def _entry(source: str) -> Any:
    try:
        return _cache[source]
    except KeyError:
        pass
    try:
        tree = parse(source)     # the parser's tree of the static check, when just checked
    except (CelCompileError, RecursionError):
        entry: Any = None
    else:
        try:
            entry = _Translator(None).boolean(tree)
        except (_Bail, RecursionError):
            entry = None
        except _NeedsPlugin:
            entry = _PerPlugin(tree)
    if len(_cache) >= CACHE_SIZE:
        try:
            del _cache[next(iter(_cache))]
        except (KeyError, StopIteration, RuntimeError):   # another thread got there first
            pass
    _cache[source] = entry
    return entry


def prepare(source: str) -> None:
    """Translate ``source`` now (the compiler calls it right after the static check)."""
    _entry(source)


def translatable(source: str) -> bool:
    """Whether the native tier decides ``source`` (for some plugins at least)."""
    return _entry(source) is not None


def translate(source: str, plugin: dict) -> Callable[[Any], Any] | None:
    """A closure deciding ``source`` for requests of the plugin described by ``plugin``
    (its CEL `plugin` value), or None when ``source`` is outside the subset."""
    val = translate_val(source, plugin)
    return None if val is None else val.get


def translate_val(source: str, plugin: dict) -> Val | None:
    """:func:`translate` with its structure: ``.get`` is the closure, ``.dnf`` the OR of
    ANDs of atoms the fused matcher can absorb (None when it cannot)."""
    entry = _entry(source)
    if type(entry) is _PerPlugin:
        return entry.bind(plugin)
    return entry


def forget(stale: Callable[[str], bool]) -> None:
    """Forget the translations of the source texts ``stale`` selects."""
    for source in [s for s in list(_cache) if stale(s)]:
        _cache.pop(source, None)


def clear_cache() -> None:
    """Forget every translation (benchmarks measure cold compiles with it)."""
    _cache.clear()
