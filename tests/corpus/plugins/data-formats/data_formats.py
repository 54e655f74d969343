"""Read the same facts from JSON, CSV, XML and TOML files."""

import csv
import json
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

from promptline import Tool, ToolPlugin, ToolResult


class Summary(Tool):
    name = "summary"
    description = "Count records in every format"

    def __init__(self, root: Path):
        self.root = root

    def execute(self, args):
        data = self.root / "data"
        counts = {
            "json": len(json.loads((data / "items.json").read_text())),
            "csv": sum(1 for _ in csv.DictReader((data / "items.csv").open(newline=""))),
            "xml": len(ET.parse(data / "items.xml").getroot().findall("item")),
            "toml": len(tomllib.loads((data / "items.toml").read_text())["item"]),
        }
        return ToolResult.success(json.dumps(counts, sort_keys=True), data=counts)


class FormatsPlugin(ToolPlugin):
    def initialize(self, config):
        self.root = Path(config["workspace"])

    def tools(self):
        return [Summary(self.root)]
