"""Load-time checks shared by both backends: names, functions, fields, types and cost.

The expression is parsed with celpy's grammar (lark) and walked iteratively. Everything here
runs once per expression at compile time, never per evaluation.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

try:  # Python 3.11+: the regex parser moved to re._parser
    from re import _constants as _sre_c
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover
    import sre_constants as _sre_c
    import sre_parse as _sre_parse

from lark import Token, Tree

from .._capabilities import HELPERS
from .._errors import CelCompileError
from .._request import PLUGIN_FIELDS, REQUEST_FIELDS
from ._limits import (
    MAX_AST_NODES,
    MAX_COMPREHENSION_DEPTH,
    MAX_EXPRESSION_CHARS,
    MAX_PARSE_DEPTH,
    MAX_REGEX_CHARS,
    MAX_STRING_LITERAL_CHARS,
)
from ._parser import decode_string, is_shaped, parse, parse_exact, shape_of  # the one shared parser (celpy's grammar)

REQUEST_FIELD_SET = frozenset(REQUEST_FIELDS)
PLUGIN_FIELD_SET = frozenset(PLUGIN_FIELDS)
VARIABLE_FIELDS = {"request": REQUEST_FIELD_SET, "plugin": PLUGIN_FIELD_SET}
VARIABLES = frozenset(VARIABLE_FIELDS)

# Type identifiers of the standard library, usable as values (`type(x) == int`).
TYPE_IDENTIFIERS = frozenset({"int", "uint", "double", "string", "bytes", "bool", "list",
                              "map", "null_type", "type"})
# Global functions: name -> accepted argument counts.
GLOBAL_FUNCTIONS: dict[str, tuple[int, ...]] = {
    **{name: (2,) for name in HELPERS},
    "size": (1,), "int": (1,), "uint": (1,), "double": (1,), "string": (1,),
    "bytes": (1,), "bool": (1,), "type": (1,), "duration": (1,), "timestamp": (1,),
    "matches": (2,), "has": (1,),
}
# Receiver-style functions: name -> accepted argument counts.
MEMBER_FUNCTIONS: dict[str, tuple[int, ...]] = {
    "contains": (1,), "startsWith": (1,), "endsWith": (1,), "matches": (1,), "size": (0,),
    "all": (2,), "exists": (2,), "exists_one": (2,), "filter": (2,), "map": (2, 3),
}
MACROS = frozenset({"all", "exists", "exists_one", "filter", "map"})

_CHAIN = frozenset({"expr", "conditionalor", "conditionaland", "relation", "addition",
                    "multiplication", "unary", "member", "primary", "paren_expr"})
_BINARY = frozenset({"conditionalor", "conditionaland", "relation", "addition",
                     "multiplication"})
_COUNTED = frozenset({"literal", "ident", "ident_arg", "dot_ident", "dot_ident_arg",
                      "member_dot", "member_dot_arg", "member_index", "member_object",
                      "list_lit", "map_lit", "unary_not", "unary_neg"})
_STRING_TOKENS = frozenset({"STRING_LIT", "MLSTRING_LIT"})
_LITERAL_KIND = {"BOOL_LIT": "bool", "INT_LIT": "int", "UINT_LIT": "uint",
                 "FLOAT_LIT": "double", "STRING_LIT": "string", "MLSTRING_LIT": "string",
                 "BYTES_LIT": "bytes", "NULL_LIT": "null"}
_BOOL_FUNCTIONS = frozenset({*HELPERS, "has", "matches", "bool", "startsWith", "endsWith",
                             "contains", "all", "exists", "exists_one"})
_KIND_OF_CALL = {"size": "int", "int": "int", "uint": "uint", "double": "double",
                 "string": "string", "bytes": "bytes", "type": "type", "map": "list",
                 "filter": "list", "duration": "duration", "timestamp": "timestamp"}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What the static check learned: the parse tree and the result kind ("bool", "int",
    ..., or "dyn" when only evaluation can tell)."""

    tree: Tree
    kind: str
    nodes: int


