"""The cel-python backend (pure Python, the reference).

This is the only module that imports ``celpy``. celpy raises the interpreter's recursion
limit to 2500 as a process-wide side effect (``celpy.Environment.__init__``); every entry into
celpy here restores the previous limit, and the static budget (``_static``) keeps expressions
shallow enough to evaluate under the default limit.
"""

from __future__ import annotations

import contextlib
import operator
import sys
from collections.abc import Iterator
from typing import Any

from .._capabilities import HELPERS
from .._errors import CelEvalError
from ._parser import is_shaped, parse_exact


@contextlib.contextmanager
def _keep_recursion_limit() -> Iterator[None]:
    limit = sys.getrecursionlimit()
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


with _keep_recursion_limit():
    import celpy
    import lark
    from celpy import celtypes, evaluation
    from celpy.evaluation import CELEvalError



def _helper(name: str, fn: Any) -> Any:
    def call(a: Any, b: Any) -> Any:
        if not isinstance(a, str) or not isinstance(b, str):
            return CELEvalError(f"found no matching overload for `{name}`", TypeError, None)
        return celtypes.BoolType(fn(str(a), str(b)))
    call.__name__ = name
    return call


# Equality and ordering as the CEL spec (and cel-cpp) define them for values whose type only
# evaluation knows (`request.args.*`): values of different kinds are unequal, numbers compare
# by value. celpy raises "no matching overload" instead, which would make a deny fire on one
# backend and not on the other. Declared types are checked at load (``_static.type_of``).
_NUMBERS = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)
_base_eq, _base_lt = evaluation.bool_eq, evaluation.bool_lt
_base_le, _base_gt, _base_ge = evaluation.bool_le, evaluation.bool_gt, evaluation.bool_ge


def _is_number(v: Any) -> bool:
    return isinstance(v, _NUMBERS) and not isinstance(v, celtypes.BoolType)


def _eq(a: Any, b: Any) -> Any:
    if isinstance(a, CELEvalError):
        return a
    if isinstance(b, CELEvalError):
        return b
    if _is_number(a) and _is_number(b):
        return celtypes.BoolType(float(a) == float(b) if isinstance(a, celtypes.DoubleType)
                                 or isinstance(b, celtypes.DoubleType) else int(a) == int(b))
    try:
        result = _base_eq(a, b)
    except TypeError:
        return celtypes.BoolType(False)
    if isinstance(result, CELEvalError):
        return celtypes.BoolType(False)
    return result


def _ne(a: Any, b: Any) -> Any:
    result = _eq(a, b)
    return result if isinstance(result, CELEvalError) else celtypes.BoolType(not result)


def _kind_of(v: Any) -> Any:
    if isinstance(v, celtypes.BoolType):
        return "bool"
    return "number" if _is_number(v) else type(v)


def _ordered(base, op):
    def compare(a: Any, b: Any) -> Any:
        if isinstance(a, CELEvalError):
            return a
        if isinstance(b, CELEvalError):
            return b
        if _kind_of(a) != _kind_of(b):
            return CELEvalError("found no matching overload for an ordering", TypeError, None)
        if _is_number(a) and type(a) is not type(b):
            return celtypes.BoolType(op(float(a), float(b)))
        return base(a, b)
    return compare


def _in(item: Any, container: Any) -> Any:
    if isinstance(item, CELEvalError):
        return item
    if isinstance(container, CELEvalError):
        return container
    if not isinstance(container, (dict, list, tuple)):
        return CELEvalError("found no matching overload for `in`", TypeError, None)
    if isinstance(container, dict) and isinstance(item, (dict, list, tuple, celtypes.DoubleType)):
        return CELEvalError("not a valid map key type", TypeError, None)
    return celtypes.BoolType(any(bool(_eq(item, c)) for c in container))


_FUNCTIONS = {name: _helper(name, fn) for name, fn in HELPERS.items()}
_FUNCTIONS.update({"_==_": _eq, "_!=_": _ne, "_in_": _in,
                   "_<_": _ordered(_base_lt, operator.lt), "_<=_": _ordered(_base_le, operator.le),
                   "_>_": _ordered(_base_gt, operator.gt), "_>=_": _ordered(_base_ge, operator.ge)})

with _keep_recursion_limit():
    _ENV = celpy.Environment(annotations={"request": celtypes.MapType,
                                          "plugin": celtypes.MapType})


def _to_python(value: Any) -> Any:
    if isinstance(value, CELEvalError):
        raise CelEvalError(_eval_message(value))
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, (celtypes.IntType, celtypes.UintType)):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.BytesType):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return [_to_python(v) for v in value]
    if isinstance(value, dict):
        return {_to_python(k): _to_python(v) for k, v in value.items()}
    return value


def _eval_message(err: BaseException) -> str:
    text = str(err.args[0]) if err.args else type(err).__name__
    return text.splitlines()[0] if text else "evaluation error"


class _Prepared(dict):
    """An activation already converted to celpy values."""

    __slots__ = ()


class CelPythonProgram:
    """A compiled expression for cel-python; ``evaluate`` returns a plain Python value."""

    __slots__ = ("source", "expect_bool", "_runner")

    def __init__(self, source: str, tree: lark.Tree, expect_bool: bool) -> None:
        self.source = source
        self.expect_bool = expect_bool
        with _keep_recursion_limit():
            self._runner = _ENV.program(tree, functions=_FUNCTIONS)

    def evaluate(self, activation: dict) -> object:
        try:
            cel_activation = activation if type(activation) is _Prepared else \
                {k: celpy.json_to_cel(v) for k, v in activation.items()}
            result = _to_python(self._runner.evaluate(cel_activation))
        except CelEvalError:
            raise
        except CELEvalError as exc:
            raise CelEvalError(_eval_message(exc)) from exc
        except Exception as exc:  # includes RecursionError
            raise CelEvalError(f"evaluation failed: {type(exc).__name__}: {exc}") from exc
        if self.expect_bool and not isinstance(result, bool):
            raise CelEvalError(f"expression returned `{type(result).__name__}`, expected bool")
        return result

    def __repr__(self) -> str:
        return f"<CelPythonProgram {self.source!r}>"


class CelPythonBackend:
    """cel-python: the pure-Python reference backend (slow, ~hundreds of µs per evaluation)."""

    name = "cel-python"

    def compile(self, source: str, *, expect_bool: bool = False,
                prechecked: bool = False) -> CelPythonProgram:
        from ._static import check

        if prechecked:
            try:
                return CelPythonProgram(source, parse_exact(source), expect_bool)
            except Exception:  # noqa: BLE001 - fall back to the full check for its error
                pass
        info = check(source, expect_bool=expect_bool)
        # the reference evaluates its own parse, never one built from a shared shape
        tree = parse_exact(source) if is_shaped(info.tree) else info.tree
        return CelPythonProgram(source, tree, expect_bool)

    def prepare(self, activation: dict) -> _Prepared:
        """An activation to evaluate several programs of this backend against one request."""
        try:
            return _Prepared({k: celpy.json_to_cel(v) for k, v in activation.items()})
        except Exception as exc:
            raise CelEvalError(f"activation cannot be converted: {exc}") from exc

    def __repr__(self) -> str:
        return "<CelPythonBackend>"
