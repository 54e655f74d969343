"""Helpers for the loaders tests: small plugin trees."""

from __future__ import annotations

import textwrap
from pathlib import Path

MANIFEST = """\
id: {id}
name: {name}
version: {version}
description: a test plugin
requires: ">=0.1"
types: [tool]
entry:
  python: {module}:Plugin
sandbox: process
capabilities:
  network: [{network}]
  filesystem:
    read: ["~/.config/{id}/"]
"""

CODE = '''\
from promptline import ToolPlugin, Tool, ToolResult


class Echo(Tool):
    name = "echo"
    parameters = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

    def execute(self, args):
        return ToolResult.success(args["text"])


class Plugin(ToolPlugin):
    def tools(self):
        return [Echo()]
'''


def make_plugin(parent: Path, plugin_id: str = "demo", *, version: str = "0.1.0",
                network: str = '"https://api.example.com"', extra: str = "") -> Path:
    root = parent / plugin_id
    root.mkdir(parents=True)
    module = plugin_id.replace("-", "_")
    (root / "plugin.yaml").write_text(
        MANIFEST.format(id=plugin_id, name=plugin_id.title(), version=version, module=module,
                        network=network) + textwrap.dedent(extra))
    (root / f"{module}.py").write_text(CODE)
    (root / "data").mkdir()
    (root / "data" / "words.txt").write_text("alpha\nbeta\n")
    return root