def _pos(node: Any) -> tuple[int, int]:
    if isinstance(node, Token):
        return (node.line or 1, node.column or 1)
    meta = getattr(node, "meta", None)
    if meta is not None and not getattr(meta, "empty", True):
        return (meta.line, meta.column)
    for child in getattr(node, "children", ()):
        return _pos(child)
    return (1, 1)


def _error(node: Any, message: str, fix: str | None = None) -> CelCompileError:
    line, column = _pos(node)
    return CelCompileError(message, line=line, column=column, fix=fix)


def _unwrap(node: Any) -> Any:
    """Descend single-child chain nodes (``expr -> ... -> primary``) to the meaningful node."""
    while isinstance(node, Tree) and node.data in _CHAIN and len(node.children) == 1:
        node = node.children[0]
    return node


def _as_ident(node: Any) -> Token | None:
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == "ident":
        return node.children[0]  # type: ignore[return-value]
    return None


def _as_literal(node: Any) -> Token | None:
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == "literal":
        return node.children[0]  # type: ignore[return-value]
    return None


def _args(node: Tree, index: int) -> list[Any]:
    if len(node.children) > index and isinstance(node.children[index], Tree) \
            and node.children[index].data == "exprlist":
        return list(node.children[index].children)
    return []


def _arity(node: Any, name: str, got: int, allowed: tuple[int, ...]) -> None:
    if got not in allowed:
        want = " or ".join(str(n) for n in allowed)
        raise _error(node, f"`{name}` takes {want} argument{'s' if allowed != (1,) else ''}, "
                           f"got {got}", fix=f"call `{name}` with {want} argument(s)")


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean `{close[0]}`? " if close else ""


def _check_field(var: str, field_token: Any, node: Any) -> None:
    valid = VARIABLE_FIELDS[var]
    if field_token not in valid:
        names = REQUEST_FIELDS if var == "request" else PLUGIN_FIELDS
        raise _error(node, f"unknown field `{var}.{field_token}`",
                     fix=f"{_suggest(str(field_token), names)}valid fields of `{var}` are: "
                         f"{', '.join(names)}")


_REPEATS = {_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT}
_NOT_RE2 = {getattr(_sre_c, n) for n in ("GROUPREF", "GROUPREF_EXISTS", "ASSERT",
                                           "ASSERT_NOT", "ATOMIC_GROUP", "POSSESSIVE_REPEAT")
            if hasattr(_sre_c, n)}


