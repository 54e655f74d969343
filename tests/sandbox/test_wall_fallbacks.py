"""Fail closed: without network namespaces or bubblewrap the loaders refuse with a clear
error, or run the configured weaker wall and say so (``network_wall``)."""

from __future__ import annotations

import errno
import shutil

import pytest
from sandbox_helpers import load, run, write_probe_plugin

from promptline.loaders import ContainerLoader, LoaderError, ProcessLoader
from promptline.loaders._process import _loader, _wall


@pytest.fixture
def no_namespaces(monkeypatch):
    monkeypatch.setattr(_wall, "_probe_result", ["unshare failed: Operation not permitted"])


def test_no_namespaces_refuses_by_default(tmp_path, no_namespaces):
    root = write_probe_plugin(tmp_path / "plugins", "nons", network=["127.0.0.1:9"])
    with pytest.raises(LoaderError) as exc:
        load(root, tmp_path)
    msg = str(exc.value)
    assert "network namespace" in msg and "Operation not permitted" in msg and "seccomp-only" in msg


def test_no_namespaces_with_the_configured_fallback_says_which_wall(tmp_path, no_namespaces):
    root = write_probe_plugin(tmp_path / "plugins", "fallback", network=["127.0.0.1:9"])
    loaded = load(root, tmp_path, loader=ProcessLoader(netns_missing="seccomp-only"))
    try:
        assert loaded.plugin.network_wall == "seccomp-only"
        # the second layer still stands: no UDP, and the refusal is recorded for this plugin
        code = ("import socket\ntry:\n socket.socket(socket.AF_INET, socket.SOCK_DGRAM); result = 'ok'\n"
                "except OSError as e: result = e.errno")
        assert run(loaded, code) == errno.EPERM
        assert "refused by the sandbox's seccomp filter" in loaded.audit_path.read_text()
        assert run(loaded, "result = 'alive'") == "alive"   # the control: the plugin runs
    finally:
        loaded.plugin.shutdown()


def test_container_without_namespaces_is_refused(tmp_path, no_namespaces):
    root = write_probe_plugin(tmp_path / "plugins", "cnons")
    with pytest.raises(LoaderError, match="container sandbox needs namespaces"):
        load(root, tmp_path, loader=ContainerLoader(netns_missing="seccomp-only"))


def test_container_without_bwrap_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(_loader, "bwrap_path", lambda: None)
    root = write_probe_plugin(tmp_path / "plugins", "nobwrap")
    with pytest.raises(LoaderError, match="bubblewrap") as exc:
        load(root, tmp_path, loader=ContainerLoader())
    assert "apt-get install bubblewrap" in str(exc.value)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed; .ci/run installs it")
def test_container_loads_when_everything_is_there(tmp_path):
    root = write_probe_plugin(tmp_path / "plugins", "cok")
    loaded = load(root, tmp_path, loader=ContainerLoader())
    try:
        assert loaded.plugin.sandbox == "container" and run(loaded, "import os; result = os.uname().nodename") \
            == "promptline"
    finally:
        loaded.plugin.shutdown()
