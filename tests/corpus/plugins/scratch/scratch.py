"""tempfile in the workspace: directories, named files, mkstemp, spooled files."""

import os
import tempfile
from pathlib import Path

from promptline import Tool, ToolPlugin, ToolResult


class Scratch(Tool):
    name = "scratch"
    description = "Write and read back temporary files under the workspace"
    parameters = {"type": "object", "properties": {"default_tmp": {"type": "boolean"}}}

    def __init__(self, root: Path):
        self.root = root

    def execute(self, args):
        base = None if args.get("default_tmp") else self.root / "out"
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        seen = []
        with tempfile.TemporaryDirectory(dir=base) as d:
            (Path(d) / "a.txt").write_text("alpha")
            seen.append((Path(d) / "a.txt").read_text())
        with tempfile.NamedTemporaryFile("w+", dir=base, suffix=".txt") as fh:
            fh.write("beta")
            fh.seek(0)
            seen.append(fh.read())
        fd, name = tempfile.mkstemp(dir=base)
        os.write(fd, b"gamma")
        os.close(fd)
        seen.append(Path(name).read_text())
        os.unlink(name)
        with tempfile.SpooledTemporaryFile(max_size=4, dir=base) as sp:
            sp.write(b"delta-rolled-over")
            sp.seek(0)
            seen.append(sp.read().decode())
        return ToolResult.success(" ".join(seen), data=seen)


class ScratchPlugin(ToolPlugin):
    def initialize(self, config):
        self.root = Path(config["workspace"])

    def tools(self):
        return [Scratch(self.root)]