def _regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is refused for `matches`, or None. Both backends must agree on it, so
    only the RE2-compatible subset is accepted, without nested unbounded repetition."""
    if len(pattern) > MAX_REGEX_CHARS:
        return f"regular expression is {len(pattern)} characters long, limit {MAX_REGEX_CHARS}"
    try:
        parsed = _sre_parse.parse(pattern)
    except re.error as exc:
        return f"invalid regular expression: {exc}"

    def walk(items: Any, in_repeat: bool) -> str | None:
        for op, av in items:
            if op in _NOT_RE2:
                return "regular expression uses backreferences, lookaround or atomic groups"
            if op in _REPEATS:
                lo, hi, sub = av
                repeats = hi is _sre_c.MAXREPEAT or hi > 1
                if repeats and in_repeat:
                    return "regular expression nests repetitions like `(a+)+`, which can " \
                           "backtrack catastrophically"
                found = walk(sub, in_repeat or repeats)
            elif op is _sre_c.SUBPATTERN:
                found = walk(av[-1], in_repeat)
            elif op is _sre_c.BRANCH:
                found = None
                for alt in av[1]:
                    found = found or walk(alt, in_repeat)
            else:
                found = None
            if found:
                return found
        return None

    return walk(parsed, False)


def check(source: str, *, expect_bool: bool = False) -> CheckResult:
    """Parse and check ``source``; raise ``CelCompileError`` with a 1-based position."""
    if not isinstance(source, str):
        raise CelCompileError("expression must be a string", line=1, column=1)
    if len(source) > MAX_EXPRESSION_CHARS:
        raise CelCompileError(
            f"expression is {len(source)} characters long, limit {MAX_EXPRESSION_CHARS}",
            line=1, column=1, fix="split it into several rules")
    if not source.strip():
        raise CelCompileError("expression is empty", line=1, column=1,
                              fix="write a condition such as `true`")
    tree = parse(source)
    shaped = shape_of(tree)
    if shaped is not None:
        known = _by_shape.get((shaped[0], expect_bool))
        if known is not None and shaped[1] <= MAX_STRING_LITERAL_CHARS:
            return CheckResult(tree, known[0], known[1])
    try:
        result = _check_tree(tree, expect_bool)
    except CelCompileError:
        if not is_shaped(tree):
            raise
        return _check_tree(parse_exact(source), expect_bool)   # the error at its exact position
    if shaped is not None and not _reads_literals(tree):
        if len(_by_shape) >= SHAPE_VERDICTS:
            _by_shape.clear()
        _by_shape[(shaped[0], expect_bool)] = (result.kind, result.nodes)
    return result


SHAPE_VERDICTS = 4096
"""Passing verdicts kept by (shape, expect_bool). The check of a tree built from a shape
depends on its literals only through their lengths, unless the text indexes with a literal
(``request["path"]``: a field name) or calls ``matches`` (a regex): such shapes are always
walked. Rules written alike (thousands of ``within(request.path, "...")``) are walked once."""

_by_shape: dict[tuple[str, bool], tuple[str, int]] = {}


def _reads_literals(tree: Any) -> bool:
    """Whether the check of ``tree`` reads a string literal's value (not only its length)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Token):
            if node.value == "matches":
                return True
            continue
        if node.data == "member_index":
            return True
        stack.extend(node.children)
    return False


