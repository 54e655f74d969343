"""WebAssembly tool-call benchmark (docs/design.md §12: "wasm tool call (cached module): under 1 ms").

    python benchmarks/wasm_call.py            # 2,000 calls per case
    python benchmarks/wasm_call.py --quick    # 200 calls: a smoke run

Loads examples/wasm-wordcount through loaders._wasm.WasmLoader (a real policy, enforcer and
verified bytes), then times ``call_tool`` end to end: argument validation, a fresh wasm
instance with its WASI context (stdin, stdout/stderr capture, preopens, env), the module's
``_start`` (parse the request, count, print), and parsing and coercing the JSON response.
Also times loading: a cold compile, a load from the disk cache (a new loader), and a load
from the in-memory cache. Reports p50/p99/mean per case. No pass/fail on timings.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from promptline.enforcer import Enforcer  # noqa: E402
from promptline.loaders import DiscoveredPlugin, LoadContext, WasmLoader, read_manifest  # noqa: E402
from promptline.policy import load_policy_set  # noqa: E402
from promptline.sdk import PluginConfig  # noqa: E402

EXAMPLE = ROOT / "examples" / "wasm-wordcount"


def make_context(work: Path) -> LoadContext:
    plugin_root = work / "wasm-wordcount"
    shutil.copytree(EXAMPLE, plugin_root)
    docs = work / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("the quick brown fox\njumps over the lazy dog\n" * 20)
    manifest_path = plugin_root / "plugin.yaml"
    text = re.sub(r'read: \[[^\]]*\]', "read: " + json.dumps([str(docs)]), manifest_path.read_text())
    manifest_path.write_text(text)
    policy = work / "policy.yaml"
    policy.write_text(json.dumps({"apiVersion": "promptline/v1", "kind": "Policy", "layer": "org", "rules": []}))
    ps = load_policy_set([str(policy)], [str(manifest_path)])
    manifest = read_manifest(manifest_path)
    plugin = DiscoveredPlugin(manifest.id, manifest, manifest_path, plugin_root, "directory", "benchmark",
                              "wasm", wasm=plugin_root / "wordcount.wasm")
    files = {p.name: p.read_bytes() for p in plugin_root.iterdir() if p.is_file()}
    return LoadContext(plugin, ps.plugins[manifest.id], Enforcer(ps), PluginConfig(manifest.id),
                       files=files, policy_files=(str(policy),))


def timed(fn, n: int) -> list[float]:
    out = []
    gc.disable()
    try:
        for _ in range(n):
            t0 = time.perf_counter_ns()
            fn()
            out.append((time.perf_counter_ns() - t0) / 1e6)
    finally:
        gc.enable()
    return out


def row(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p50 = ms[len(ms) // 2]
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"{name:<44} {p50:>8.3f} {p99:>8.3f} {statistics.fmean(ms):>8.3f} {len(ms):>7}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    calls = 200 if args.quick else args.calls
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ctx = make_context(work)
        cache = work / "cache"

        t0 = time.perf_counter()
        loader = WasmLoader(cache_dir=cache)
        plugin = loader.load(ctx)
        cold = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        WasmLoader(cache_dir=cache).load(ctx)
        disk = (time.perf_counter() - t0) * 1e3
        warm = timed(lambda: loader.load(ctx), 20)

        docs = str(work / "docs" / "a.txt")
        small = {"text": "hello wasm world\n"}
        big = {"text": "lorem ipsum dolor sit amet " * 4000}   # ~108 KB of arguments
        for _ in range(50):   # warm up (epoch timer thread, allocator)
            plugin.call_tool("count", small)
        assert plugin.call_tool("count_file", {"path": docs}).ok
        cases = [
            ("call_tool count (17 B of text)", lambda: plugin.call_tool("count", small)),
            ("call_tool count_file (preopened dir, 880 B)", lambda: plugin.call_tool("count_file", {"path": docs})),
            ("call_tool count (108 KB of text)", lambda: plugin.call_tool("count", big)),
        ]
        print(f"wasm tool calls, cached module ({calls} calls each); times in ms")
        print(f"{'case':<44} {'p50':>8} {'p99':>8} {'mean':>8} {'n':>7}")
        for name, fn in cases:
            print(row(name, timed(fn, calls if "108" not in name else max(50, calls // 10))))
        print()
        print(f"loading (ms): cold compile + tools/list {cold:.1f}; new loader from disk cache {disk:.1f}; "
              f"same loader (memory cache) p50 {sorted(warm)[len(warm) // 2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
