"""Rules-scaling benchmark: decide and compile cost at 10 / 100 / 1,000 / 10,000 rules.

    python benchmarks/scaling.py                 # 10, 100, 1000, 10000 rules
    python benchmarks/scaling.py --sizes 10 100  # a subset

An org policy of N rules in the common shapes (``within`` directories, ``glob`` with a literal
directory, ``host_matches`` exact and ``*.suffix``, ``in_cidr``, ``env_matches`` exact and
``PREFIX_*``, some AND-ed with a port; deny, ask and allow; every rule for every plugin) is
written as a real YAML file with 20 plugin.yaml and loaded with ``load_policy_set``. The
requests are a fixed mix of hits and misses; each is built (``Request(...)``) inside the timed
region. Reported per size: cold compile (compile caches cleared; CEL backend already set up),
a reload with one rule edited (caches warm), first decisions (plan build per (plugin, action)),
and the cache-miss p50 per decision, ours fused next to ours per-rule (the reference tier).
Each size's decisions are cross-checked fused vs per-rule. No pass/fail on timings.
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

from promptline.policy import (  # noqa: E402
    Request,
    _policyset,  # noqa: E402
    clear_compile_caches,
    load_policy_set,
)

SEED = 20261201
PLUGINS = [f"plugin-{i:02d}" for i in range(20)]


def rule_text(i: int) -> tuple[str, str, str]:
    """(effect, actions, when) of rule ``i``."""
    k = i % 9
    effect = ("deny", "allow", "allow", "ask", "allow", "deny", "allow", "allow", "allow")[k]
    if k in (0, 1, 2):
        d = f"/srv/t{i}/d{i % 97}"
        return effect, "[fs.read, fs.write]", f'within(request.path, "{d}")'
    if k == 3:
        return effect, "[fs.read]", f'glob(request.path, "/srv/g{i}/**/*.md")'
    if k == 4:
        return effect, "[net.connect]", f'host_matches(request.host, "*.h{i}.example.com") && request.port == 443'
    if k == 5:
        return effect, "[net.connect]", f'host_matches(request.host, "h{i}.example.net")'
    if k == 6:
        a, b = divmod(i, 256)
        return effect, "[net.connect]", f'in_cidr(request.host, "10.{a % 256}.{b}.0/24")'
    if k == 7:
        return effect, "[env.read]", f'env_matches(request.name, "APP{i}_*")'
    return effect, "[env.read]", f'env_matches(request.name, "VAR_{i}")'


def write_policy(n: int, directory: str, edit: int | None = None) -> tuple[str, list[str]]:
    """The policy directory (files of at most 2,000 rules: a policy file is capped at 1 MB)
    and the plugin.yaml paths."""
    policy = os.path.join(directory, "policy")
    os.makedirs(policy, exist_ok=True)
    for name in os.listdir(policy):
        os.unlink(os.path.join(policy, name))
    for start in range(0, max(n, 1), 2000):
        lines = ["apiVersion: promptline/v1", "kind: Policy", "layer: org", "rules:"]
        for i in range(start, min(n, start + 2000)):
            effect, actions, when = rule_text(i)
            if i == edit:
                when = when.replace("/srv/", "/srv/edited/").replace("example", "edited")
            lines += [f"  - id: r{i}", f"    effect: {effect}", f"    actions: {actions}",
                      f"    when: '{when}'"]
        with open(os.path.join(policy, f"org-{start // 2000:02d}.yaml"), "w") as fh:
            fh.write("\n".join(lines) + "\n")
    manifests = []
    for p in PLUGINS:
        d = os.path.join(directory, p)
        os.makedirs(d, exist_ok=True)
        m = os.path.join(d, "plugin.yaml")
        with open(m, "w") as fh:
            fh.write(f"id: {p}\nversion: 1.0.0\nentry: {{python: 'x:P'}}\ncapabilities:\n"
                     f"  filesystem: {{read: [/home/u/{p}/]}}\n  network: ['api.{p}.example.org:443']\n"
                     f"  environment: [{p.upper().replace('-', '_')}_TOKEN]\n")
        manifests.append(m)
    return policy, manifests


def raw_requests(n_rules: int, count: int) -> list[tuple]:
    """(action, plugin, path, host, port, name) tuples: 3 in 4 aimed at a random rule's shape
    (most of them hit it), the rest at a plugin's own grants or at nothing."""
    rng = random.Random(SEED + 1)
    out = []
    for _ in range(count):
        i = rng.randrange(max(n_rules, 1))
        p = rng.choice(PLUGINS)
        k = i % 9 if rng.random() < 0.75 else 9 + rng.randrange(2)
        x = rng.randrange(9)
        if k in (0, 1, 2):
            out.append(("fs.read", p, f"/srv/t{i}/d{i % 97}/f{x}.txt", "", 0, ""))
        elif k == 3:
            out.append(("fs.read", p, f"/srv/g{i}/a/b/n{x}.md", "", 0, ""))
        elif k == 4:
            out.append(("net.connect", p, "", f"x{x}.h{i}.example.com", 443, ""))
        elif k == 5:
            out.append(("net.connect", p, "", f"h{i}.example.net", 443, ""))
        elif k == 6:
            a, b = divmod(i, 256)
            out.append(("net.connect", p, "", f"10.{a % 256}.{b}.{x + 1}", 80, ""))
        elif k == 7:
            out.append(("env.read", p, "", "", 0, f"APP{i}_X{x}"))
        elif k == 8:
            out.append(("env.read", p, "", "", 0, f"VAR_{i}"))
        elif k == 9:
            out.append(("fs.write", p, f"/home/u/{p}/notes/{x}.md", "", 0, ""))
        else:
            out.append(("net.connect", p, "", f"nothing{x}.example.org", 443, ""))
    return out


