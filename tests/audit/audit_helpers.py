"""Helpers for the audit log tests: decisions, logs, raw lines, subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from promptline.enforcer.audit import AuditLog, AuditSettings

PY = sys.executable
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def decision(verdict: str = "deny", rule: str = "no-ssh", **extra) -> dict:
    d = {"verdict": verdict, "decided_by": "rule" if rule else "default",
         "policy_version": "v1",
         "rules": [{"id": rule, "effect": verdict, "layer": "org", "origin": "org.yaml:12",
                    "message": "keys are off limits", "mode": "enforce"}] if rule else [],
         "errors": [], "hint": "", "would_deny": False}
    d.update(extra)
    return d


def write_log(path, n: int = 10, settings: AuditSettings | None = None) -> None:
    with AuditLog(path, settings) as log:
        for i in range(n):
            verdict = "deny" if i % 3 == 0 else "allow"
            log.decision("db-tools", "0.1.0", "fs.read", f"/data/file{i}", decision(verdict))


def lines(path) -> list[bytes]:
    with open(path, "rb") as f:
        return f.read().splitlines(keepends=True)


def set_lines(path, new: list[bytes]) -> None:
    with open(path, "wb") as f:
        f.write(b"".join(new))


def records(path) -> list[dict]:
    return [json.loads(x) for x in lines(path)]


def run_py(code: str, *args: str, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([PY, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO, **kw)
