"""An index entry no trusted key signed is not downloaded, checked or unpacked before the
user said yes (docs/registry.md, "Unsigned index entries"). Through the real CLI in a
fresh HOME and TMPDIR, under the shipped default policy, against an index served on
127.0.0.1 by a server that records every request: piped it is refused and the archive is
never even requested (plugin dir and temp dir stay empty); `--allow-unsigned` accepts it;
at a real terminal (a pty) it is shown and asked about. The control: an entry signed by a
trusted key installs without that question."""

from __future__ import annotations

import functools
import http.server
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from registry_helpers import write_plugin

from promptline.loaders._registry import publish

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "policies" / "default.yaml"


class _Recording(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, seen: list[str], **kw) -> None:
        self.seen = seen
        super().__init__(*args, **kw)

    def do_GET(self) -> None:
        self.seen.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


class World:
    """A fresh HOME and TMPDIR, an index tree served on 127.0.0.1, the requests it got."""

    def __init__(self, tmp: Path) -> None:
        self.home, self.tmpdir, self.index, self.src = tmp / "home", tmp / "tmp", tmp / "index", tmp / "src"
        for d in (self.home, self.tmpdir, self.index):
            d.mkdir()
        self.seen: list[str] = []
        handler = functools.partial(_Recording, seen=self.seen, directory=str(self.index))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.plugins = self.home / ".config" / "promptline" / "plugins"     # the default plugin dir

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTLINE_", "XDG_"))}
        return {**keep, "HOME": str(self.home), "TMPDIR": str(self.tmpdir), "PROMPTLINE_INDEX": self.url,
                "COLUMNS": "200"}

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "promptline", "plugin", "install", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(*args), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env=self.env(), timeout=120)

    def archive_requests(self) -> list[str]:
        return [p for p in self.seen if p.endswith(".tar.gz")]

    def installed(self) -> list[str]:
        return sorted(p.name for p in self.plugins.iterdir() if not p.name.startswith(".")) \
            if self.plugins.exists() else []

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.close()


def _nothing_written(world: World) -> None:
    assert world.archive_requests() == [], "the archive was requested"
    assert not world.plugins.exists() or list(world.plugins.iterdir()) == [], "the plugin dir holds something"
    assert list(world.tmpdir.iterdir()) == [], "a temporary (staging) directory was left or written"


def test_unsigned_entry_is_refused_piped_and_nothing_is_fetched_or_written(world):
    entry = publish(write_plugin(world.src, "demo", network=("https://api.example.com",)), world.index,
                    unsigned=True)
    for extra in ((), ("--yes",)):                      # --yes alone does not accept unsigned code
        done = world.run("demo", *extra)
        assert done.returncode == 1, done
        assert "Traceback" not in done.stderr
        assert "is not signed, and there is no terminal to ask, so nothing was downloaded" in done.stderr, done.stderr
        assert "--allow-unsigned" in done.stderr
        # what it is, shown before the refusal: id, version, source, sha256, declared capabilities
        for shown in ("plugin `demo` 0.1.0", world.url, entry.sha256, "network: https://api.example.com"):
            assert shown in done.stderr, (shown, done.stderr)
        assert world.seen, "the index itself was read (the honest part of the check)"
        _nothing_written(world)


def test_allow_unsigned_accepts_it(world):
    publish(write_plugin(world.src, "demo"), world.index, unsigned=True)
    # accepted for the fetch, but approval still needs a person or --yes: fetched, not installed
    done = world.run("demo", "--allow-unsigned")
    assert done.returncode == 1 and "need your approval and there is no terminal" in done.stderr, done.stderr
    assert len(world.archive_requests()) == 1
    assert world.installed() == [] and list(world.tmpdir.iterdir()) == []
    done = world.run("demo", "--allow-unsigned", "--yes")
    assert done.returncode == 0, done.stderr
    assert "installed `demo` 0.1.0" in done.stdout
    assert world.installed() == ["demo"] and (world.plugins / "demo" / "plugin.yaml").is_file()
    assert list(world.tmpdir.iterdir()) == [], "the private staging directory was removed"


