"""No capability at all: hashlib, decimal, zoneinfo, statistics, re, datetime."""

import datetime
import decimal
import hashlib
import re
import statistics
import zoneinfo

from promptline import Tool, ToolPlugin, ToolResult


class Crunch(Tool):
    name = "crunch"
    description = "A little of everything"
    parameters = {"type": "object", "properties": {"values": {"type": "array", "items": {"type": "number"}},
                                                   "zone": {"type": "string"}},
                  "required": ["values"]}

    def execute(self, args):
        values = args["values"]
        with decimal.localcontext() as ctx:
            ctx.prec = 10
            total = str(sum(decimal.Decimal(str(v)) for v in values))
        noon = datetime.datetime(2024, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo(args.get("zone", "Europe/Paris")))
        out = {
            "sha": hashlib.sha256(b"corpus").hexdigest()[:8],
            "total": total,
            "mean": statistics.fmean(values),
            "median": statistics.median(values),
            "utc": noon.astimezone(zoneinfo.ZoneInfo("UTC")).strftime("%H:%M"),
            "words": re.findall(r"[a-z]+", "one, two; three"),
        }
        return ToolResult.success(str(out), data=out)


class ComputePlugin(ToolPlugin):
    def tools(self):
        return [Crunch()]
