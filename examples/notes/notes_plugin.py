"""Notes search: a tool and context plugin that reads Markdown notes.

It declares read access to its notes directories only; anything else it tries to read is
refused by policy (try the `read` tool on ~/.ssh/id_rsa).
"""

import os

from promptline import ContextPlugin, PluginConfig, Tool, ToolPlugin, ToolResult

DEFAULT_DIR = "/tmp/promptline-demo/notes"


class SearchTool(Tool):
    name = "search"
    description = "Find notes containing a word; returns matching file names and lines"
    parameters = {"type": "object", "properties": {"query": {"type": "string", "minLength": 1}},
                  "required": ["query"], "additionalProperties": False}

    def __init__(self, plugin: "NotesPlugin") -> None:
        self.plugin = plugin

    def execute(self, args):
        query = args["query"].lower()
        hits = []
        for name in sorted(os.listdir(self.plugin.notes_dir)):
            if not name.endswith(".md"):
                continue
            with open(os.path.join(self.plugin.notes_dir, name), encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    if query in line.lower():
                        hits.append(f"{name}:{number}: {line.strip()}")
        return ToolResult.success("\n".join(hits) or "no match", data={"hits": len(hits)})


class ReadTool(Tool):
    name = "read"
    description = "Read one file by path (only the notes directories are granted)"
    parameters = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}

    def execute(self, args):
        with open(os.path.expanduser(args["path"]), encoding="utf-8") as fh:
            return ToolResult.success(fh.read(4000))


class NotesPlugin(ToolPlugin, ContextPlugin):
    def initialize(self, config: PluginConfig) -> None:
        self.notes_dir = config.get("notes_dir") or os.environ.get("NOTES_DIR") or DEFAULT_DIR

    def tools(self):
        return [SearchTool(self), ReadTool()]

    def get_context(self, query: str) -> str:
        result = SearchTool(self).execute({"query": query})
        return result.content
