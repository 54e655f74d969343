"""Imports inside the tool (so a sandboxed child imports them for the first time under the
guard), then uses each a little; writes to PluginConfig.data_dir, which needs no grant."""

import importlib

from promptline import Tool, ToolPlugin, ToolResult

MODULES = ("sqlite3", "http.client", "urllib.request", "xml.etree.ElementTree", "tomllib",
           "statistics", "zoneinfo", "decimal", "csv", "zipfile", "tarfile", "gzip", "asyncio",
           "concurrent.futures", "logging.handlers", "json", "email.message", "mimetypes",
           "ssl", "uuid", "fractions", "difflib", "textwrap", "string", "heapq", "bisect",
           "multiprocessing", "readline", "unicodedata", "secrets", "base64", "pickle", "shlex")


class Tour(Tool):
    name = "tour"
    description = "Import and use the standard library"

    def __init__(self, plugin):
        self.plugin = plugin

    def execute(self, args):
        for name in MODULES:
            importlib.import_module(name)
        import mimetypes
        import sqlite3
        import ssl
        import zoneinfo
        mimetypes.init()
        ctx = ssl.create_default_context()
        db = self.plugin.config.data_dir / "tour.sqlite"
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
            conn.execute("INSERT INTO t VALUES (1)")
            n = conn.execute("SELECT count(*) FROM t").fetchone()[0]
        conn.close()
        out = {"modules": len(MODULES), "mime": mimetypes.guess_type("a.json")[0],
               "tz": str(zoneinfo.ZoneInfo("Asia/Tokyo")), "certs": ctx.cert_store_stats()["x509_ca"] > 0,
               "rows": n}
        return ToolResult.success(str(out), data=out)


class TourPlugin(ToolPlugin):
    def tools(self):
        return [Tour(self)]
