"""Every documented shell walk runs exactly as written: the ```bash/```sh/```console blocks of
each docs page with a walk, extracted in order and run with bash in a throwaway HOME (the
page itself sets HOME and gives git an author), real CLI, real git, a real HTTP index."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest
from cli_helpers import ROOT, user_env

WALKS = {"docs/registry.md": 8765}    # page -> the port its walk serves an index on


def shell_blocks(text: str) -> list[str]:
    """The shell blocks of a Markdown page, in order; `console` blocks keep their `$ ` lines."""
    out = []
    for lang, body in re.findall(r"^```(bash|sh|console)[ \t]*\n(.*?)^```", text, re.S | re.M):
        if lang == "console":
            body = "".join(line[2:] + "\n" for line in body.splitlines() if line.startswith("$ "))
        out.append(body)
    return out


def test_every_docs_page_with_a_shell_block_is_walked():
    pages = {str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md") if shell_blocks(p.read_text())}
    assert pages == set(WALKS), f"a docs page has shell blocks but no walk test: {pages - set(WALKS)}"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as http.server does: TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_registry_walk_runs_as_written(tmp_path):
    page = ROOT / "docs" / "registry.md"
    if not _port_free(WALKS["docs/registry.md"]):
        pytest.skip("port 8765, which the walk serves its index on, is in use")
    blocks = shell_blocks(page.read_text())
    # harness only: stop at the first failing command, and stop the walk's background server
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + "\n".join(blocks) + \
        '\necho "walk-home=$HOME"\n'
    start_home = tmp_path / "not-home"
    start_home.mkdir()
    env = {k: v for k, v in user_env(start_home).items() if not k.startswith("PYTEST")}
    env.pop("COLUMNS")
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    r = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert list(start_home.iterdir()) == []                 # the walk ran in its own HOME
    home = Path(re.search(r"^walk-home=(.*)$", r.stdout, re.M).group(1))
    assert home.parent == tmp_path / "tmp"
    assert "published `hello-tools` 0.1.0 (signed by" in out
    assert re.search(r"\d+ passed", out)                    # the scaffold's own tests
    assert "hello-tools" in out and "│ 0.1.0" in out        # search
    assert "signed by trusted key" in out
    plugins = home / ".config" / "promptline" / "plugins"
    assert f"installed `hello-tools` 0.1.0 in {plugins / 'hello-tools'}" in out
    assert f"installed `hello-tools` 0.1.0 in {home / 'from-git' / 'hello-tools'}" in out   # from git
    assert "`hello-tools` 0.1.0 is up to date" in out
    assert f"removed `hello-tools` 0.1.0 from {plugins}" in out
    assert re.search(r"lifecycle\s+hello-tools\s+unloaded\s+removed", out), out[-2000:]   # audit show
    assert Path(plugins).is_dir() and list(Path(plugins).iterdir()) == []    # remove left nothing
    assert list((home / "from-git").iterdir()) == []
