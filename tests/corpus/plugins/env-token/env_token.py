"""A granted environment variable."""

import hashlib
import os

from promptline import Tool, ToolError, ToolPlugin, ToolResult


class WhoAmI(Tool):
    name = "fingerprint"
    description = "Fingerprint of the configured token"

    def execute(self, args):
        token = os.environ.get("CORPUS_TOKEN")
        if token is None:
            raise ToolError("CORPUS_TOKEN is not set", kind="configuration")
        return ToolResult.success(hashlib.sha256(token.encode()).hexdigest()[:8])


class TokenPlugin(ToolPlugin):
    def tools(self):
        return [WhoAmI()]