def test_entry_signed_by_an_untrusted_key_is_refused_like_an_unsigned_one(world, other_key):
    key_path, _ = other_key
    entry = publish(write_plugin(world.src, "demo"), world.index, key=key_path)
    done = world.run("demo", "--yes")
    assert done.returncode == 1, done
    assert f"is signed by key `{entry.key_id}`, which the policy does not trust" in done.stderr, done.stderr
    _nothing_written(world)


def test_entry_signed_by_a_trusted_key_installs_without_the_question(world, key, tmp_path):
    key_path, pub = key
    publish(write_plugin(world.src, "demo"), world.index, key=key_path)
    trust = tmp_path / "trust.yaml"
    trust.write_text(f'apiVersion: promptline/v1\nkind: Policy\nlayer: user\nsettings:\n  trusted_keys: ["{pub}"]\n')
    os.chmod(trust, 0o644)
    done = world.run("demo", "--yes", "--policy", str(DEFAULT_POLICY), "--policy", str(trust))
    assert done.returncode == 0, done.stderr
    assert "not signed" not in done.stderr and "does not trust" not in done.stderr
    assert world.installed() == ["demo"] and len(world.archive_requests()) == 1


# -- at a terminal ---------------------------------------------------------------------


class _Tty:
    """The CLI with stdin and stderr on a real pseudo-terminal (stdout piped)."""

    def __init__(self, world: World, *args: str) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(world.cmd(*args), stdin=slave, stderr=slave, stdout=subprocess.PIPE,
                                     env=world.env(), close_fds=True)
        os.close(slave)
        self.text = ""

    def expect(self, needle: str, timeout: float = 60.0) -> str:
        end = time.monotonic() + timeout
        while needle not in self.text:
            left = end - time.monotonic()
            assert left > 0, f"no {needle!r} in {self.text!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    chunk = b""
                assert chunk, f"the terminal closed before {needle!r}: {self.text!r}"
                self.text += chunk.decode("utf-8", "replace")
        return self.text

    def answer(self, text: str) -> None:
        os.write(self.master, text.encode() + b"\n")

    def finish(self) -> tuple[int, str]:
        out = self.proc.stdout.read().decode() if self.proc.stdout else ""
        code = self.proc.wait(60)
        try:
            while select.select([self.master], [], [], 0.1)[0]:
                chunk = os.read(self.master, 65536)
                if not chunk:
                    break
                self.text += chunk.decode("utf-8", "replace")
        except OSError:
            pass
        os.close(self.master)
        return code, out


def test_at_a_terminal_it_is_shown_and_asked_about_before_the_fetch(world):
    entry = publish(write_plugin(world.src, "demo"), world.index, unsigned=True)
    tty = _Tty(world, "demo")
    shown = tty.expect("download and unpack it")
    assert entry.sha256 in shown and "plugin `demo` 0.1.0" in shown and "is not signed" in shown
    assert world.archive_requests() == [], "asked before the fetch"
    tty.answer("n")
    code, _ = tty.finish()
    assert code == 1 and "you declined, so nothing was downloaded" in tty.text, tty.text
    _nothing_written(world)
    # honest control: yes to the fetch, then the usual approval question, then installed
    tty = _Tty(world, "demo")
    tty.expect("download and unpack it")
    tty.answer("y")
    tty.expect("approve `demo` 0.1.0")
    assert len(world.archive_requests()) == 1
    tty.answer("y")
    code, out = tty.finish()
    assert code == 0 and "installed `demo` 0.1.0" in out, (out, tty.text)
    assert world.installed() == ["demo"]


def test_allow_unsigned_is_what_lets_yes_approve_unsigned_code_from_git(world):
    from registry_helpers import git_repo
    repo = git_repo(world.src.parent, write_plugin(world.src, "demo"))
    done = world.run(f"file://{repo}", "--yes")
    assert done.returncode == 1 and "`--yes` cannot approve code no trusted key signed" in done.stderr, done.stderr
    assert world.installed() == [] and list(world.tmpdir.iterdir()) == []
    done = world.run(f"file://{repo}", "--yes", "--allow-unsigned")
    assert done.returncode == 0 and "installed `demo` 0.1.0" in done.stdout, done.stderr
    assert world.installed() == ["demo"]
