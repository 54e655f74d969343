"""`promptline plugin new`: a working plugin of each type, with a test that passes.

    render_scaffold("my-tools")                       # a tool plugin
    render_scaffold("my-model", kind="model")         # tool | model | prompt | context
    render_scaffold("my-tools", sandbox="none")       # none | process (the default)
"""

from __future__ import annotations

import json

KINDS = ("tool", "model", "prompt", "context")
SANDBOXES = ("process", "none")


def render_scaffold(plugin_id: str, description: str = "", *, kind: str = "tool",
                    sandbox: str = "process") -> dict[str, str]:
    """The files of a new plugin of type ``kind``, by name."""
    if kind not in KINDS:
        raise ValueError(f"unknown plugin type `{kind}` — use one of {', '.join(KINDS)}")
    if sandbox not in SANDBOXES:
        raise ValueError(f"a scaffold runs at `process` or `none`, not `{sandbox}` — for wasm, start from "
                         "examples/wasm-wordcount (C compiled to wasm32-wasi)")
    base = plugin_id.replace("-", "_")
    module = base if base.endswith("plugin") else f"{base}_plugin"
    if module[0].isdigit():
        module = f"p{module}"
    cls = "".join(part.capitalize() for part in plugin_id.split("-")) + "Plugin"
    if cls[0].isdigit():
        cls = f"P{cls}"
    title = " ".join(part.capitalize() for part in plugin_id.split("-"))
    code, test, summary, develop = _KINDS[kind]
    description = description or f"{title}: {summary.format(cls=cls).rstrip('.')}"
    values = {"id": plugin_id, "module": module, "cls": cls, "title": title, "upper": base.upper(),
              "description": json.dumps(description), "description_plain": description, "type": kind,
              "sandbox": sandbox, "read": '["~/notes/"]' if kind == "context" else "[]",
              "config": "notes_dir: ~/notes" if kind == "context" else "greeting: Hello"}
    values["summary"] = summary.format(**values)
    values["develop"] = develop.format(**values)
    return {"plugin.yaml": _MANIFEST.format(**values), f"{module}.py": code.format(**values),
            "README.md": _README.format(**values), f"test_{module}.py": test.format(**values)}


_MANIFEST = """\
id: {id}
name: {title}
version: 0.1.0
description: {description}
requires: ">=0.1,<1.0"
types: [{type}]
entry:
  python: {module}:{cls}
sandbox: {sandbox}          # none | process | container | wasm; the policy may force a stricter one
capabilities:             # ask only for what the tools need; users approve this list
  network: []             # e.g. ["https://api.example.com"]
  filesystem:
    read: {read}              # e.g. ["~/.config/{id}/"]
    write: []
  environment: []         # e.g. [{upper}_TOKEN]
  process: []
  native: false
config:                   # defaults handed to initialize() as PluginConfig.settings
  {config}
"""

_README = """\
# {title}

{description_plain}

{summary}

| file | what |
|---|---|
| `plugin.yaml` | the manifest: id, version, entry point, sandbox, capabilities |
| `{module}.py` | the plugin (`{cls}`) and its tools |
| `test_{module}.py` | tests: `python -m pytest -q` in this directory |

## Develop

{develop}
Need the network, files or environment variables? Declare them under `capabilities:` in
`plugin.yaml` — anything undeclared is refused.

## Sign, install, approve

```sh
promptline keys generate --name me            # once
promptline plugin sign . --key me             # after every change
promptline plugin verify . --trusted-key "$(cat ~/.config/promptline/keys/me.pem.pub)"
export PROMPTLINE_PLUGIN_PATH=$PWD            # or copy this directory into a plugin dir
promptline plugin info {id}
promptline plugin approve {id}
```

Changing any file after signing invalidates the signature; a new version that asks for
more capabilities must be approved again.
"""

