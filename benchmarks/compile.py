"""Compile time of a large policy: N org rules over the 20 plugins of the decision workload.

    python benchmarks/compile.py [--rules 1000] [--rounds 3] [--backend cel-expr-python]

Real files (one org policy, 20 plugin.yaml), the real ``load_policy_set``. Reported per round,
best of ``--rounds``, with every compile cache emptied before a cold round:

- ``load``: read, validate and compile every rule (backend compile + static check);
- ``plans``: one decision per (plugin, action), which builds its plan: the rules that apply
  translated into the native tier (an org rule applies to all 20 plugins);
- ``warm``: ``load`` again with the caches kept (a reload that changed nothing);
- ``lark parses``: how often the one CEL parser ran, so a second parse of the same text shows
  up as a number, not only as time.
Wall time and, beside it, CPU time of this process (steadier on a shared machine). There is
no pass/fail on timings.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from workload import SEED, make_plugins  # noqa: E402

from promptline.policy import (  # noqa: E402
    ACTIONS,
    Request,
    available_backends,
    cel_parse_count,
    clear_compile_caches,
    load_policy_set,
)


def rule_cel(i: int) -> str:
    """Ten rule shapes, every text distinct; one in ten reads `plugin` (translated per plugin)."""
    return [
        f'within(request.path, "/srv/data{i}")',
        f'host_matches(request.host, "*.svc{i}.example.com") && request.port == 443',
        f'env_matches(request.name, "APP{i}_*")',
        f'request.argv == ["tool{i}", "run"]',
        f'glob(request.path, "/home/*/proj{i}/**/*.key")',
        f'in_cidr(request.host, "10.{i % 250}.0.0/16") || request.host == "h{i}.internal"',
        f'size(request.argv) > 0 && request.argv[0] == "bin{i}"',
        f'request.path.startsWith("/var/log/app{i}/") && !request.path.endsWith(".gz")',
        f'request.tool == "tool{i}" && request.plugin != "plug-00"',
        f'!plugin.trusted && within(request.path, "/opt/vendor{i}")',
    ][i % 10]


def policy_text(rules: int) -> str:
    out = ["apiVersion: promptline/v1", "kind: Policy", "layer: org", "rules:"]
    for i in range(rules):
        effect = ("deny", "ask", "allow")[i % 3]
        out += [f"  - id: r{i}", f"    effect: {effect}", f"    when: '{rule_cel(i)}'"]
    return "\n".join(out) + "\n"


def write_files(directory: str, rules: int) -> tuple[str, list[str]]:
    import yaml

    pol = os.path.join(directory, "org.yaml")
    with open(pol, "w", encoding="utf-8") as fh:
        fh.write(policy_text(rules))
    os.chmod(pol, 0o644)
    manifests = []
    for p in make_plugins(random.Random(SEED)):
        d = os.path.join(directory, "plugins", p.id)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "plugin.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(p.manifest(), fh, sort_keys=False)
        manifests.append(path)
    return pol, manifests


def one_round(pol: str, manifests: list[str], backend: str) -> dict:
    clear_compile_caches()
    gc.collect()
    base = cel_parse_count()
    t0, c0 = time.perf_counter(), time.process_time()
    ps = load_policy_set([pol], manifests, backend=backend)
    t1, c1 = time.perf_counter(), time.process_time()
    load_parses = cel_parse_count() - base
    for pid in ps.plugins:
        for action in ACTIONS:   # the first decision of a (plugin, action) builds its plan
            ps.decide(Request(action, pid), use_cache=False)
    t2, c2 = time.perf_counter(), time.process_time()
    plan_parses = cel_parse_count() - base - load_parses
    load_policy_set([pol], manifests, backend=backend)
    t3, c3 = time.perf_counter(), time.process_time()
    return {"load": (t1 - t0) * 1e3, "plans": (t2 - t1) * 1e3, "warm": (t3 - t2) * 1e3,
            "load_cpu": (c1 - c0) * 1e3, "plans_cpu": (c2 - c1) * 1e3, "warm_cpu": (c3 - c2) * 1e3,
            "load_parses": load_parses, "plan_parses": plan_parses, "rules": len(ps.rules)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backend", default=None, help="default: the fastest installed")
    args = ap.parse_args()
    backend = args.backend or available_backends()[0]
    with tempfile.TemporaryDirectory(prefix="promptline-compile-") as d:
        os.chmod(d, 0o755)
        pol, manifests = write_files(d, args.rules)
        load_policy_set([], manifests[:1], backend=backend)   # backend and parser set up untimed
        runs = [one_round(pol, manifests, backend) for _ in range(args.rounds)]
    best = {k: min(r[k] for r in runs) for k in ("load", "plans", "warm", "load_cpu", "plans_cpu", "warm_cpu")}
    r = runs[-1]
    n = r["rules"]
    print(f"backend {backend}: {args.rules} org rules + {len(manifests)} manifests "
          f"({n} compiled rules), best of {args.rounds}; wall ms | cpu ms")
    rows = [("load (cold)", "load", f"{best['load_cpu'] * 1e3 / n:7.0f} cpu µs/rule   lark parses {r['load_parses']}"),
            ("plans (native)", "plans", f"{len(manifests) * len(ACTIONS)} plans       lark parses {r['plan_parses']}"),
            ("load (warm)", "warm", "")]
    for label, key, note in rows:
        print(f"  {label:15} {best[key]:9.1f} | {best[key + '_cpu']:9.1f}   {note}")
    print(f"  {'cold total':15} {best['load'] + best['plans']:9.1f} | {best['load_cpu'] + best['plans_cpu']:9.1f}")

if __name__ == "__main__":
    main()
