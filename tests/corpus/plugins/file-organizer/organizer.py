"""pathlib and shutil: copy an inbox, sort it by extension, clean up."""

import os
import shutil
from pathlib import Path

from promptline import Tool, ToolPlugin, ToolResult


class Organize(Tool):
    name = "organize"
    description = "Copy data/ to an inbox, sort it into folders, remove the inbox"

    def __init__(self, root: Path):
        self.root = root

    def execute(self, args):
        out = self.root / "out" / "organized"
        if out.exists():
            shutil.rmtree(out)
        inbox = out / "inbox"
        shutil.copytree(self.root / "data", inbox)
        for entry in os.scandir(inbox):
            if entry.is_file():
                folder = out / (Path(entry.name).suffix.lstrip(".") or "other")
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy2(entry, folder / entry.name)
        (out / "json" / "items.json").rename(out / "json" / "renamed.json")
        shutil.move(str(out / "csv"), str(out / "tables"))
        shutil.rmtree(inbox)
        layout = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        return ToolResult.success("\n".join(layout), data=layout)


class OrganizerPlugin(ToolPlugin):
    def initialize(self, config):
        self.root = Path(config["workspace"])

    def tools(self):
        return [Organize(self.root)]
