"""The default limits let a Node server run in the process sandbox: fetch() (undici and its
WebAssembly parser) and a WebAssembly memory reservation work, which an address-space limit
of 4 GiB broke. The control: the same server under that old address-space limit fails."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sandbox_helpers import load, manifest_text

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs node")
SERVER = Path(__file__).parent / "fixtures" / "node_fetch_server.js"


def write(parent: Path) -> Path:
    root = parent / "node-fetch"
    root.mkdir(parents=True)
    # Node reads OpenSSL's config at start: a command plugin declares it (see README: TLS)
    (root / "plugin.yaml").write_text(manifest_text("node-fetch", entry=f'command: ["{NODE}", "server.js"]',
                                                    read=["/etc/ssl/"]))
    shutil.copy(SERVER, root / "server.js")
    return root


def test_node_fetch_runs_under_the_default_limits(tmp_path):
    loaded = load(write(tmp_path / "plugins"), tmp_path)
    try:
        assert loaded.plugin.spec.rlimits.get("AS") is None, "no address-space limit by default"
        r = loaded.plugin.call_tool("fetch_data", {}, timeout=30)
        assert r.ok and r.content == "hello from fetch (65536)", r.content
    finally:
        loaded.plugin.shutdown()


def test_the_old_address_space_limit_breaks_it(tmp_path):
    loaded = load(write(tmp_path / "plugins"), tmp_path, options={"rlimits": {"AS": 4 * 1024 ** 3}})
    try:
        r = loaded.plugin.call_tool("fetch_data", {}, timeout=30)
        assert not r.ok, "the control: the address-space limit this change removed does break Node"
    finally:
        loaded.plugin.shutdown()
