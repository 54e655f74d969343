"""An async tool: asyncio.gather over asyncio.to_thread reads, with a small sleep."""

import asyncio
from pathlib import Path

from promptline import Tool, ToolPlugin, ToolResult


class CountWords(Tool):
    name = "count_words"
    description = "Count the words of the named text files (every one by default), concurrently"
    parameters = {"type": "object", "properties": {"names": {"type": "array", "items": {"type": "string"}}}}

    def __init__(self, root: Path):
        self.root = root

    async def execute(self, args):
        names = args.get("names")
        texts = self.root / "texts"
        files = [texts / n for n in names] if names else sorted(texts.glob("*.txt"))

        async def words(p):
            await asyncio.sleep(0)
            return len((await asyncio.to_thread(p.read_text)).split())

        counts = await asyncio.gather(*(words(p) for p in files))
        return ToolResult.success(str(sum(counts)), data=dict(zip([p.name for p in files], counts)))


class AsyncPlugin(ToolPlugin):
    async def initialize(self, config):
        self.root = Path(config["workspace"])

    def tools(self):
        return [CountWords(self.root)]