def time_decisions(ps, raws: list[tuple]) -> tuple[list[int], list]:
    pc = time.perf_counter_ns
    out, res = [0] * len(raws), [None] * len(raws)
    decide = ps.decide
    gc.disable()
    try:
        for j, (a, p, path, host, port, name) in enumerate(raws):
            t0 = pc()
            d = decide(Request(a, p, path=path, host=host, port=port, name=name), use_cache=False)
            out[j] = pc() - t0
            res[j] = d
    finally:
        gc.enable()
    return out, res


def p50(ns: list[int]) -> float:
    s = sorted(ns)
    return s[len(s) // 2] / 1000.0


def measure(n: int, count: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="promptline-scaling-") as d:
        policy, manifests = write_policy(n, d)
        load_policy_set([policy], manifests)          # backend set-up, imports
        compile_s = float("inf")
        for _ in range(rounds):
            clear_compile_caches()
            t0 = time.perf_counter()
            ps = load_policy_set([policy], manifests)
            compile_s = min(compile_s, time.perf_counter() - t0)
        write_policy(n, d, edit=n // 2)
        t0 = time.perf_counter()
        load_policy_set([policy], manifests)
        edit_s = time.perf_counter() - t0
        write_policy(n, d)
        ps = load_policy_set([policy], manifests)
        raws = raw_requests(n, count)
        t0 = time.perf_counter()
        for a, p, *_ in {(r[0], r[1]): r for r in raws}.values():
            ps.decide(Request(a, p), use_cache=False)
        plans_s = time.perf_counter() - t0
        fused = min((time_decisions(ps, raws) for _ in range(rounds)), key=lambda t: p50(t[0]))
        old = _policyset.FUSE_MIN
        _policyset.FUSE_MIN = 1 << 30
        try:
            ref_ps = load_policy_set([policy], manifests)
            per_rule = min((time_decisions(ref_ps, raws) for _ in range(rounds)), key=lambda t: p50(t[0]))
        finally:
            _policyset.FUSE_MIN = old
        bad = sum(1 for a, b in zip(fused[1], per_rule[1])
                  if (a.verdict, a.rules) != (b.verdict, b.rules))
        verdicts = {v: sum(1 for x in fused[1] if x.verdict.value == v) for v in ("allow", "deny", "ask")}
        return {"n": n, "compile_s": compile_s, "edit_s": edit_s, "plans_s": plans_s,
                "fused": p50(fused[0]), "per_rule": p50(per_rule[0]), "mismatches": bad, "verdicts": verdicts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10, 100, 1000, 10000])
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    print(f"command: python benchmarks/scaling.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    print(f"{args.requests:,} requests per size (each built inside the timed region), 20 plugins, "
          f"best of {args.rounds} rounds")
    rows = [measure(n, args.requests, args.rounds) for n in args.sizes]
    base = next((r for r in rows if r["n"] == 100), rows[0])
    print()
    print(f"{'rules':>7} | {'compile s':>9} {'1-rule edit s':>13} {'plans s':>8} | {'fused p50 µs':>12} "
          f"{'vs 100 rules':>12} | {'per-rule p50 µs':>15} {'per-rule/fused':>14} | {'mismatches':>10}")
    print("-" * 120)
    for r in rows:
        print(f"{r['n']:>7,} | {r['compile_s']:>9.3f} {r['edit_s']:>13.3f} {r['plans_s']:>8.3f} | "
              f"{r['fused']:>12.2f} {r['fused'] / base['fused']:>11.2f}x | {r['per_rule']:>15.2f} "
              f"{r['per_rule'] / r['fused']:>13.1f}x | {r['mismatches']:>10}")
    print("-" * 120)
    print("compile = cold load_policy_set (compile caches cleared, backend set up); 1-rule edit = "
          "reload after changing one rule (caches warm); plans = first decision per (plugin, action); "
          "p50 = cache miss (use_cache=False) incl. building the Request. "
          f"Verdicts at {rows[-1]['n']:,} rules: {rows[-1]['verdicts']}")
    big = next((r for r in rows if r["n"] == 10000), None)
    if big is not None:
        print(f"targets: 10,000 rules decide within 1.5x of 100 rules: {big['fused'] / base['fused']:.2f}x "
              f"{'MET' if big['fused'] <= 1.5 * base['fused'] else 'NOT MET'}; compile 10,000 rules <= 1 s: "
              f"{big['compile_s']:.2f} s {'MET' if big['compile_s'] <= 1 else 'NOT MET'}")
    return 1 if any(r["mismatches"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
