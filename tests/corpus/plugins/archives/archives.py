"""zipfile, tarfile and gzip round trips."""

import gzip
import tarfile
import zipfile
from pathlib import Path

from promptline import Tool, ToolPlugin, ToolResult


class Pack(Tool):
    name = "pack"
    description = "Pack data/ three ways and read the archives back"

    def __init__(self, root: Path):
        self.root = root

    def execute(self, args):
        src, out = self.root / "data", self.root / "out" / "archives"
        out.mkdir(parents=True, exist_ok=True)
        files = sorted(p for p in src.iterdir() if p.is_file())
        with zipfile.ZipFile(out / "data.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for p in files:
                zf.write(p, p.name)
        with tarfile.open(out / "data.tar.gz", "w:gz") as tf:
            tf.add(src, arcname="data")
        with gzip.open(out / "items.json.gz", "wb") as gz:
            gz.write((src / "items.json").read_bytes())
        with zipfile.ZipFile(out / "data.zip") as zf:
            zipped = sorted(zf.namelist())
        with tarfile.open(out / "data.tar.gz") as tf:
            tarred = sorted(m.name for m in tf.getmembers() if m.isfile())
        same = gzip.decompress((out / "items.json.gz").read_bytes()) == (src / "items.json").read_bytes()
        return ToolResult.success(f"{len(zipped)} {len(tarred)} {same}", data=[zipped, tarred, same])


class ArchivePlugin(ToolPlugin):
    def initialize(self, config):
        self.root = Path(config["workspace"])

    def tools(self):
        return [Pack(self.root)]
