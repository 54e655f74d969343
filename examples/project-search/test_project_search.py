"""Unit tests for project-search, run directly: python -m pytest examples/project-search/
(CI loads the signed plugin through the PluginManager, refusals included, in tests/examples/)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from project_search_plugin import ProjectSearchPlugin, search_files  # noqa: E402

from promptline import PluginConfig  # noqa: E402


def test_search_and_context(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "parser.py").write_text("def parse():\n    pass\n")
    (tmp_path / "blob.bin").write_bytes(b"parse\0\1")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("parse")
    assert search_files(str(tmp_path), "PARSE") == ["src/parser.py:1: def parse():"]
    assert search_files(str(tmp_path), "parse", "*.md") == []
    plugin = ProjectSearchPlugin()
    plugin.initialize(PluginConfig("project-search", {"project_dir": str(tmp_path)}))
    assert "src/parser.py:1" in plugin.get_context("the parse function")
    assert plugin.get_context("nothing-like-this") == ""
