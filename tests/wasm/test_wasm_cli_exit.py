"""A wasm call that runs out of fuel is an error result and the host exits cleanly — run as a
user runs it, `promptline tool call` in a subprocess, several times (it used to abort at exit
with a Rust panic, exit 134, in most runs). And a wasm plugin declaring non-tool types is
refused at load with a clear error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "probe.wasm"
PROMPTLINE = [sys.executable, "-m", "promptline"]


def setup(tmp_path: Path, types: str = "[tool]") -> list[str]:
    d = tmp_path / "plugins" / "probe"
    d.mkdir(parents=True)
    shutil.copy(FIXTURE, d / "probe.wasm")
    (d / "plugin.yaml").write_text(f"id: probe\nversion: 1.0.0\ntypes: {types}\nentry: {{wasm: probe.wasm}}\n"
                                   "sandbox: wasm\n")
    pol = tmp_path / "policy.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings:\n  approve: declared\n")
    (tmp_path / "log").mkdir()
    return ["--policy", str(pol), "--plugins", str(tmp_path / "plugins"),
            "--audit-log", str(tmp_path / "log" / "audit.jsonl"),
            "--approvals", str(tmp_path / "approvals.yaml"), "--grants", str(tmp_path / "grants.yaml")]


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    return subprocess.run(PROMPTLINE + args, capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)


def test_fuel_exhaustion_is_an_error_result_and_a_clean_exit(tmp_path):
    opts = setup(tmp_path)
    for _ in range(5):
        spin = run(["tool", "call", "probe.spin", "{}", *opts], tmp_path)
        assert spin.returncode == 1, (spin.returncode, spin.stderr[-2000:])     # failed call: exit 1, not 134
        assert "used up its fuel" in spin.stderr and "panicked" not in spin.stderr
    echo = run(["tool", "call", "probe.echo", '{"text": "control"}', *opts], tmp_path)
    assert echo.returncode == 0 and echo.stdout.strip() == "control", echo.stderr


def test_a_wasm_plugin_declaring_other_types_is_refused_at_load(tmp_path):
    opts = setup(tmp_path, types="[tool, context]")
    out = run(["tool", "list", *opts], tmp_path)
    assert "a wasm plugin can only offer tools" in out.stderr and "`context`" in out.stderr, out.stderr
    assert "probe.echo" not in out.stdout
