"""A plugin shipping its dependency in _vendor/ (put on sys.path by the plugin itself)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_vendor"))

import tinyslug  # noqa: E402 - vendored

from promptline import Tool, ToolPlugin, ToolResult  # noqa: E402


class Slugs(Tool):
    name = "slugs"
    description = "Slug of every title in titles.txt"

    def __init__(self, root: Path):
        self.root = root

    def execute(self, args):
        titles = (self.root / "data" / "titles.txt").read_text(encoding="utf-8").splitlines()
        slugs = [tinyslug.slugify(t) for t in titles if t.strip()]
        return ToolResult.success(" ".join(slugs), data=slugs)


class SlugPlugin(ToolPlugin):
    def initialize(self, config):
        self.root = Path(config["workspace"])

    def tools(self):
        return [Slugs(self.root)]
