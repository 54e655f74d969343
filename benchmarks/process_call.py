"""Process plugin call round trip (docs/design.md §12: under 0.5 ms) and start-up time.

    python benchmarks/process_call.py [--calls 2000]

Measures, in one run, with real sandboxed children (shim, Landlock, seccomp):
- `ping`: the bare JSON-RPC round trip through the host's MCP client;
- `tools/call` on a stdlib MCP server started as a `command:` plugin;
- `tools/call` on a Python plugin served by the bootstrap (in-child enforcer, JSON Schema
  validation of the arguments, async tool machinery);
and the time from load to first answer for each (a Python plugin forked from the template
process and exec'd through the shim) — for every wall side by side: `process`
without its network namespace (seccomp and Landlock ports only, the fallback), `process`
with it (namespace, forwarder, egress proxy channel, exec guard) and `container`
(bubblewrap). Machines here are noisy: read ratios and medians from the same run, never a
pass/fail threshold.
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


WALLS = ("process, seccomp only", "process + netns", "container")


def _load(root: Path, tmp: Path, wall: str, template: bool = True):
    """Load ``root`` with the wall named ``wall`` (the first one switches the namespace off);
    ``template=False``: a Python plugin is exec'd through the shim, not forked."""
    from promptline.loaders import ContainerLoader, ProcessLoader
    if wall == "container":
        return load(root, tmp, loader=ContainerLoader())
    if wall == "process + netns":
        return load(root, tmp, loader=ProcessLoader(template=template))
    return load(root, tmp, loader=ProcessLoader(network_wall="seccomp-only", template=template))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--starts", type=int, default=5, help="start-ups measured per wall and kind")
    n = ap.parse_args().calls
    starts = ap.parse_args().starts
    tmp = Path(tempfile.mkdtemp(prefix="bench-process-"))
    print(f"process plugin round trips, {n} calls each, and start-up to tools listed (median of {starts})")
    rows = []
    for i, wall in enumerate(WALLS):
        cmd = write_command_plugin(tmp / f"plugins{i}", "bench-cmd", ECHO_SERVER)
        py = write_python_plugin(tmp / f"plugins{i}", "bench-py", "def probe(arg):\n    return arg\n")
        up = {}
        for kind, root, template in (("cmd", cmd, True), ("py", py, True), ("py exec", py, False)):
            samples = []
            for _ in range(starts):
                loaded = _load(root, tmp, wall, template)
                t = time.perf_counter()
                loaded.plugin.tools()
                samples.append((time.perf_counter() - t) * 1e3)
                loaded.plugin.shutdown()
            up[kind] = statistics.median(samples)
        c, p = _load(cmd, tmp, wall), _load(py, tmp, wall)
        try:
            client = c.plugin.ensure_started()
            p.plugin.tools()
            for _ in range(200):   # warm up
                client.request("ping", timeout=5)
                c.plugin.call_tool("echo", {"text": "x"})
                p.plugin.call_tool("echo", {"text": "x"})
            print(f"-- {wall}")
            report("  ping (client only)", timed(lambda cl=client: cl.request("ping", timeout=5), n))
            cmd_s = timed(lambda c=c: c.plugin.call_tool("echo", {"text": "hi"}), n)
            py_s = timed(lambda p=p: p.plugin.call_tool("echo", {"text": "hi"}), n)
            report("  tools/call, stdlib MCP server", cmd_s)
            report("  tools/call, Python plugin", py_s)
            rows.append((wall, statistics.median(cmd_s), statistics.median(py_s), up["cmd"], up["py"], up["py exec"]))
        finally:
            c.plugin.shutdown()
            p.plugin.shutdown()
    base = rows[0]
    print()
    print(f"{'wall':<24}{'call cmd p50':>14}{'call py p50':>14}{'start cmd':>12}{'start py':>12}"
          f"{'py exec':>11}   ratio to first row")
    for wall, cc, pc, sc, sp, se in rows:
        print(f"{wall:<24}{cc:>11.3f} ms{pc:>11.3f} ms{sc:>9.0f} ms{sp:>9.0f} ms{se:>8.0f} ms   "
              f"call x{pc / base[2]:.2f}, start x{sp / base[4]:.2f}")
    print("start py: forked from the template process (container: exec'd); py exec: ProcessLoader(template=False)")


if __name__ == "__main__":
    main()
