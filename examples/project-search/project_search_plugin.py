"""Project search: a context and tool plugin over one project directory.

Tools: `search(query, glob?)` finds lines containing a word in the project's text files;
`read(path)` returns one file (a path relative to the project, or absolute).

The plugin does not police paths itself, on purpose: its manifest grants read access to
the project directory only, and PromptLine's sandbox refuses everything else (try
`read` with `../notes/todo.md` or `/etc/passwd`: the refusal names the policy rule).
"""

from __future__ import annotations

import fnmatch
import os

from promptline import ContextPlugin, PluginConfig, Tool, ToolPlugin, ToolResult

DEFAULT_DIR = "/tmp/promptline-demo/project"
MAX_FILE_BYTES = 1_000_000      # larger files are skipped by search
MAX_HITS = 50
MAX_READ_CHARS = 20_000
SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox"}


def search_files(root: str, query: str, pattern: str = "*", limit: int = MAX_HITS) -> list[str]:
    """`relative/path:line: text` for each line of a text file under root containing query."""
    needle = query.lower()
    hits: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if not fnmatch.fnmatch(rel, pattern) and not fnmatch.fnmatch(name, pattern):
                continue
            path = os.path.join(dirpath, name)
            try:
                if os.path.getsize(path) > MAX_FILE_BYTES:
                    continue
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            if b"\0" in data:
                continue   # binary
            for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                if needle in line.lower():
                    hits.append(f"{rel}:{number}: {line.strip()[:200]}")
                    if len(hits) >= limit:
                        return hits
    return hits


class SearchTool(Tool):
    name = "search"
    description = "Find lines containing a word in the project's text files (optionally only files matching a glob)"
    parameters = {"type": "object",
                  "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 200},
                                 "glob": {"type": "string", "default": "*", "maxLength": 200,
                                          "description": "e.g. *.py or src/*.md"}},
                  "required": ["query"], "additionalProperties": False}

    def __init__(self, plugin: ProjectSearchPlugin) -> None:
        self.plugin = plugin

    def execute(self, args):
        hits = search_files(self.plugin.project_dir, args["query"], args.get("glob") or "*")
        return ToolResult.success("\n".join(hits) or "no match", data={"hits": len(hits)})


class ReadTool(Tool):
    name = "read"
    description = "Read one file of the project (path relative to the project directory)"
    parameters = {"type": "object", "properties": {"path": {"type": "string", "minLength": 1}},
                  "required": ["path"], "additionalProperties": False}

    def __init__(self, plugin: ProjectSearchPlugin) -> None:
        self.plugin = plugin

    def execute(self, args):
        path = os.path.join(self.plugin.project_dir, os.path.expanduser(args["path"]))
        with open(os.path.normpath(path), encoding="utf-8", errors="replace") as fh:
            return ToolResult.success(fh.read(MAX_READ_CHARS))


class ProjectSearchPlugin(ToolPlugin, ContextPlugin):
    def initialize(self, config: PluginConfig) -> None:
        self.config = config
        self.project_dir = os.path.abspath(os.path.expanduser(config.get("project_dir") or DEFAULT_DIR))

    def tools(self):
        return [SearchTool(self), ReadTool(self)]

    def get_context(self, query: str) -> str:
        """The lines of the project matching any word of the query (at most 20)."""
        words = [w for w in query.split() if len(w) > 2] or [query]
        seen: list[str] = []
        for word in words:
            for hit in search_files(self.project_dir, word, limit=20):
                if hit not in seen:
                    seen.append(hit)
        if not seen:
            return ""
        return f"Matches in {self.project_dir}:\n" + "\n".join(seen[:20])
