"""Echo model: the seed's model-provider plugin, without a network.

`provider()` returns a LanguageModel whose `complete()` answers with the prompt itself
(after a configurable prefix). Options understood: `max_chars` (cut the answer) and
`upper` (shout). A real provider would call an API here and declare its host in
`capabilities.network`.
"""

from __future__ import annotations

from promptline import LanguageModel, ModelPlugin, PluginConfig


class EchoModel(LanguageModel):
    name = "echo"

    def __init__(self, prefix: str = "echo: ") -> None:
        self.prefix = prefix

    def complete(self, prompt: str, **options) -> str:
        text = self.prefix + prompt
        if options.get("upper"):
            text = text.upper()
        max_chars = options.get("max_chars")
        if isinstance(max_chars, int) and max_chars >= 0:
            text = text[:max_chars]
        return text


class EchoModelPlugin(ModelPlugin):
    def initialize(self, config: PluginConfig) -> None:
        self.config = config
        self.prefix = str(config.get("prefix", "echo: "))

    def provider(self) -> LanguageModel:
        return EchoModel(self.prefix)
