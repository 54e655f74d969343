"""What a hostile archive costs `promptline plugin install` before it is refused: wall time
and peak RSS of the real CLI in a subprocess, next to what tarfile alone spends on the same
bytes (the cost the pre-scan avoids; cut off after --tarfile-timeout seconds).

    python benchmarks/hostile_archives.py [--big] [--tarfile-timeout 20]

``--big`` adds a GNU long name really holding 1 GiB (1 MiB compressed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "registry"))

import hostile_archives as hostile  # noqa: E402

POLICY = "apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings:\n  require_signature: false\n"
TARFILE_ONLY = ("import sys, tarfile\n"
                "try:\n"
                "    with tarfile.open(sys.argv[1], 'r|gz') as t:\n"
                "        for m in t: pass\n"
                "except Exception as e: print(type(e).__name__)\n")


def _rusage_run(argv, timeout, env=None):
    """subprocess.Popen.wait reaps the child; use wait4 ourselves to keep its rusage."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=env)
    deadline = start + timeout
    killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline and not killed:
            proc.kill()
            killed = True
        time.sleep(0.005)
    took = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
    last = "(killed at the timeout)" if killed else (err[-1] if err else "")
    return took, usage.ru_maxrss / 1024, proc.returncode, last[:100]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", action="store_true", help="also a real 1 GiB GNU long name")
    ap.add_argument("--tarfile-timeout", type=float, default=20.0)
    args = ap.parse_args()
    cases = dict(hostile.HOSTILE)
    cases["pax-256KiB-digits (quadratic)"] = lambda: hostile.pax_digits(256 << 10)
    if args.big:
        cases["gnu-longname-1GiB-real"] = lambda: hostile.gnu_longname_real(1 << 30)
    with tempfile.TemporaryDirectory() as tmp:
        policy = os.path.join(tmp, "policy.yaml")
        with open(policy, "w") as fh:
            fh.write(POLICY)
        os.chmod(policy, 0o644)
        env = dict(os.environ, PROMPTLINE_AUDIT_LOG=os.path.join(tmp, "audit.jsonl"),
                   PROMPTLINE_APPROVALS=os.path.join(tmp, "approvals.yaml"))
        baseline = _rusage_run([sys.executable, "-m", "promptline", "plugin", "install", "--help"], 60, env)
        print(f"`promptline plugin install --help` alone: {baseline[0]:.2f} s, {baseline[1]:.0f} MiB peak RSS\n")
        print(f"{'archive':36s} {'bytes':>9s} | {'install s':>9s} {'RSS MiB':>8s} | "
              f"{'tarfile s':>9s} {'RSS MiB':>8s} | refusal")
        worst_t = worst_m = 0.0
        for name, build in cases.items():
            path = os.path.join(tmp, "hostile-0.1.0.tar.gz")
            with open(path, "wb") as fh:
                fh.write(build())
            size = os.path.getsize(path)
            t, m, code, why = _rusage_run([sys.executable, "-m", "promptline", "plugin", "install", path,
                                           "--dir", os.path.join(tmp, "plugins"), "--policy", policy], 120, env)
            assert code != 0, f"{name} was installed"
            worst_t, worst_m = max(worst_t, t), max(worst_m, m)
            bt, bm, _, _ = _rusage_run([sys.executable, "-c", TARFILE_ONLY, path], args.tarfile_timeout)
            print(f"{name:36s} {size:9d} | {t:9.2f} {m:8.0f} | {bt:9.2f} {bm:8.0f} | {why.split(' — ')[0][-70:]}")
        print(f"\nworst refusal: {worst_t:.2f} s wall, {worst_m:.0f} MiB peak RSS (the whole CLI process; "
              f"`--help` alone: {baseline[0]:.2f} s, {baseline[1]:.0f} MiB)")


if __name__ == "__main__":
    main()
