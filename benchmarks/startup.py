"""Start-up costs against a bare interpreter, measured side by side in one run.

    python benchmarks/startup.py [--runs 5]

Reports, each next to `python -I -S -c pass` (the floor):
- modules loaded in a sandboxed Python child before plugin code runs, and whether the
  native doors (ctypes, _posixsubprocess) are among them;
- process-plugin start-up: load to first `tools/list` answer (shim, Landlock, seccomp,
  bootstrap, policy compile, plugin import);
- `promptline --help` wall time.
Medians of --runs; machines here are noisy, so read the ratios, not a threshold.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "sandbox"))

from sandbox_helpers import load, write_python_plugin  # noqa: E402

PROBE = '''
import sys
AT_IMPORT = sorted(sys.modules)
def probe(arg):
    return AT_IMPORT
'''


def wall(argv: list[str], runs: int) -> float:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    runs = ap.parse_args().runs
    bare = [sys.executable, "-I", "-S", "-c", "pass"]
    bare_mods = int(subprocess.run([sys.executable, "-I", "-S", "-c", "import sys; print(len(sys.modules))"],
                                   capture_output=True, text=True, check=True).stdout)
    bare_s = wall(bare, runs)

    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    root = write_python_plugin(tmp / "plugins", "bench-start", PROBE)
    starts, mods = [], []
    for _ in range(runs):
        loaded = load(root, tmp)
        t = time.perf_counter()
        loaded.plugin.tools()
        starts.append(time.perf_counter() - t)
        mods = loaded.plugin.call_tool("run", {"arg": 0}).data
        loaded.plugin.shutdown()
    start_s = statistics.median(starts)
    doors = [m for m in ("ctypes", "_ctypes", "_posixsubprocess", "subprocess") if m in mods]

    help_s = wall([sys.executable, "-m", "promptline", "--help"], runs)
    print(f"{'measure':<44} {'ours':>10} {'bare python':>12} {'ratio':>7}")
    print(f"{'modules in the child before plugin code':<44} {len(mods):>10} {bare_mods:>12} "
          f"{len(mods) / bare_mods:>6.1f}x")
    print(f"{'native doors preloaded (native: false)':<44} {', '.join(doors) or 'none':>10}")
    print(f"{'process plugin start-up (s)':<44} {start_s:>10.3f} {bare_s:>12.3f} {start_s / bare_s:>6.1f}x")
    print(f"{'promptline --help (s)':<44} {help_s:>10.3f} {bare_s:>12.3f} {help_s / bare_s:>6.1f}x")


if __name__ == "__main__":
    main()
