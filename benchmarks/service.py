"""The decision service against an in-process ``Enforcer.check()``, measured in one run (docs/design.md §12).

    python benchmarks/service.py [--requests 20000] [--clients 1,4] [--distinct 500]

Starts ``promptline serve --socket`` as a real subprocess on the shipped default policy (with an
audit log, as a host runs it), then times the same ``fs.read`` requests (``--distinct`` paths,
cycled, so both sides see the same cache hits and misses):
  1. in process: ``Enforcer.check()`` on the same policy, with an audit log;
  2. over the socket: N client processes (``--clients``), one connection each, one request in
     flight per connection (request line -> response line, JSON both ways).
Prints decisions/s and p50/p99 latency per side and the ratios. Target: socket p50 within 10x.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICY = os.path.join(ROOT, "policies", "default.yaml")


def paths(n: int) -> list[str]:
    home = os.path.expanduser("~")
    out = []
    for i in range(n):
        out.append(f"{home}/.ssh/id_{i}" if i % 5 == 0 else f"{home}/project/src/file_{i}.py")
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def in_process(requests: int, distinct: list[str], tmp: str) -> tuple[float, list[float]]:
    from promptline.enforcer import Enforcer
    from promptline.enforcer.audit import AuditLog
    from promptline.policy import Request, load_policy_set
    enf = Enforcer(load_policy_set([POLICY]), audit_log=AuditLog(os.path.join(tmp, "inproc.jsonl")))
    lat = []
    t0 = time.perf_counter()
    for i in range(requests):
        t = time.perf_counter_ns()
        enf.check("bench", Request("fs.read", "bench", path=distinct[i % len(distinct)]))
        lat.append((time.perf_counter_ns() - t) / 1000)
    return requests / (time.perf_counter() - t0), lat


def _client(sock_path: str, requests: int, distinct: list[str], offset: int, out) -> None:
    import json
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    f = s.makefile("rb")
    lat = []
    for i in range(requests):
        line = json.dumps({"v": 1, "id": i, "method": "check",
                           "params": {"plugin": "bench", "request": {"action": "fs.read",
                                                                     "path": distinct[(i + offset) % len(distinct)]}}})
        t = time.perf_counter_ns()
        s.sendall(line.encode() + b"\n")
        reply = f.readline()
        lat.append((time.perf_counter_ns() - t) / 1000)
        if b'"result"' not in reply:
            raise SystemExit(f"bad reply: {reply[:200]!r}")
    out.put(lat)


def over_socket(sock_path: str, requests: int, clients: int, distinct: list[str]) -> tuple[float, list[float]]:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    per = requests // clients
    procs = [ctx.Process(target=_client, args=(sock_path, per, distinct, n * 7, q)) for n in range(clients)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    lat: list[float] = []
    for _ in procs:
        lat += q.get()
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    return per * clients / wall, lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--clients", default="1,4")
    ap.add_argument("--distinct", type=int, default=500)
    args = ap.parse_args()
    distinct = paths(args.distinct)
    with tempfile.TemporaryDirectory() as tmp:
        sock_path = os.path.join(tmp, "bench.sock")
        empty = os.path.join(tmp, "plugins")
        os.mkdir(empty)
        proc = subprocess.Popen([sys.executable, "-m", "promptline", "serve", "--socket", sock_path,
                                 "--policy", POLICY, "--plugins", empty, "--audit-log", os.path.join(tmp, "svc.jsonl"),
                                 "--approvals", os.path.join(tmp, "ap.yaml"), "--grants", os.path.join(tmp, "g.yaml"),
                                 "--no-watch"], stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                if os.path.exists(sock_path):
                    break
                time.sleep(0.05)
            over_socket(sock_path, 2000, 1, distinct)        # warm up both sides
            in_process(2000, distinct, tmp)
            rate_in, lat_in = in_process(args.requests, distinct, tmp)
            p50_in, p99_in = statistics.median(lat_in), pct(lat_in, 0.99)
            print(f"{'side':28} {'decisions/s':>12} {'p50 µs':>9} {'p99 µs':>9} {'p50 ratio':>10}")
            print(f"{'in-process Enforcer.check':28} {rate_in:12,.0f} {p50_in:9.1f} {p99_in:9.1f} {1.0:9.1f}x")
            for n in (int(c) for c in args.clients.split(",")):
                rate, lat = over_socket(sock_path, args.requests, n, distinct)
                p50, p99 = statistics.median(lat), pct(lat, 0.99)
                print(f"{f'socket, {n} client(s)':28} {rate:12,.0f} {p50:9.1f} {p99:9.1f} {p50 / p50_in:9.1f}x")
            print(f"({args.requests} requests per side, {args.distinct} distinct paths, policy {POLICY}, "
                  f"{os.cpu_count()} CPUs)")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