def _check_tree(tree: Any, expect_bool: bool) -> CheckResult:
    nodes = 0
    # stack entries: (node, bound variable names, comprehension depth, parse depth)
    stack: list[tuple[Any, frozenset[str], int, int]] = [(tree, frozenset(), 0, 1)]
    while stack:
        node, scope, comp, depth = stack.pop()
        if isinstance(node, Token):
            continue
        if depth > MAX_PARSE_DEPTH:
            raise _error(node, f"expression nests too deeply (limit {MAX_PARSE_DEPTH} levels)",
                         fix="split it into several rules or flatten the parentheses")
        kind = node.data
        if kind in _COUNTED or (kind in _BINARY and len(node.children) > 1) or \
                (kind == "expr" and len(node.children) == 3):
            nodes += 1
            if nodes > MAX_AST_NODES:
                raise _error(node, f"expression has more than {MAX_AST_NODES} nodes",
                             fix="split it into several rules")
        children: list[Any] = list(node.children)
        if kind == "literal":
            token = node.children[0]
            if token.type in _STRING_TOKENS or token.type == "BYTES_LIT":
                if len(token) > MAX_STRING_LITERAL_CHARS:
                    raise _error(token, f"string literal is {len(token)} characters long, "
                                        f"limit {MAX_STRING_LITERAL_CHARS}",
                                 fix="use a helper such as `within` or `glob` with a shorter "
                                     "pattern")
            continue
        if kind in ("ident", "dot_ident"):
            name = str(node.children[0])
            if kind == "ident" and name in scope:
                continue
            if name not in VARIABLES and name not in TYPE_IDENTIFIERS:
                raise _error(node.children[0], f"undeclared reference to `{name}`",
                             fix=f"{_suggest(name, VARIABLES)}only `request`, `plugin` and "
                                 "comprehension variables are defined")
            continue
        if kind == "member_object":
            raise _error(node, "message construction is not supported",
                         fix="use a map literal `{...}` instead")
        if kind == "dot_ident_arg":
            name = str(node.children[0])
            raise _error(node.children[0], f"undeclared reference to `.{name}`",
                         fix="call functions without a leading dot")
        if kind == "member_dot":
            target, field_token = node.children
            var = _as_ident(target)
            if var is not None and str(var) in VARIABLES and str(var) not in scope:
                _check_field(str(var), field_token, field_token)
        elif kind == "member_index":
            target, index = node.children
            var = _as_ident(target)
            lit = _as_literal(index)
            if var is not None and str(var) in VARIABLES and str(var) not in scope \
                    and lit is not None and lit.type in _STRING_TOKENS:
                _check_field(str(var), decode_string(lit), lit)
        elif kind == "ident_arg":
            name_token = node.children[0]
            name = str(name_token)
            args = _args(node, 1)
            if name not in GLOBAL_FUNCTIONS:
                raise _error(name_token, f"undeclared reference to function `{name}`",
                             fix=f"{_suggest(name, GLOBAL_FUNCTIONS)}known functions are: "
                                 f"{', '.join(sorted(GLOBAL_FUNCTIONS))}")
            _arity(name_token, name, len(args), GLOBAL_FUNCTIONS[name])
            if name == "has":
                inner = _unwrap(args[0])
                if not (isinstance(inner, Tree) and inner.data == "member_dot"):
                    raise _error(name_token, "`has` needs a field selection like "
                                             "`has(request.args.x)`")
            if name in HELPERS:
                for arg in args:
                    _string_arg(name_token, arg)
            if name == "matches":
                _regex_arg(args[1])
        elif kind == "member_dot_arg":
            target, name_token = node.children[0], node.children[1]
            name = str(name_token)
            args = _args(node, 2)
            if name not in MEMBER_FUNCTIONS:
                raise _error(name_token, f"undeclared reference to function `{name}`",
                             fix=f"{_suggest(name, MEMBER_FUNCTIONS)}known methods are: "
                                 f"{', '.join(sorted(MEMBER_FUNCTIONS))}")
            _arity(name_token, name, len(args), MEMBER_FUNCTIONS[name])
            if name == "matches":
                _regex_arg(args[0])
            if name in MACROS:
                var = _as_ident(args[0])
                if var is None:
                    raise _error(args[0], f"the first argument of `{name}` must be a "
                                          "variable name", fix=f"write `list.{name}(x, ...)`")
                if str(var) in VARIABLES:
                    raise _error(var, f"`{var}` cannot be used as a comprehension variable",
                                 fix="choose another name such as `x`")
                if comp + 1 > MAX_COMPREHENSION_DEPTH:
                    raise _error(name_token, f"comprehensions nest more than "
                                             f"{MAX_COMPREHENSION_DEPTH} deep",
                                 fix="flatten the expression or split it into several rules")
                stack.append((target, scope, comp, depth + 1))
                inner_scope = scope | {str(var)}
                for arg in args[1:]:
                    stack.append((arg, inner_scope, comp + 1, depth + 1))
                continue
        for child in reversed(children):
            stack.append((child, scope, comp, depth + 1))
    result_kind = _kind(tree)
    typed = type_of(tree)
    if typed != "dyn" and result_kind == "dyn":
        result_kind = _shown(typed) if typed != "bool" else "bool"
    if expect_bool and result_kind not in ("bool", "dyn"):
        raise _error(_unwrap(tree), f"expression is of type {result_kind}, a condition must "
                                    "be bool", fix="compare the value, e.g. `... == ...`")
    return CheckResult(tree, result_kind, nodes)


def _string_arg(name_token: Token, arg: Any) -> None:
    name = str(name_token)
    node = _unwrap(arg)
    lit = _as_literal(arg)
    found = None
    if lit is not None and lit.type not in _STRING_TOKENS:
        found = _LITERAL_KIND.get(lit.type, "value")
    elif isinstance(node, Tree) and node.data in ("list_lit", "map_lit"):
        found = "list" if node.data == "list_lit" else "map"
    if found:
        raise _error(name_token, f"found no matching overload for `{name}` applied to {found}",
                     fix=f"`{name}` takes two strings")


