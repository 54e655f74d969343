"""Process-plugin start-up time and memory against a bare interpreter, side by side in one run.

    python benchmarks/startup.py [--runs 15] [--window 1.0]

Reports, each next to its floor:
- process-plugin start (load to first `tools/list` answer: every wall, the bootstrap, the
  plugin's policy compile, the plugin import), p50/p90 — forked from the template process
  (the default) and exec'd through the shim (``ProcessLoader(template=False)``) — against a
  bare `python -I -S -c pass` and `python -I -c "import json"`;
- private memory per plugin: USS (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup)
  summed over every process of the plugin's process group (its PID-namespace init and the
  plugin; exec'd: also the shim waiting outside), and "own": the resident pages that no
  process outside the group maps (pagemap + kpagecount: it also counts the pages the
  group's processes share among themselves), against the same two bare children; the
  template's own memory, paid once per host, separately;
- how many process plugins start within --window s: one after the other (each left
  running), and 24 begun at once (one thread each);
- modules loaded in the child before plugin code, and whether the native doors are among them;
- `promptline --help` wall time.
Machines here are noisy (2 shared cores): read the ratios of one run, not a threshold.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "sandbox"))

from sandbox_helpers import load, write_python_plugin  # noqa: E402

from promptline.loaders import ProcessLoader  # noqa: E402

PROBE = '''
import sys
AT_IMPORT = sorted(sys.modules)
def probe(arg):
    return AT_IMPORT
'''
DOORS = ("ctypes", "_ctypes", "_posixsubprocess", "subprocess")


def uss(pid: int) -> int:
    """Private bytes of one process (0 when it is gone)."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith(("Private_Clean:", "Private_Dirty:", "Private_Hugetlb:")):
                    total += int(line.split()[1]) * 1024
    except OSError:
        return 0
    return total