_TEST_HEAD = '''\
"""Tests for {title}: run `python -m pytest -q` in the plugin directory."""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from promptline.policy import load_manifest  # noqa: E402
from promptline import PluginConfig, invoke_tool_sync  # noqa: E402

from {module} import {cls}  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def test_manifest_is_valid_and_points_at_the_plugin():
    manifest = load_manifest(HERE / "plugin.yaml")
    assert manifest.id == "{id}" and manifest.types == ("{type}",)
    assert manifest.entry.python == "{module}:{cls}"
'''

_TOOL_CODE = '''\
"""{title}: a PromptLine tool plugin."""

from __future__ import annotations

from promptline import PluginConfig, Tool, ToolPlugin, ToolResult


class WordCount(Tool):
    name = "word_count"
    description = "Count the words in a text"
    parameters = {{
        "type": "object",
        "properties": {{"text": {{"type": "string", "description": "the text to count"}}}},
        "required": ["text"],
        "additionalProperties": False,
    }}

    def execute(self, args):
        # args were validated against `parameters` before this runs
        words = len(args["text"].split())
        return ToolResult.success(f"{{words}} words", data={{"words": words}})


class Greet(Tool):
    name = "greet"
    description = "Greet someone"
    parameters = {{
        "type": "object",
        "properties": {{"name": {{"type": "string", "minLength": 1}}}},
        "required": ["name"],
        "additionalProperties": False,
    }}

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    async def execute(self, args):  # tools may be sync or async
        return ToolResult.success(f"{{self.greeting}}, {{args['name']}}!")


class {cls}(ToolPlugin):
    def initialize(self, config: PluginConfig) -> None:
        self.config = config
        self.greeting = str(config.get("greeting", "Hello"))

    def tools(self):
        return [WordCount(), Greet(self.greeting)]
'''

_TOOL_TEST = _TEST_HEAD + '''

def tool(name, settings=None):
    plugin = {cls}()
    plugin.initialize(PluginConfig("{id}", settings or {{"greeting": "Hi"}}))
    return next(t for t in plugin.tools() if t.name == name)


def test_word_count():
    result = invoke_tool_sync(tool("word_count"), {{"text": "one two  three"}})
    assert result.ok and result.data == {{"words": 3}}


def test_arguments_are_validated_before_the_tool_runs():
    result = invoke_tool_sync(tool("word_count"), {{}})
    assert not result.ok and result.error.field == "text"


def test_greet_uses_the_config():
    assert invoke_tool_sync(tool("greet"), {{"name": "Ada"}}).content == "Hi, Ada!"
'''

_MODEL_CODE = '''\
"""{title}: a PromptLine model provider.

`provider()` returns the LanguageModel the host calls with `complete(prompt, **options)`.
This one answers locally (it reverses the words of the prompt) so it needs no network; a
real provider calls its API here and declares that host under `capabilities.network`, and
its key under `capabilities.environment`.
"""

from __future__ import annotations

from promptline import LanguageModel, ModelPlugin, PluginConfig


class ReverseModel(LanguageModel):
    name = "reverse"

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    def complete(self, prompt: str, **options) -> str:   # may be async
        words = prompt.split()
        answer = " ".join(reversed(words))
        max_words = options.get("max_words")
        if isinstance(max_words, int) and max_words >= 0:
            answer = " ".join(answer.split()[:max_words])
        return f"{{self.greeting}}: {{answer}}"


class {cls}(ModelPlugin):
    def initialize(self, config: PluginConfig) -> None:
        self.config = config
        self.greeting = str(config.get("greeting", "Hello"))

    def is_available(self) -> bool:
        return True   # a real provider checks its credentials or endpoint here

    def provider(self) -> LanguageModel:
        return ReverseModel(self.greeting)
'''

_MODEL_TEST = _TEST_HEAD + '''

def model(settings=None):
    plugin = {cls}()
    plugin.initialize(PluginConfig("{id}", settings or {{"greeting": "Hi"}}))
    assert plugin.is_available()
    return plugin.provider()


def test_completes_locally():
    assert model().complete("one two three") == "Hi: three two one"


def test_options():
    assert model().complete("one two three", max_words=1) == "Hi: three"
'''