def _regex_arg(arg: Any) -> None:
    lit = _as_literal(arg)
    if lit is None or lit.type not in _STRING_TOKENS:
        raise _error(_unwrap(arg), "the pattern of `matches` must be a string literal",
                     fix="write the regular expression inline, or use `glob`/`within`")
    problem = _regex_problem(decode_string(lit))
    if problem:
        raise _error(lit, problem, fix="use a simpler pattern, or the helpers `glob`, "
                                       "`within`, `host_matches`")


def _kind(node: Any) -> str:
    node = _unwrap(node)
    if isinstance(node, Token):
        return "dyn"
    kind = node.data
    if kind in ("conditionalor", "conditionaland", "relation"):
        return "bool"
    if kind in ("addition", "multiplication"):
        return "number, string or list"
    if kind == "unary":
        return "bool" if node.children[0].data == "unary_not" else "number"
    if kind == "literal":
        return _LITERAL_KIND.get(node.children[0].type, "dyn")
    if kind in ("list_lit", "map_lit"):
        return "list" if kind == "list_lit" else "map"
    if kind in ("ident_arg", "member_dot_arg"):
        name = str(node.children[0 if kind == "ident_arg" else 1])
        if name in _BOOL_FUNCTIONS:
            return "bool"
        return _KIND_OF_CALL.get(name, "dyn")
    if kind == "ident":
        return "map" if str(node.children[0]) in VARIABLES else "type"
    return "dyn"


# -- types ----------------------------------------------------------------------------------
# The declarations of `request` and `plugin` both checkers use: a misspelt field, a comparison
# of different types (`request.port > "1000"`, `request.port == "443"`, int with double) and a
# non-boolean condition are load errors on both backends, which would otherwise disagree at
# evaluation (cel-cpp: false or an error; cel-python: an error).

STRING_LIST = "list(string)"
STRUCTS: dict[str, dict[str, str]] = {
    "request": {"action": "string", "plugin": "string", "path": "string", "host": "string",
                "port": "int", "scheme": "string", "url": "string", "name": "string",
                "argv": STRING_LIST, "tool": "string", "args": "map"},
    "plugin": {"id": "string", "version": "string", "publisher": "string", "signed": "bool",
               "sandbox": "string", "trusted": "bool", "capabilities": "plugin.capabilities"},
    "plugin.capabilities": {"network": STRING_LIST, "filesystem": "plugin.capabilities.filesystem",
                            "environment": STRING_LIST, "process": STRING_LIST, "native": "bool"},
    "plugin.capabilities.filesystem": {"read": STRING_LIST, "write": STRING_LIST},
}
_LITERAL_TYPE = {"BOOL_LIT": "bool", "INT_LIT": "int", "UINT_LIT": "uint", "FLOAT_LIT": "double",
                 "STRING_LIT": "string", "MLSTRING_LIT": "string", "BYTES_LIT": "bytes",
                 "NULL_LIT": "null"}
_CALL_TYPE = {"size": "int", "int": "int", "uint": "uint", "double": "double", "string": "string",
              "bytes": "bytes", "bool": "bool", "type": "type", "duration": "duration",
              "timestamp": "timestamp", "matches": "bool", "has": "bool", **{h: "bool" for h in HELPERS}}
_METHOD_TYPE = {"contains": "bool", "startsWith": "bool", "endsWith": "bool", "matches": "bool",
                "size": "int", "all": "bool", "exists": "bool", "exists_one": "bool",
                "filter": "list", "map": "list"}
_STRING_METHODS = frozenset({"contains", "startsWith", "endsWith", "matches"})
_ORDERED = frozenset({"int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration"})
_REL_OPS = {"relation_eq": "==", "relation_ne": "!=", "relation_lt": "<", "relation_le": "<=",
            "relation_gt": ">", "relation_ge": ">=", "relation_in": "in"}


