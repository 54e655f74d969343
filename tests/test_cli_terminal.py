"""What the CLI says on a real terminal (a pty): `promptline run` tells what it serves and
how to stop, instead of sitting silent."""

import os
import pty
import re
import select
import subprocess
import sys
import time


def run_on_pty(argv, env, until: bytes, timeout: float = 30.0) -> tuple[bytes, int]:
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out, start = b"", time.monotonic()
    try:
        while until not in out and time.monotonic() - start < timeout:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
        os.write(master, b"\x04")   # Ctrl-D: end of input
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return out, code


def test_run_on_a_terminal_says_what_it_serves_and_how_to_stop(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path))
    (tmp_path / "plugins").mkdir()
    out, code = run_on_pty([sys.executable, "-m", "promptline", "run", "--plugins", str(tmp_path / "plugins")],
                           env, until=b"Ctrl-D")
    text = out.decode("utf-8", "replace")
    assert "serving 0 tool(s) of 0 plugin(s)" in text and "stop with Ctrl-D" in text, text
    assert code == 0


def test_plugin_list_fits_80_columns_and_keeps_every_value(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, HOME=str(tmp_path), COLUMNS="80", LINES="50")
    out, code = run_on_pty([sys.executable, "-m", "promptline", "plugin", "list", "--plugins",
                            os.path.join(root, "examples")], env, until=b"\xe2\x94\x98")   # the table's last corner
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode("utf-8", "replace"))   # colours are not columns
    lines = plain.replace("\r", "").splitlines()
    assert code == 0 and any("project-search" in ln for ln in lines), lines
    assert max(len(ln) for ln in lines) <= 80, max(lines, key=len)
    text = "".join(ln.replace("│", "").replace(" ", "") for ln in lines)
    for pid in ("calculator", "code-review", "echo-model", "notes", "project-search", "wasm-wordcount"):
        assert pid in text
    from promptline.loaders import key_id, parse_public_key
    kid = key_id(parse_public_key(open(os.path.join(root, "examples", "keys", "examples.pub")).read()))
    assert "untrusted" in text and f"({kid})" in text and "needs-approval" in text   # folded, never cut
