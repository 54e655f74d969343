"""Overhead of the enforcer's audit hook, as ratios measured in one run (docs/design.md §12).

    python benchmarks/overhead.py [--files 10000] [--repeat 5]

Measures, best of ``--repeat`` runs each:
  1. open()+close() in host code, without the hook and with the enforcer installed
     (a) no in-process plugin registered, (b) an in-process plugin registered, so frame
     provenance runs for host events (target < 1.05x);
  2. open()+close() in plugin context, allowed, cache hit (target < 1.5x);
  3. a context plugin reading N distinct files (open+read+close; target < 1.5x);
  4. per-event cost of the hook for events it ignores, and for mapped events in host code.
The baseline numbers are taken before the hook is installed (it cannot be removed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def best(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--loops", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    root = tempfile.mkdtemp(prefix="pl-bench-")
    data = os.path.join(root, "data")
    os.makedirs(data)
    for i in range(args.files):
        with open(os.path.join(data, f"f{i:05d}.txt"), "w") as fh:
            fh.write("x" * 512)
    one = os.path.join(data, "f00000.txt")
    files = [os.path.join(data, f"f{i:05d}.txt") for i in range(args.files)]
    plugin_dir = os.path.join(root, "plugin")
    os.makedirs(plugin_dir)
    with open(os.path.join(plugin_dir, "plugin.yaml"), "w") as fh:
        json.dump({"id": "ctx", "name": "ctx", "version": "1.0.0", "description": "bench",
                   "requires": ">=0.1", "types": ["context"], "entry": {"python": "ctx:P"},
                   "sandbox": "none", "capabilities": {"filesystem": {"read": [data + "/"]}}}, fh)
    with open(os.path.join(root, "policy.yaml"), "w") as fh:
        json.dump({"apiVersion": "promptline/v1", "kind": "Policy", "layer": "org",
                   "settings": {"trust": ["ctx"]}, "rules": []}, fh)

    loops = args.loops

    def open_close():
        for _ in range(loops):
            open(one).close()

    def read_all():
        for p in files:
            with open(p) as fh:
                fh.read()

    def ignored_events():
        audit = sys.audit
        for _ in range(loops):
            audit("promptline.bench.ignored")

    # warm up the page cache and the interpreter
    read_all()
    open_close()
    base_open = best(open_close, args.repeat)
    base_read = best(read_all, args.repeat)
    base_event = best(ignored_events, args.repeat)

    from promptline.enforcer import Enforcer
    from promptline.policy import load_policy_set
    ps = load_policy_set([os.path.join(root, "policy.yaml")], [os.path.join(plugin_dir, "plugin.yaml")])
    backend = ps.backend.name

    class NoDirs:  # the same policy without plugin directories: no frame provenance
        plugins = {}
        version = ps.version
        decide = ps.decide

    host_only = Enforcer(NoDirs()).install()
    host_open_nodirs = best(open_close, args.repeat)
    hook_event = best(ignored_events, args.repeat)
    host_only.uninstall()

    enf = Enforcer(ps).install()
    host_open_dirs = best(open_close, args.repeat)

    with enf.guard("ctx"):
        open_close()
        plugin_open = best(open_close, args.repeat)

    def plugin_read_all():
        with enf.guard("ctx"):
            read_all()
    plugin_read = best(plugin_read_all, 1)  # distinct files: the first pass is the honest one
    plugin_read_again = best(plugin_read_all, args.repeat)
    enf.uninstall()

    us = 1e6
    rows = [
        ("host open+close, enforcer installed, no in-process plugin", host_open_nodirs / base_open, 1.05),
        ("host open+close, in-process plugin registered (provenance)", host_open_dirs / base_open, 1.05),
        ("plugin open+close, allowed, cache hit", plugin_open / base_open, 1.5),
        (f"plugin reading {args.files} distinct files (first pass)", plugin_read / base_read, 1.5),
        (f"plugin reading {args.files} distinct files (again, cached)", plugin_read_again / base_read, 1.5),
    ]
    print(f"python {sys.version.split()[0]}, policy backend {backend}")
    print(f"baseline open+close: {base_open / loops * us:.2f} us; read of one 512-byte file: "
          f"{base_read / args.files * us:.2f} us")
    for name, ratio, target in rows:
        print(f"{name:62s} {ratio:5.2f}x  (target < {target}x) {'ok' if ratio < target else 'MISSED'}")
    print(f"{'per-event cost of the hook for an ignored event':62s} "
          f"{(hook_event - base_event) / loops * us * 1000:6.0f} ns")
    print(f"{'per-event cost in plugin context, cached allow (open)':62s} "
          f"{(plugin_open - base_open) / loops * us * 1000:6.0f} ns")


if __name__ == "__main__":
    main()
