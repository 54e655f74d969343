"""Sandbox call round trips and start-up, side by side (docs/design.md §12; issue [5/7]):
process plugin call per wall (target < 0.5 ms), the egress proxy against a direct
connection, and wasm tool call with a cached module (< 1 ms).

    python benchmarks/sandbox.py [--calls N]

Runs benchmarks/process_call.py, egress.py and wasm_call.py one after the other in this
process's interpreter and prints their reports.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000, help="calls per measured case")
    args = ap.parse_args()
    rc = 0
    for script, target, extra in (
            ("process_call.py", "process call round trip: target < 0.5 ms (p50), per wall", ["--calls", str(args.calls)]),
            ("egress.py", "the egress proxy against a direct connection", []),
            ("wasm_call.py", "wasm call, cached module: target < 1 ms (p50)", ["--calls", str(args.calls)])):
        print(f"== {script} — {target}", flush=True)
        rc |= subprocess.run([sys.executable, os.path.join(HERE, script), *extra]).returncode
        print(flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
