"""logging with logging.handlers.RotatingFileHandler."""

import logging
import logging.handlers
from pathlib import Path

from promptline import Tool, ToolPlugin, ToolResult


class Record(Tool):
    name = "record"
    description = "Log a message and return the log's last line"
    parameters = {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}

    def __init__(self, root: Path):
        self.root = root

    def execute(self, args):
        path = self.root / "out" / "logs" / "plugin.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        logger = logging.getLogger("corpus.log-writer")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=10_000, backupCount=2)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
        try:
            logger.info(args["message"])
        finally:
            logger.removeHandler(handler)
            handler.close()
        last = path.read_text().splitlines()[-1]
        return ToolResult.success(last)


class LogPlugin(ToolPlugin):
    def initialize(self, config):
        self.root = Path(config["workspace"])

    def tools(self):
        return [Record(self.root)]
