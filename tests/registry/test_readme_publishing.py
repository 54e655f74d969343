"""The README's "Publishing and browsing" walk-through, extracted from README.md and run as
written with bash in a throwaway HOME (real CLI, real files)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- walkthrough: publishing-and-browsing -->"


def _block() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(re.escape(MARKER) + r"\s*```bash\n(.*?)```", text, re.S)
    assert m, "the README lost its publishing walk-through block"
    return m.group(1)


def test_readme_publishing_and_browsing_walkthrough(tmp_path):
    script = "set -euo pipefail\n" + _block()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLINE_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["TMPDIR"] = str(tmp_path)
    r = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "`text-tools` brings its dependencies: text-base 0.1.0" in out
    assert "installed `text-base` 0.1.0" in out and "installed `text-tools` 0.1.0" in out
    assert "needed by `text-tools`" in out and "refused: text-tools needs it" in out
    assert "3 words" in out
    assert re.search(r"word_count\s*│\s*1\s*│\s*0", out), out
    home = next(tmp_path.glob("tmp.*"))
    page = (home / "site" / "plugins" / "text-tools" / "index.html").read_text()
    assert "does what it says" in page and "https://example.com/text-tools" in page
    assert 'href="../text-base/index.html"' in page