def group(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            out.append(int(name))
    return out


PAGE = os.sysconf("SC_PAGE_SIZE")


def group_private(pids: list[int]) -> int:
    """Bytes of resident pages mapped by ``pids`` and by no other process (pagemap +
    kpagecount, root only): a plugin's memory when its own processes share some pages with
    each other, which no single process's USS counts."""
    import collections
    import struct
    seen: collections.Counter[int] = collections.Counter()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
                for line in maps:
                    lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                    try:
                        pagemap.seek(lo // PAGE * 8)
                        data = pagemap.read((hi - lo) // PAGE * 8)
                    except OSError:
                        continue
                    for (entry,) in struct.iter_unpack("=Q", data):
                        if entry >> 63:   # present in RAM
                            seen[entry & ((1 << 55) - 1)] += 1
        except OSError:
            continue
    total = 0
    with open("/proc/kpagecount", "rb") as counts:
        for pfn, n in seen.items():
            counts.seek(pfn * 8)
            if struct.unpack("=Q", counts.read(8))[0] <= n:
                total += PAGE
    return total


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        return int(fh.read().rsplit(b")", 1)[1].split()[1])


def plugin_uss(loaded) -> int:
    return sum(uss(p) for p in group(loaded.plugin.pid))


def bare(code: str, flags: list[str], runs: int) -> tuple[list[float], int, int]:
    """Start times of a bare child running ``code``, and its USS once it waits on stdin."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, *flags, "-c", code], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    p = subprocess.Popen([sys.executable, *flags, "-c", code + "; import sys; sys.stdout.write('r'); "
                          "sys.stdout.flush(); sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    p.stdout.read(1)
    mem, own = uss(p.pid), group_private([p.pid])
    p.stdin.close()
    p.wait()
    return times, mem, own


def plugin_starts(root: Path, tmp: Path, runs: int, template: bool) -> tuple[list[float], list[int], list[int], list[str]]:
    starts, mems, owns, mods = [], [], [], []
    for _ in range(runs):
        loaded = load(root, tmp, loader=ProcessLoader(template=template))
        t = time.perf_counter()
        loaded.plugin.tools()
        starts.append(time.perf_counter() - t)
        mods = loaded.plugin.call_tool("run", {"arg": 0}).data
        mems.append(plugin_uss(loaded))
        owns.append(group_private(group(loaded.plugin.pid)))
        loaded.plugin.shutdown()
    return starts, mems, owns, mods


def within(root: Path, tmp: Path, window: float, template: bool, most: int = 60) -> tuple[int, int]:
    """Plugins started one after the other (each left running) within ``window`` seconds,
    and their mean USS while all of them run. The host side of each load (discovery, its
    policy compile) happens before the clock starts: this counts process starts."""
    waiting = [load(root, tmp, loader=ProcessLoader(template=template)) for _ in range(most)]
    running = []
    count = 0
    t0 = time.perf_counter()
    try:
        for loaded in waiting:
            loaded.plugin.tools()
            running.append(loaded)
            elapsed = time.perf_counter() - t0
            count += elapsed <= window
            if elapsed >= window:
                break
        mean = int(statistics.fmean(plugin_uss(x) for x in running))
        return count, mean
    finally:
        for x in waiting:
            x.plugin.shutdown()


PARALLEL = 24


def within_parallel(root: Path, tmp: Path, window: float, template: bool, most: int = PARALLEL) -> int:
    """Plugins whose start (begun all at once, one thread each) finished within ``window`` s
    (an overloaded start may time out: its warning is not printed, it is not counted)."""
    import logging
    import threading
    logging.getLogger("promptline.process").setLevel(logging.CRITICAL)
    waiting = [load(root, tmp, loader=ProcessLoader(template=template)) for _ in range(most)]
    done: list[float] = []
    t0 = time.perf_counter()

    def start(loaded) -> None:
        try:
            loaded.plugin.tools()
            done.append(time.perf_counter() - t0)
        except Exception:  # noqa: BLE001 - a start that failed is not counted
            pass
    threads = [threading.Thread(target=start, args=(x,), daemon=True) for x in waiting]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=max(0.0, t0 + window + 30 - time.perf_counter()))
    for x in waiting:
        x.plugin.shutdown()
    logging.getLogger("promptline.process").setLevel(logging.NOTSET)
    return sum(1 for d in done if d <= window)


def p(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * q))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--window", type=float, default=1.0)
    args = ap.parse_args()
    runs = args.runs
    floor_s, floor_mem, floor_own = bare("pass", ["-I", "-S"], runs)
    json_s, json_mem, json_own = bare("import json", ["-I"], runs)
    bare_mods = int(subprocess.run([sys.executable, "-I", "-S", "-c", "import sys; print(len(sys.modules))"],
                                   capture_output=True, text=True, check=True).stdout)

    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    root = write_python_plugin(tmp / "plugins", "bench-start", PROBE)
    t = time.perf_counter()
    first = load(root, tmp)           # starts the template process (once per host)
    first.plugin.tools()
    first_s = time.perf_counter() - t
    tpl = parent(first.plugin.pid)   # a forked plugin's parent is the template process
    first.plugin.shutdown()
    tpl_mem = uss(tpl)               # no plugin shares its pages now

    fork_s, fork_mem, fork_own, mods = plugin_starts(root, tmp, runs, True)
    exec_s, exec_mem, exec_own, _ = plugin_starts(root, tmp, max(3, runs // 3), False)
    fork_n, fork_many = within(root, tmp, args.window, True)
    exec_n, exec_many = within(root, tmp, args.window, False)
    fork_par, exec_par = (within_parallel(root, tmp, args.window, t) for t in (True, False))
    doors = [m for m in DOORS if m in mods]
    help_s = statistics.median(bare_times([sys.executable, "-m", "promptline", "--help"], 5))

    mb = 1024 * 1024
    fl, js = statistics.median(floor_s), statistics.median(json_s)
    print(f"process plugin start and memory (runs: {runs} forked, {len(exec_s)} exec'd; window {args.window:g} s)")
    print(f"{'':<34}{'p50 ms':>9}{'p90 ms':>9}{'USS MB':>9}{'own MB':>9}   {'vs python -S -c pass':>22} "
          f"{'vs import json':>16}")
    rows = [("bare python -I -S -c pass", floor_s, floor_mem, floor_own),
            ('bare python -I -c "import json"', json_s, json_mem, json_own),
            ("plugin, forked from the template", fork_s, statistics.median(fork_mem), statistics.median(fork_own)),
            ("plugin, exec'd through the shim", exec_s, statistics.median(exec_mem), statistics.median(exec_own))]
    for name, ts, mem, own in rows:
        m = statistics.median(ts)
        print(f"{name:<34}{m * 1e3:>9.1f}{p(ts, 0.9) * 1e3:>9.1f}{mem / mb:>9.1f}{own / mb:>9.1f}   "
              f"{m / fl:>10.1f}x time {mem / floor_mem:>5.1f}x mem {m / js:>6.1f}x {mem / json_mem:>5.1f}x")
    print(f"{'template process (once per host)':<34}{first_s * 1e3:>9.1f}{'':>9}{tpl_mem / mb:>9.1f}{'':>9}   "
          "first plugin start incl. the template's own start; its USS alone")
    print("USS: private pages summed over the plugin's processes; own: pages no process outside them maps "
          "(also counts what they share among themselves)")
    print(f"plugins started within {args.window:g} s, one after the other, all left running: "
          f"forked {fork_n} (mean USS {fork_many / mb:.1f} MB), exec'd {exec_n} (mean USS {exec_many / mb:.1f} MB)")
    print(f"plugins started within {args.window:g} s, {PARALLEL} begun at once: forked {fork_par}, exec'd {exec_par}")
    worst = max(statistics.median(fork_mem), statistics.median(fork_own))
    print(f"targets: start p50 <= 150 ms: forked {statistics.median(fork_s) * 1e3:.0f} ms "
          f"({'met' if statistics.median(fork_s) <= 0.15 else 'missed'}); private memory <= 15 MB: forked "
          f"{worst / mb:.1f} MB, the larger of USS and own ({'met' if worst <= 15 * mb else 'missed'})")
    print()
    print(f"{'modules in the child before plugin code':<44} {len(mods):>10} {bare_mods:>12} "
          f"{len(mods) / bare_mods:>6.1f}x")
    print(f"{'native doors preloaded (native: false)':<44} {', '.join(doors) or 'none':>10}")
    print(f"{'promptline --help (s)':<44} {help_s:>10.3f} {fl:>12.3f} {help_s / fl:>6.1f}x")


def bare_times(argv: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out


if __name__ == "__main__":
    main()
