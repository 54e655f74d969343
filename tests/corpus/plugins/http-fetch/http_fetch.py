"""Fetch a URL twice: once with urllib.request, once with http.client.

In the process sandbox the network is the egress proxy announced in HTTP_PROXY (README):
urllib finds it itself; http.client is pointed at it (an absolute URL to an HTTP proxy)."""

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
        proxy = urllib.request.getproxies().get("http")
        if proxy:
            p = urllib.parse.urlsplit(proxy)
            conn = http.client.HTTPConnection(p.hostname, p.port, timeout=10)
            target = f"{parts.scheme}://{parts.netloc}{parts.path}?again=1"
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            target = parts.path + "?again=1"
        try:
            conn.request("GET", target)
            second = json.loads(conn.getresponse().read().decode())
        finally:
            conn.close()
        return ToolResult.success(f"{first['path']} {second['path']}", data=[first, second])


class FetchPlugin(ToolPlugin):
    def tools(self):
        return [Fetch()]
