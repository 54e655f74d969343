"""Calculator + date: the seed's example tool plugin.

`calculate` evaluates arithmetic with a small interpreter over Python's `ast` (numbers,
+ - * / // % **, parentheses, a few functions and constants). Nothing is ever passed to
`eval`: names, attributes, calls to anything not listed, and oversized numbers are refused.
`date` returns the current date and time in an IANA zone (zoneinfo).
"""

from __future__ import annotations

import ast
import datetime
import math
import operator
import os
import zoneinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from promptline import Tool, ToolError, ToolPlugin, ToolResult

MAX_EXPRESSION = 500        # characters
MAX_NODES = 200             # AST nodes
MAX_POWER_BITS = 4096       # a ** b: refuse results larger than this many bits
MAX_INT_DIGITS = 1000       # any integer literal or result

BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
          ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
          ast.Pow: operator.pow}
UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
FUNCTIONS = {"abs": abs, "round": lambda x, n=0: round(x, max(-15, min(15, int(n)))), "min": min, "max": max, "sqrt": math.sqrt,
             "sin": math.sin, "cos": math.cos, "tan": math.tan, "log": math.log,
             "log10": math.log10, "exp": math.exp, "floor": math.floor, "ceil": math.ceil}
CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


class CalculationError(ValueError):
    """An expression that is not allowed or cannot be computed."""


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression without `eval`; raise CalculationError."""
    if len(expression) > MAX_EXPRESSION:
        raise CalculationError(f"expression longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"not an arithmetic expression: {exc.msg}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CalculationError(f"expression has more than {MAX_NODES} parts")
    try:
        return _eval(tree.body)
    except ZeroDivisionError:
        raise CalculationError("division by zero") from None
    except CalculationError:
        raise
    except (OverflowError, ValueError, TypeError) as exc:
        raise CalculationError(f"cannot compute: {exc}") from None


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise CalculationError(f"only numbers are allowed, not {type(node.value).__name__}")
        return _checked(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _checked(BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise CalculationError(f"unknown name `{node.id}` (constants: {', '.join(CONSTANTS)})")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS \
            and not node.keywords:
        return _checked(FUNCTIONS[node.func.id](*(_eval(a) for a in node.args)))
    if isinstance(node, ast.Call):
        raise CalculationError(f"only these functions are allowed: {', '.join(FUNCTIONS)}")
    raise CalculationError(f"`{type(node).__name__}` is not allowed in an arithmetic expression")


def _check_power(base: int | float, exponent: int | float) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * abs(base).bit_length() > MAX_POWER_BITS:
            raise CalculationError(f"result too large (more than {MAX_POWER_BITS} bits)")


def _checked(value):
    if isinstance(value, int) and value.bit_length() > MAX_INT_DIGITS * 3.33:
        raise CalculationError(f"number too large (more than {MAX_INT_DIGITS} digits)")
    return value


def _format(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


class CalculatorTool(Tool):
    name = "calculate"
    description = "Evaluate a mathematical expression, e.g. `2 + 2` or `sqrt(2) * pi`"
    parameters = {"type": "object",
                  "properties": {"expression": {"type": "string", "minLength": 1, "maxLength": MAX_EXPRESSION,
                                                "description": "Math expression to evaluate"}},
                  "required": ["expression"], "additionalProperties": False}

    def execute(self, args):
        try:
            value = evaluate(args["expression"])
        except CalculationError as exc:
            raise ToolError(str(exc), tool=self.name, kind="invalid-arguments", field="expression") from None
        return ToolResult.success(_format(value), data={"value": value})


class DateTool(Tool):
    name = "date"
    description = "Current date and time in an IANA time zone (default UTC), e.g. Europe/Paris"
    parameters = {"type": "object",
                  "properties": {"timezone": {"type": "string", "default": "UTC", "maxLength": 64,
                                              "description": "IANA zone name such as America/New_York"}},
                  "additionalProperties": False}

    def execute(self, args):
        name = args.get("timezone") or "UTC"
        try:
            # look in the system database only: the `tzdata` package fallback would be a read
            # outside this plugin's grant (refused and logged) for every unknown name
            if not any(os.path.isfile(os.path.join(d, name)) for d in zoneinfo.TZPATH):
                raise ZoneInfoNotFoundError(name)
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(f"unknown time zone `{name}`; use an IANA name such as Europe/Paris",
                            tool=self.name, kind="invalid-arguments", field="timezone") from None
        now = datetime.datetime.now(zone)
        return ToolResult.success(now.strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)"),
                                  data={"iso": now.isoformat(timespec="seconds"), "timezone": name,
                                        "date": now.date().isoformat(), "weekday": now.strftime("%A")})


class CalculatorPlugin(ToolPlugin):
    def tools(self):
        return [CalculatorTool(), DateTool()]
