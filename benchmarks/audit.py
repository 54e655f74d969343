"""Audit log benchmark: throughput with the hash chain, and the latency of the deny path.

    python benchmarks/audit.py [--records 200000] [--denies 5000] [--dir /tmp]

Rows:
- writer stage, batched: records/s the background writer sustains (chain + canonical JSON
  + SHA-256 + append) on records already built, in batches of 1,000 — the number docs/design.md
  §12 sets at > 100,000/s;
- allow path end to end: ``decision()`` calls from one thread plus the final ``flush()``
  (building and redacting each record in the caller, the writer thread sharing the GIL);
- verify: records/s ``verify`` checks;
- deny path: p50/p99 of one ``decision()`` that returns only once the record is written
  (fsync off: in the page cache, survives a killed process; fsync on: on the disk).

Results depend on the machine and its disk; compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from promptline.enforcer.audit import AuditLog, AuditSettings, verify  # noqa: E402

ALLOW = {"verdict": "allow", "decided_by": "rule", "policy_version": "v1",
         "rules": [{"id": "home-read", "effect": "allow", "layer": "org",
                    "origin": "org.yaml:31", "message": "", "mode": "enforce"}],
         "errors": [], "hint": "", "would_deny": False}
DENY = dict(ALLOW, verdict="deny", rules=[{"id": "no-ssh-keys", "effect": "deny",
                                           "layer": "org", "origin": "org.yaml:12",
                                           "message": "SSH keys are off limits",
                                           "mode": "enforce"}])


def _items(log: AuditLog, n: int) -> list:
    """Records as decision() builds them (built once, outside the timed part)."""
    build = log._builder.decision
    return [build("db-tools", "0.1.0", "fs.read", f"/home/u/data/file{i}.csv", ALLOW)[0]
            for i in range(n)]


def writer_stage(d: str, n: int) -> float:
    log = AuditLog(os.path.join(d, "writer.jsonl"),
                   AuditSettings(queue_size=n + 1, rotate_bytes=None))
    items = _items(log, n)
    t = time.perf_counter()
    for k in range(0, n, 1000):
        log._append(items[k:k + 1000])
    dt = time.perf_counter() - t
    log.close()
    assert verify(log.path).records == n
    return n / dt


def allow_end_to_end(d: str, n: int) -> tuple[float, str]:
    path = os.path.join(d, "allow.jsonl")
    log = AuditLog(path, AuditSettings(queue_size=n + 1, rotate_bytes=None))
    log.start()
    t = time.perf_counter()
    for i in range(n):
        log.decision("db-tools", "0.1.0", "fs.read", f"/home/u/data/file{i}.csv", ALLOW)
    log.flush()
    dt = time.perf_counter() - t
    log.close()
    return n / dt, path


def verify_speed(path: str) -> float:
    t = time.perf_counter()
    rep = verify(path)
    dt = time.perf_counter() - t
    assert rep.ok
    return rep.records / dt


def deny_latency(d: str, n: int, fsync: bool) -> tuple[float, float]:
    log = AuditLog(os.path.join(d, f"deny-{fsync}.jsonl"), AuditSettings(fsync=fsync))
    samples = []
    clock = time.perf_counter_ns
    for i in range(n):
        t = clock()
        log.decision("db-tools", "0.1.0", "fs.read", f"/home/u/.ssh/key{i}", DENY)
        samples.append(clock() - t)
    log.close()
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--denies", type=int, default=5_000)
    ap.add_argument("--dir", default=None, help="where to write the logs (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        w = writer_stage(d, args.records)
        e, path = allow_end_to_end(d, args.records)
        v = verify_speed(path)
        p50, p99 = deny_latency(d, args.denies, fsync=False)
        f50, f99 = deny_latency(d, max(200, args.denies // 10), fsync=True)
    rows = [
        ("writer stage, batched (chain+JSON+sha256+append)", f"{w:,.0f} records/s",
         "target > 100,000/s"),
        ("allow path end to end (decision() + flush)", f"{e:,.0f} records/s", ""),
        ("verify", f"{v:,.0f} records/s", ""),
        ("deny path, fsync off", f"p50 {p50:,.1f} µs   p99 {p99:,.1f} µs", ""),
        ("deny path, fsync on", f"p50 {f50:,.1f} µs   p99 {f99:,.1f} µs", ""),
    ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"audit log benchmark — Python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"{args.records:,} records, {args.denies:,} denies")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>{vwidth}}  {note}")


if __name__ == "__main__":
    main()
