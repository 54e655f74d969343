"""Fixtures for the registry tests: an isolated environment, keys, policies, an HTTP index."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from registry_helpers import write_policy

from promptline.loaders._signing import generate_key


@pytest.fixture(scope="session")
def key(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("keys") / "publisher.pem"
    return path, generate_key(path)


@pytest.fixture(scope="session")
def other_key(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("keys2") / "stranger.pem"
    return path, generate_key(path)


class Env:
    """Paths of one isolated PromptLine installation."""

    def __init__(self, tmp: Path, key: tuple[Path, str]) -> None:
        self.tmp = tmp
        self.home = tmp / "home"                       # the plugin dir's parent
        self.plugins = self.home / "plugins"
        self.approvals = tmp / "state" / "approvals.yaml"
        self.audit = tmp / "state" / "audit.jsonl"
        self.index = tmp / "index"
        self.src = tmp / "src"
        self.key_path, self.pub = key
        self.signed_policy = write_policy(tmp / "signed.yaml", trusted=(self.pub,), require_signature=True)
        self.open_policy = write_policy(tmp / "open.yaml")
        self.trusting_policy = write_policy(tmp / "trusting.yaml", trusted=(self.pub,))

    def registry(self, policy: Path | None = None, **kw):
        from promptline.enforcer.audit import AuditLog
        from promptline.loaders._registry import Registry
        log = kw.pop("audit_log", None) or AuditLog(str(self.audit))
        return Registry(self.plugins, policy_files=[str(policy or self.signed_policy)], approvals=self.approvals,
                        audit_log=log, index=kw.pop("index", str(self.index)), **kw)

    def cli_args(self, policy: Path | None = None) -> list[str]:
        return ["--dir", str(self.plugins), "--policy", str(policy or self.signed_policy),
                "--approvals", str(self.approvals), "--audit-log", str(self.audit)]


@pytest.fixture
def env(tmp_path, key, monkeypatch) -> Env:
    e = Env(tmp_path, key)
    e.home.mkdir()
    e.plugins.mkdir(mode=0o700)
    (tmp_path / "state").mkdir()
    monkeypatch.setenv("PROMPTLINE_PLUGIN_PATH", str(e.plugins))
    monkeypatch.setenv("PROMPTLINE_APPROVALS", str(e.approvals))
    monkeypatch.setenv("PROMPTLINE_AUDIT_LOG", str(e.audit))
    monkeypatch.setenv("PROMPTLINE_POLICY", str(e.signed_policy))
    monkeypatch.setenv("PROMPTLINE_INDEX", str(e.index))
    return e


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_index(env):
    """An HTTP server on 127.0.0.1 serving env.index; yields its base URL."""
    env.index.mkdir(exist_ok=True)
    handler = functools.partial(_Quiet, directory=str(env.index))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
