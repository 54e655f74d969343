"""Unit tests for echo-model, run directly: python -m pytest examples/echo-model/
(CI loads the signed plugin and calls it through the PluginManager in tests/examples/)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from echo_model_plugin import EchoModelPlugin  # noqa: E402

from promptline import LanguageModel, PluginConfig  # noqa: E402


def test_echo():
    plugin = EchoModelPlugin()
    plugin.initialize(PluginConfig("echo-model", {"prefix": "> "}))
    model = plugin.provider()
    assert isinstance(model, LanguageModel)
    assert model.complete("hi") == "> hi"
    assert model.complete("hi", upper=True, max_chars=3) == "> H"
