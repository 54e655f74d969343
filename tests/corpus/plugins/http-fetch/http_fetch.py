"""Fetch a URL twice: once with urllib.request, once with http.client."""

import http.client
import json
import urllib.parse
import urllib.request

from promptline import Tool, ToolPlugin, ToolResult


class Fetch(Tool):
    name = "fetch"
    description = "GET a URL (urllib) and the same path with http.client"
    parameters = {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}

    def execute(self, args):
        url = args["url"]
        with urllib.request.urlopen(url, timeout=10) as resp:
            first = json.loads(resp.read().decode())
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            conn.request("GET", parts.path + "?again=1")
            second = json.loads(conn.getresponse().read().decode())
        finally:
            conn.close()
        return ToolResult.success(f"{first['path']} {second['path']}", data=[first, second])


class FetchPlugin(ToolPlugin):
    def tools(self):
        return [Fetch()]
