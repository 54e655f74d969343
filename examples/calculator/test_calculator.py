"""Unit tests for the calculator plugin, run directly: python -m pytest examples/calculator/
(CI loads the signed plugin through the PluginManager in tests/examples/)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from calculator_plugin import CalculationError, CalculatorPlugin, evaluate  # noqa: E402

from promptline import PluginConfig  # noqa: E402
from promptline.sdk import invoke_tool_sync  # noqa: E402


@pytest.mark.parametrize("expr, value", [("2 + 2", 4), ("2 ** 10 / 4", 256.0), ("7 // 2", 3), ("-3 ** 2", -9),
                                         ("round(2.567, 2)", 2.57), ("max(1, 5, 3)", 5)])
def test_arithmetic(expr, value):
    assert evaluate(expr) == value


@pytest.mark.parametrize("expr", ["__import__('os')", "().__class__", "x", "'a' * 3", "9 ** 9 ** 9", "1 / 0",
                                  "lambda: 1", "[1, 2]"])
def test_refused(expr):
    with pytest.raises(CalculationError):
        evaluate(expr)


def test_tools():
    plugin = CalculatorPlugin()
    plugin.initialize(PluginConfig("calculator"))
    calc, date = plugin.tools()
    assert invoke_tool_sync(calc, {"expression": "2 + 2"}).content == "4"
    assert not invoke_tool_sync(calc, {}).ok
    assert invoke_tool_sync(date, {"timezone": "UTC"}).data["timezone"] == "UTC"
    assert not invoke_tool_sync(date, {"timezone": "Mars/Base"}).ok
