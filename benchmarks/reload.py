"""Reload latency: from a policy file write to new decisions in effect (docs/design.md §12: < 100 ms
for a 200-rule policy). Real files, a real watchdog observer, the real PluginManager.

    python benchmarks/reload.py [--rules 200] [--saves 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from promptline.loaders import ApprovalStore, PluginManager  # noqa: E402
from promptline.policy import Request  # noqa: E402


def policy_text(rules: int, marker: int) -> str:
    out = ["apiVersion: promptline/v1", "kind: Policy", "layer: org", "rules:"]
    for i in range(rules - 1):
        kind = i % 4
        when = [f'within(request.path, "/srv/data{i}")', f'host_matches(request.host, "*.svc{i}.example.com")',
                f'env_matches(request.name, "APP{i}_*")', f'request.argv == ["tool{i}", "run"]'][kind]
        effect = "deny" if i % 3 == 0 else "allow"
        out += [f"  - id: r{i}", f"    effect: {effect}", f"    when: '{when}'"]
    out += ["  - id: marker", "    effect: deny", "    actions: [fs.read]",
            f"    when: request.path == \"/marker/{marker}\""]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=200)
    ap.add_argument("--saves", type=int, default=30)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="promptline-reload-")
    os.makedirs(f"{d}/plugins")
    pol = f"{d}/org.yaml"
    with open(pol, "w") as fh:
        fh.write(policy_text(args.rules, 0))
    os.chmod(pol, 0o644)
    pm = PluginManager(policy_files=[pol], search_path=[f"{d}/plugins"], config_path=False, entry_points=False,
                       approvals=ApprovalStore(f"{d}/approvals.yaml"), watch=True)
    t = time.perf_counter()
    pm.load_all()
    first = (time.perf_counter() - t) * 1000
    compile_ms, latencies = [], []
    for n in range(1, args.saves + 1):
        text = policy_text(args.rules, n)
        t = time.perf_counter()
        with open(pol + ".tmp", "w") as fh:
            fh.write(text)
        os.replace(pol + ".tmp", pol)
        probe = Request("fs.read", "any", path=f"/marker/{n}")
        while getattr(pm.enforcer.check("any", probe).rule, "id", "") != "marker":
            if time.perf_counter() - t > 10:
                raise SystemExit("reload did not happen within 10 s")
            time.sleep(0.001)
        latencies.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        pm.reload_policy()
        compile_ms.append((time.perf_counter() - t) * 1000)
        time.sleep(0.1)
    pm.shutdown()
    q = statistics.quantiles(latencies, n=20)
    print(f"policy: {args.rules} rules; {args.saves} saves (write temp + rename over); debounce "
          f"{__import__('promptline.loaders', fromlist=['DEBOUNCE_S']).DEBOUNCE_S * 1000:.0f} ms")
    print(f"first load (cold, compiles every rule):  {first:8.1f} ms")
    print(f"reload_policy() alone (warm):             p50 {statistics.median(compile_ms):6.1f} ms")
    print(f"file write -> new decisions in effect:    p50 {statistics.median(latencies):6.1f} ms   "
          f"p95 {q[-1]:6.1f} ms   max {max(latencies):6.1f} ms")
    print(f"target (docs/design.md §12): < 100 ms -> {'MET' if statistics.median(latencies) < 100 else 'NOT MET'} (p50)")


if __name__ == "__main__":
    main()