def _known(t: str) -> bool:
    return t != "dyn"


def _shown(t: str) -> str:
    if t in STRUCTS:
        return f"the `{t}` object"
    if t.startswith("list("):
        return f"list of {_elem(t)}"
    if t.startswith("map("):
        return f"map with {_elem(t)} keys"
    return t


def _base(t: str) -> str:
    """A struct compares and indexes like a map; list(string) like a list."""
    if t in STRUCTS or t.startswith("map"):
        return "map"
    return "list" if t.startswith("list") else t


def _elem(t: str) -> str:
    """The element type of ``list(T)``, the key type of ``map(T)``, else dyn."""
    if t.startswith("list("):
        return t[5:-1]
    return t[4:-1] if t.startswith("map(") else "dyn"


def type_of(node: Any, scope: frozenset[str] = frozenset()) -> str:
    """The CEL type of ``node`` under the declarations above (``dyn`` where unknown); raise
    ``CelCompileError`` at the offending node for a type error."""
    node = _unwrap(node)
    if isinstance(node, Token):
        return "dyn"
    kind = node.data
    ch = node.children
    if kind == "literal":
        return _LITERAL_TYPE.get(ch[0].type, "dyn")
    if kind == "ident":
        name = str(ch[0])
        if name in scope:
            return "dyn"
        return name if name in STRUCTS else ("type" if name in TYPE_IDENTIFIERS else "dyn")
    if kind == "paren_expr":
        return type_of(ch[0], scope)
    if kind == "list_lit":
        items = _args(node, 0)
        kinds = {type_of(x, scope) for x in items}
        if len(kinds) == 1:
            (only,) = kinds
            if _known(only) and only in _ORDERED:
                return f"list({only})"
        return "list"
    if kind == "map_lit":
        inits = node.children[0].children if node.children and isinstance(node.children[0], Tree) else []
        keys = {type_of(k, scope) for k in inits[0::2]}
        for v in inits[1::2]:
            type_of(v, scope)
        if len(keys) == 1:
            (only,) = keys
            if _known(only) and only in _ORDERED:
                return f"map({only})"
        return "map"
    if kind in ("conditionalor", "conditionaland") and len(ch) == 2:
        op = "||" if kind == "conditionalor" else "&&"
        for side in ch:
            t = type_of(side, scope)
            if _known(t) and t != "bool":
                raise _error(_unwrap(side), f"`{op}` needs bool operands, got {_shown(t)}",
                             fix="compare the value, e.g. `... == ...`")
        return "bool"
    if kind == "expr" and len(ch) == 3:
        cond = type_of(ch[0], scope)
        if _known(cond) and cond != "bool":
            raise _error(_unwrap(ch[0]), f"the condition of `? :` must be bool, got {_shown(cond)}")
        a, b = type_of(ch[1], scope), type_of(ch[2], scope)
        return a if a == b else "dyn"
    if kind == "relation" and len(ch) == 2:
        return _relation(ch[0], ch[1], scope)
    if kind == "unary" and len(ch) == 2:
        t = type_of(ch[1], scope)
        if ch[0].data == "unary_not":
            if _known(t) and t != "bool":
                raise _error(_unwrap(ch[1]), f"`!` needs a bool, got {_shown(t)}",
                             fix="compare the value, e.g. `... == ...`")
            return "bool"
        return t
    if kind in ("addition", "multiplication") and len(ch) == 2:
        left = type_of(ch[0].children[0] if isinstance(ch[0], Tree) and ch[0].children else ch[0], scope)
        right = type_of(ch[1], scope)
        if _known(left) and _known(right) and _base(left) != _base(right):
            raise _error(node, f"arithmetic on {_shown(left)} and {_shown(right)}",
                         fix="convert one side, e.g. `string(...)` or `int(...)`")
        return left if _known(left) else right
    if kind == "member_dot":
        target, field = ch
        t = type_of(target, scope)
        if t in STRUCTS:
            fields = STRUCTS[t]
            if str(field) not in fields:
                raise _error(field, f"unknown field `{t}.{field}`",
                             fix=f"{_suggest(str(field), fields)}valid fields of `{t}` are: "
                                 f"{', '.join(fields)}")
            return fields[str(field)]
        if _known(t) and _base(t) not in ("map", "type"):
            raise _error(field, f"{_shown(t)} has no field `{field}`")
        return "dyn"
    if kind == "member_index":
        target, index = ch
        t = type_of(target, scope)
        i = type_of(index, scope)
        lit = _as_literal(index)
        if t in STRUCTS and lit is not None and lit.type in _STRING_TOKENS:
            return STRUCTS[t].get(decode_string(lit), "dyn")
        if _base(t) == "list":
            if _known(i) and i != "int":
                raise _error(_unwrap(index), f"a list index must be int, got {_shown(i)}")
            return _elem(t)
        return "dyn"
    if kind == "ident_arg":
        name = str(ch[0])
        args = _args(node, 1)
        types = [type_of(a, scope) for a in args]
        if name in HELPERS:
            for t in types:
                if _known(t) and t != "string":
                    raise _error(ch[0], f"`{name}` takes two strings, got {_shown(t)}",
                                 fix=f"pass string values to `{name}`")
        if name == "size" and types and _known(types[0]) and \
                _base(types[0]) not in ("string", "bytes", "list", "map"):
            raise _error(ch[0], f"`size` of {_shown(types[0])}")
        return _CALL_TYPE.get(name, "dyn")
    if kind == "member_dot_arg":
        target, name_token = ch[0], ch[1]
        name = str(name_token)
        t = type_of(target, scope)
        if name in MACROS:
            args = _args(node, 2)
            var = _as_ident(args[0]) if args else None
            inner = scope | {str(var)} if var is not None else scope
            for a in args[1:]:
                type_of(a, inner)
            if _known(t) and _base(t) not in ("list", "map"):
                raise _error(name_token, f"`{name}` needs a list or map, got {_shown(t)}")
            return _METHOD_TYPE.get(name, "dyn")
        for a in _args(node, 2):
            at = type_of(a, scope)
            if name in _STRING_METHODS and _known(at) and at != "string":
                raise _error(name_token, f"`{name}` takes a string, got {_shown(at)}")
        if name in _STRING_METHODS and _known(t) and t != "string":
            raise _error(name_token, f"`{name}` is a string method; this is {_shown(t)}")
        return _METHOD_TYPE.get(name, "dyn")
    return "dyn"


