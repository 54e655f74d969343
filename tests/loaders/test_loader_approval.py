"""Approvals: pinned to digests; growth needs re-approval with the difference shown."""

from __future__ import annotations

import os
import stat
import threading

import pytest
from loader_helpers import make_plugin

from promptline.loaders._approval import (
    ApprovalStore,
    ApprovalSubject,
    capability_diff,
    capability_lines,
    default_approvals_path,
)
from promptline.loaders._errors import ApprovalRequired, ApprovalStoreError
from promptline.loaders._signing import key_id, parse_public_key, sign_plugin, verify_plugin
from promptline.policy import load_manifest

BASE = frozenset({"network: https://api.example.com", "filesystem.read: ~/.config/demo/", "sandbox: process"})


def subject(caps=BASE, *, version="0.1.0", manifest="sha256:m1", code="sha256:c1", key=None):
    return ApprovalSubject("demo", version, manifest, code, frozenset(caps), key)


@pytest.fixture
def store(tmp_path):
    return ApprovalStore(tmp_path / "cfg" / "approvals.yaml")


def test_new_plugin_needs_approval_and_refusal_says_how(store):
    status = store.status(subject())
    assert status.state == "needs-approval" and not status.ok
    with pytest.raises(ApprovalRequired) as info:
        status.require()
    text = str(info.value)
    assert "`promptline plugin approve demo`" in text and "`network: https://api.example.com`" in text


def test_approved_when_digests_match(store):
    store.approve(subject())
    status = store.status(subject())
    assert status.ok and status.via == "user"
    status.require()


def test_file_is_private_and_readable(store):
    store.approve(subject())
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert "network: https://api.example.com" in store.path.read_text()
    assert ApprovalStore(store.path).get("demo").capabilities == BASE


def test_capability_growth_needs_reapproval_and_shows_the_diff(store):
    store.approve(subject(key="k1"))
    grown = BASE - {"filesystem.read: ~/.config/demo/"} | {"network: https://evil.example.net",
                                                          "environment: AWS_SECRET_ACCESS_KEY"}
    status = store.status(subject(grown, version="0.2.0", manifest="sha256:m2", code="sha256:c2", key="k1"))
    assert status.state == "changed" and status.diff.grows
    assert status.diff.added == ("environment: AWS_SECRET_ACCESS_KEY", "network: https://evil.example.net")
    assert status.diff.removed == ("filesystem.read: ~/.config/demo/",)
    shown = status.explain()
    assert "+ network: https://evil.example.net" in shown and "- filesystem.read: ~/.config/demo/" in shown
    with pytest.raises(ApprovalRequired, match="asks for more than you approved"):
        status.require()


def test_weaker_sandbox_counts_as_growth(store):
    store.approve(subject(key="k1"))
    weaker = BASE - {"sandbox: process"} | {"sandbox: none"}
    status = store.status(subject(weaker, manifest="sha256:m2", key="k1"))
    assert status.state == "changed" and status.diff.grows


def test_update_asking_nothing_more_by_same_publisher_is_accepted(store):
    store.approve(subject(key="k1"))
    fewer = BASE - {"filesystem.read: ~/.config/demo/"}
    status = store.status(subject(fewer, version="0.2.0", manifest="sha256:m2", code="sha256:c2", key="k1"))
    assert status.ok and status.via == "update"


@pytest.mark.parametrize("new_key", [None, "k2"], ids=["unsigned", "other-signer"])
def test_changed_code_without_the_approved_signer_needs_reapproval(store, new_key):
    store.approve(subject(key="k1" if new_key else None))
    status = store.status(subject(code="sha256:c2", key=new_key))
    assert status.state == "changed" and not status.diff.grows and "code changed" in status.reason


def test_org_preapproval_by_publisher_key(store, keypair, tmp_path):
    kid = key_id(parse_public_key(keypair[1]))
    assert store.status(subject(key=kid), preapproved_publishers=[keypair[1]]).via == "org-publisher"
    assert store.status(subject(key=kid), preapproved_publishers=[kid]).ok
    # the manifest cannot claim a publisher: only a verified key id counts
    assert not store.status(subject(key=None), preapproved_publishers=[kid]).ok


@pytest.mark.parametrize("mode", ["declared", "policy-only"])
def test_policy_modes_that_do_not_ask(store, mode):
    assert store.status(subject(), mode=mode).via == "policy"


def test_revoke(store):
    store.approve(subject())
    assert store.revoke("demo") and not store.revoke("demo")
    assert store.status(subject()).state == "needs-approval"


@pytest.mark.parametrize("text", ["{{{", "version: 9\n", "version: 1\nplugins:\n  demo: 3\n", "- a\n"])
def test_broken_store_fails_closed_with_a_clear_error(store, text):
    store.path.parent.mkdir(parents=True)
    store.path.write_text(text)
    with pytest.raises(ApprovalStoreError) as info:
        store.status(subject())
    assert str(store.path) in str(info.value)


def test_concurrent_approvals_lose_nothing(store):
    def approve(i):
        store_i = ApprovalStore(store.path)
        store_i.approve(ApprovalSubject(f"p{i}", "1.0.0", "sha256:m", "sha256:c", frozenset()))
    threads = [threading.Thread(target=approve, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(store.entries()) == sorted(f"p{i}" for i in range(8))


def test_default_path_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTLINE_APPROVALS", str(tmp_path / "a.yaml"))
    assert default_approvals_path() == tmp_path / "a.yaml"
    monkeypatch.delenv("PROMPTLINE_APPROVALS")
    assert default_approvals_path().name == "approvals.yaml"


def test_real_plugin_update_flow(tmp_path, store, keypair):
    """Sign v1, approve, ship v2 that adds a network host: re-approval with the diff."""
    root = make_plugin(tmp_path / "v1")
    sign_plugin(root, keypair[0])
    v1 = verify_plugin(root, [keypair[1]])
    store.approve(ApprovalSubject.from_verified(load_manifest(root / "plugin.yaml"), v1))
    assert store.status(ApprovalSubject.from_verified(load_manifest(root / "plugin.yaml"), v1)).ok
    root2 = make_plugin(tmp_path / "v2", version="0.2.0",
                        network='"https://api.example.com", "https://upload.example.org"')
    sign_plugin(root2, keypair[0])
    v2 = verify_plugin(root2, [keypair[1]])
    status = store.status(ApprovalSubject.from_verified(load_manifest(root2 / "plugin.yaml"), v2))
    assert status.state == "changed" and status.diff.added == ("network: https://upload.example.org",)


def test_capability_lines_from_a_manifest(plugin_dir):
    m = load_manifest(plugin_dir / "plugin.yaml")
    assert capability_lines(m.capabilities, m.sandbox) == BASE
    assert capability_diff(BASE, BASE).empty
