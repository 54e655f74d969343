"""Process plugin call round trip (docs/design.md §12: under 0.5 ms) and start-up time.

    python benchmarks/process_call.py [--calls 2000]

Measures, in one run, with real sandboxed children (shim, Landlock, seccomp):
- `ping`: the bare JSON-RPC round trip through the host's MCP client;
- `tools/call` on a stdlib MCP server started as a `command:` plugin;
- `tools/call` on a Python plugin served by the bootstrap (in-child enforcer, JSON Schema
  validation of the arguments, async tool machinery);
and the time from load to first answer for each. Machines here are noisy: read ratios and
medians from the same run, never a pass/fail threshold.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "sandbox"))

from sandbox_helpers import load, write_command_plugin, write_python_plugin  # noqa: E402

ECHO_SERVER = '''
import json, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
for line in inp:
    m = json.loads(line)
    if "id" not in m:
        continue
    meth = m["method"]
    if meth == "initialize":
        r = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "e", "version": "1"}}
    elif meth == "tools/list":
        r = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
    elif meth == "tools/call":
        r = {"content": [{"type": "text", "text": m["params"]["arguments"]["text"]}]}
    else:
        r = {}
    out.write(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": r}).encode() + b"\\n")
    out.flush()
'''


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def report(name: str, samples: list[float]) -> None:
    s = sorted(samples)
    print(f"{name:<34} p50 {statistics.median(s):7.3f} ms   p90 {s[int(len(s) * 0.9)]:7.3f} ms   "
          f"mean {statistics.fmean(s):7.3f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    n = ap.parse_args().calls
    tmp = Path(tempfile.mkdtemp(prefix="bench-process-"))
    cmd = write_command_plugin(tmp / "plugins", "bench-cmd", ECHO_SERVER)
    py = write_python_plugin(tmp / "plugins", "bench-py", "def probe(arg):\n    return arg\n")

    c = load(cmd, tmp)
    t = time.perf_counter()
    c.plugin.tools()
    start_cmd = time.perf_counter() - t
    p = load(py, tmp)
    t = time.perf_counter()
    p.plugin.tools()
    start_py = time.perf_counter() - t
    try:
        client = c.plugin.ensure_started()
        for _ in range(200):   # warm up
            client.request("ping", timeout=5)
            c.plugin.call_tool("echo", {"text": "x"})
            p.plugin.call_tool("echo", {"text": "x"})
        print(f"process plugin round trips, {n} calls each (sandboxed children, Landlock ABI "
              f"{c.plugin.landlock_abi})")
        report("ping (client only)", timed(lambda: client.request("ping", timeout=5), n))
        report("tools/call, stdlib MCP server", timed(lambda: c.plugin.call_tool("echo", {"text": "hi"}), n))
        report("tools/call, Python plugin", timed(lambda: p.plugin.call_tool("echo", {"text": "hi"}), n))
        print(f"start-up to tools listed: command plugin {start_cmd * 1e3:.0f} ms, "
              f"Python plugin (bootstrap, policy compile) {start_py * 1e3:.0f} ms")
    finally:
        c.plugin.shutdown()
        p.plugin.shutdown()


if __name__ == "__main__":
    main()
