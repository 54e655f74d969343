"""concurrent.futures.ThreadPoolExecutor doing the reads."""

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from promptline import Tool, ToolPlugin, ToolResult


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


class HashAll(Tool):
    name = "hash_all"
    description = "SHA-256 of the named text files (every one by default), four at a time"
    parameters = {"type": "object", "properties": {"names": {"type": "array", "items": {"type": "string"}}}}

    def __init__(self, root: Path):
        self.root = root

    def execute(self, args):
        names = args.get("names")
        texts = self.root / "texts"
        files = [texts / n for n in names] if names else sorted(texts.glob("*.txt"))
        with ThreadPoolExecutor(max_workers=4) as pool:
            digests = list(pool.map(digest, files))
        return ToolResult.success(" ".join(digests), data=dict(zip([p.name for p in files], digests)))


class ThreadPlugin(ToolPlugin):
    def initialize(self, config):
        self.root = Path(config["workspace"])

    def tools(self):
        return [HashAll(self.root)]
