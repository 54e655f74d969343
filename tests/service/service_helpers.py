"""Helpers for the service tests: a real `promptline serve` subprocess with one process-sandboxed plugin."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

POLICY = """\
apiVersion: promptline/v1
kind: Policy
layer: org
settings:
  approve: declared
rules:
  - id: no-secrets
    effect: deny
    actions: [fs.read, fs.write]
    when: within(request.path, "/srv/secret")
    message: secrets are off limits
  - id: docs-ok
    effect: allow
    actions: [fs.read]
    when: within(request.path, "/srv/docs")
"""

PLUGIN = '''\
from promptline import ToolPlugin, Tool, ToolResult


class Echo(Tool):
    name = "echo"
    description = "echoes"
    parameters = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

    def execute(self, args):
        return ToolResult.success(args["text"])


class Plugin(ToolPlugin):
    def tools(self):
        return [Echo()]
'''


def make_host(tmp: Path) -> dict:
    plugins = tmp / "plugins" / "demo"
    plugins.mkdir(parents=True)
    (plugins / "plugin.yaml").write_text(textwrap.dedent("""\
        id: demo
        version: 1.0.0
        entry: {python: "demo_mod:Plugin"}
        sandbox: process
        """))
    (plugins / "demo_mod.py").write_text(PLUGIN)
    pol = tmp / "org.yaml"
    pol.write_text(POLICY)
    os.chmod(pol, 0o644)
    return {"policy": pol, "plugins": tmp / "plugins", "log": tmp / "audit.jsonl", "sock": tmp / "s.sock"}


def start_service(tmp: Path, host: dict, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "promptline", "serve", "--socket", str(host["sock"]),
           "--policy", str(host["policy"]), "--plugins", str(host["plugins"]), "--audit-log", str(host["log"]),
           "--approvals", str(tmp / "approvals.yaml"), "--grants", str(tmp / "grants.yaml"), "--yes", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(host["sock"]))
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("serve did not start")


def stop_service(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode(errors="replace")