_PROMPT_CODE = '''\
"""{title}: PromptLine prompt templates.

Each PromptTemplate has a name, a text with `{{{{ variables }}}}` and a description; the host
renders it with the user's values (every variable is required)."""

from __future__ import annotations

from promptline import PromptPlugin, PromptTemplate


class {cls}(PromptPlugin):
    def templates(self):
        return [
            PromptTemplate("summarize", "Summarize this text in {{{{ sentences }}}} sentences:\\n\\n{{{{ text }}}}",
                           "a short summary of a text"),
            PromptTemplate("explain-error", "Explain this {{{{ language }}}} error and how to fix it:\\n{{{{ error }}}}",
                           "what an error message means"),
        ]
'''

_PROMPT_TEST = _TEST_HEAD + '''

def template(name):
    return next(t for t in {cls}().templates() if t.name == name)


def test_renders():
    text = template("summarize").render(sentences="2", text="PromptLine runs plugins.")
    assert text == "Summarize this text in 2 sentences:\\n\\nPromptLine runs plugins."


def test_every_variable_is_required():
    import pytest
    with pytest.raises(ValueError):
        template("explain-error").render(language="Python")
'''

_CONTEXT_CODE = '''\
"""{title}: a PromptLine context source.

`get_context(query)` returns text the host adds to the conversation. This one searches the
lines of the text files in its configured directory (`notes_dir`); declare that directory
under `capabilities.filesystem.read` in plugin.yaml, or every read is refused.
"""

from __future__ import annotations

import os

from promptline import ContextPlugin, PluginConfig

MAX_LINES = 20


class {cls}(ContextPlugin):
    def initialize(self, config: PluginConfig) -> None:
        self.config = config
        self.notes_dir = os.path.expanduser(str(config.get("notes_dir", "~/notes")))

    def get_context(self, query: str) -> str:   # may be async
        needle = query.lower()
        hits = []
        for root, _, files in os.walk(self.notes_dir):
            for name in sorted(files):
                if not name.endswith((".md", ".txt")):
                    continue
                with open(os.path.join(root, name), encoding="utf-8", errors="replace") as fh:
                    hits += [f"{{name}}: {{line.strip()}}" for line in fh if needle in line.lower()]
        return "\\n".join(hits[:MAX_LINES])
'''

_CONTEXT_TEST = _TEST_HEAD + '''

def test_finds_matching_lines(tmp_path):
    (tmp_path / "a.md").write_text("buy milk\\nwrite docs\\n")
    (tmp_path / "b.txt").write_text("MILK is white\\n")
    plugin = {cls}()
    plugin.initialize(PluginConfig("{id}", {{"notes_dir": str(tmp_path)}}))
    assert plugin.get_context("milk") == "a.md: buy milk\\nb.txt: MILK is white"
    assert plugin.get_context("nothing like it") == ""
'''

# type -> (code, test, README summary, README "Develop" text)
_KINDS = {
    "tool": (_TOOL_CODE, _TOOL_TEST, "A PromptLine tool plugin with two tools: `word_count` and `greet`.",
             "Tools declare their arguments as JSON Schema in `parameters`; PromptLine validates every\n"
             "call against it before `execute` runs. Return `ToolResult.success(text, data=...)` or raise\n"
             "`ToolError(\"what went wrong\")`."),
    "model": (_MODEL_CODE, _MODEL_TEST, "A PromptLine model provider (`{cls}.provider()`).",
              "`provider()` returns a `LanguageModel`; the host calls `complete(prompt, **options)`\n"
              "(`promptline` decides each completion as a `tool.call` of `complete`)."),
    "prompt": (_PROMPT_CODE, _PROMPT_TEST, "PromptLine prompt templates: `summarize` and `explain-error`.",
               "`templates()` returns `PromptTemplate(name, text, description)`; variables are\n"
               "`{{{{ name }}}}` and every one is required when the host renders it."),
    "context": (_CONTEXT_CODE, _CONTEXT_TEST, "A PromptLine context source over a directory of notes.",
                "`get_context(query)` returns the text to add to the conversation; set `notes_dir`\n"
                "under `config:` and grant it under `capabilities.filesystem.read`."),
}