def _relation(op_node: Any, right_node: Any, scope: frozenset[str]) -> str:
    op = _REL_OPS.get(op_node.data, "?")
    left = type_of(op_node.children[0], scope)
    right = type_of(right_node, scope)
    if op == "in" and _known(right) and _base(right) not in ("list", "map"):
        raise _error(op_node, f"`in` needs a list or map on the right, got {_shown(right)}")
    if op not in ("==", "!=", "in"):
        for t in (left, right):
            if _known(t) and t not in _ORDERED:
                raise _error(op_node, f"`{op}` does not order {_shown(t)}")
    if not (_known(left) and _known(right)):
        return "bool"
    if op == "in":
        elem = _elem(right) if right.startswith(("list(", "map(")) else "dyn"
        if _known(elem) and elem != left:
            raise _error(op_node, f"`in` looks for {_shown(left)} in a {_shown(right)}",
                         fix="compare values of one type")
        return "bool"
    if _base(left) != _base(right):
        raise _error(op_node, f"`{op}` compares {_shown(left)} with {_shown(right)}; CEL "
                              "backends disagree on such comparisons",
                     fix="compare values of one type, e.g. `request.port == 443` or "
                         "`string(request.port) == \"443\"`")
    if op not in ("==", "!=") and left not in _ORDERED:
        raise _error(op_node, f"`{op}` does not order {_shown(left)}")
    return "bool"
