"""Run the real `promptline` CLI as a user would: a fresh temp HOME, no PROMPTLINE_* variables
from the test run, the venv's bin first on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def user_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTLINE_", "XDG_", "GIT_"))}
    env.update(HOME=str(home), PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
               TMPDIR=str(home), COLUMNS="80")
    env.update(extra)
    return env


def promptline(home: Path, *args: str, cwd: Path | None = None, input: str | None = None,
               **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "promptline", *args], cwd=cwd or home, env=user_env(home, **extra),
                          input=input, capture_output=True, text=True, timeout=120)
