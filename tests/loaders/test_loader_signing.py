"""Signatures: any changed byte, added, removed or renamed file, swapped key, or symlink
trick is refused, and the loader gets exactly the bytes that were verified."""

from __future__ import annotations

import json
import os
import stat

import pytest

from promptline.loaders._errors import SignatureError
from promptline.loaders._signing import (
    IGNORED_DIRS,
    generate_key,
    key_id,
    load_private_key,
    parse_public_key,
    read_tree,
    sign_plugin,
    verify_plugin,
)
from promptline.policy._errors import PromptLineError


@pytest.fixture
def signed(plugin_dir, keypair):
    sign_plugin(plugin_dir, keypair[0])
    return plugin_dir


def refused(root, keys, reason):
    with pytest.raises(SignatureError) as info:
        verify_plugin(root, keys)
    assert info.value.reason == reason, str(info.value)
    assert isinstance(info.value, PromptLineError)
    return info.value


def test_signed_plugin_verifies_and_snapshots_every_file(signed, keypair):
    v = verify_plugin(signed, [keypair[1]])
    assert v.signed and v.key_id == key_id(parse_public_key(keypair[1]))
    assert sorted(v.files) == ["data/words.txt", "demo.py", "plugin.yaml"]
    assert v.files["data/words.txt"] == b"alpha\nbeta\n"
    assert v.digest.startswith("sha256:") and v.code_digest == v.digest
    assert v.manifest_digest.startswith("sha256:") and v.manifest_digest != v.digest


def test_snapshot_is_what_was_verified_not_what_is_on_disk_later(signed, keypair):
    v = verify_plugin(signed, [keypair[1]])
    (signed / "demo.py").write_text("import os; os.system('evil')\n")
    assert b"evil" not in v.files["demo.py"]


@pytest.mark.parametrize("rel", ["demo.py", "plugin.yaml", "data/words.txt"])
def test_any_changed_byte_is_refused(signed, keypair, rel):
    path = signed / rel
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))
    err = refused(signed, [keypair[1]], "file-changed")
    assert err.path == rel and "expected sha256" in str(err) and "found sha256" in str(err)


@pytest.mark.parametrize("rel", ["extra.py", "data/more.txt", "newdir/x.py", ".hidden"])
def test_added_file_is_refused(signed, keypair, rel):
    (signed / rel).parent.mkdir(exist_ok=True)
    (signed / rel).write_text("x")
    err = refused(signed, [keypair[1]], "file-added")
    assert err.path == rel


def test_removed_file_is_refused(signed, keypair):
    (signed / "data" / "words.txt").unlink()
    assert refused(signed, [keypair[1]], "file-removed").path == "data/words.txt"


def test_renamed_file_is_refused(signed, keypair):
    (signed / "demo.py").rename(signed / "demo2.py")
    err = refused(signed, [keypair[1]], "file-renamed")
    assert "`demo.py` was renamed to `demo2.py`" in str(err)


def test_unsigned_is_refused_with_how_to_sign(plugin_dir, keypair):
    err = refused(plugin_dir, [keypair[1]], "unsigned")
    assert "promptline plugin sign" in str(err)


def test_unsigned_allowed_when_not_required(plugin_dir, keypair):
    v = verify_plugin(plugin_dir, [keypair[1]], require_signature=False)
    assert not v.signed and v.key_id is None and "plugin.yaml" in v.files


def test_untrusted_key_is_refused_naming_both_keys(signed, keypair, other_keypair):
    err = refused(signed, [other_keypair[1]], "untrusted-key")
    assert err.found == key_id(parse_public_key(keypair[1]))
    assert key_id(parse_public_key(other_keypair[1])) in err.expected


def test_untrusted_key_counts_as_unsigned_when_not_required(signed, other_keypair):
    v = verify_plugin(signed, [other_keypair[1]], require_signature=False)
    assert not v.signed and "untrusted" in v.note


def test_tampering_refused_even_when_signatures_not_required(signed, other_keypair):
    (signed / "demo.py").write_text("evil = 1\n")
    with pytest.raises(SignatureError) as info:
        verify_plugin(signed, [other_keypair[1]], require_signature=False)
    assert info.value.reason == "file-changed"


def test_swapped_key_in_signature_file_is_refused(signed, keypair, other_keypair):
    """An attacker re-signs the tampered tree with their own key and puts it in plugin.sig."""
    (signed / "demo.py").write_text("evil = 1\n")
    sign_plugin(signed, other_keypair[0])
    refused(signed, [keypair[1]], "untrusted-key")


def test_key_replaced_but_signature_kept_is_refused(signed, keypair, other_keypair):
    sig = signed / "plugin.sig"
    doc = json.loads(sig.read_text())
    doc["key"] = other_keypair[1]
    doc.pop("key_id")
    sig.write_text(json.dumps(doc))
    refused(signed, [keypair[1], other_keypair[1]], "bad-signature")


def test_edited_file_list_with_matching_digest_is_refused(signed, keypair):
    """Rewriting plugin.sig's file list and digest to match tampered files breaks the signature."""
    from promptline.loaders._signing import read_tree, tree_digest
    (signed / "demo.py").write_text("evil = 1\n")
    tree = read_tree(signed)
    sig = signed / "plugin.sig"
    doc = json.loads(sig.read_text())
    doc["files"] = dict(tree.hashes)
    doc["digest"] = tree_digest(tree.hashes)
    sig.write_text(json.dumps(doc))
    refused(signed, [keypair[1]], "bad-signature")


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside.txt", "demo.py"])
def test_symlink_anywhere_is_refused(signed, keypair, target):
    (signed.parent / "outside.txt").write_text("secret")
    os.symlink(target, signed / "data" / "link.txt")
    err = refused(signed, [keypair[1]], "symlink")
    assert err.path == "data/link.txt" and target in str(err)


def test_symlinked_directory_is_refused(signed, keypair, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.py").write_text("x")
    os.symlink(tmp_path / "elsewhere", signed / "lib")
    refused(signed, [keypair[1]], "symlink")


def test_symlink_replacing_a_signed_file_is_refused(signed, keypair, tmp_path):
    (tmp_path / "copy.py").write_bytes((signed / "demo.py").read_bytes())
    (signed / "demo.py").unlink()
    os.symlink(tmp_path / "copy.py", signed / "demo.py")
    refused(signed, [keypair[1]], "symlink")


def test_fifo_is_refused(signed, keypair):
    os.mkfifo(signed / "pipe")
    refused(signed, [keypair[1]], "special-file")


def test_signing_refuses_symlinks_too(plugin_dir, keypair):
    os.symlink("/etc/passwd", plugin_dir / "passwd")
    with pytest.raises(SignatureError) as info:
        sign_plugin(plugin_dir, keypair[0])
    assert info.value.reason == "symlink"


def test_caches_from_running_the_plugins_tests_are_ignored_and_never_loaded(signed, keypair):
    for d in IGNORED_DIRS:
        (signed / d).mkdir()
        (signed / d / "demo.cpython-311.pyc").write_bytes(b"\x00evil")
    v = verify_plugin(signed, [keypair[1]])
    assert not any(p.startswith(tuple(IGNORED_DIRS)) for p in v.files)


@pytest.mark.parametrize("edit", ["not json", '{"format": "other/v9"}', '{"format": "promptline-signature/v1"}'])
def test_malformed_signature_file_is_refused(signed, keypair, edit):
    (signed / "plugin.sig").write_text(edit)
    refused(signed, [keypair[1]], "malformed")


def test_plugin_root_itself_may_be_a_symlink(signed, keypair, tmp_path):
    link = tmp_path / "linked-plugin"
    os.symlink(signed, link)
    assert verify_plugin(link, [keypair[1]]).signed


# --- keys -----------------------------------------------------------------------------


def test_generated_private_key_is_0600_pem_and_public_key_round_trips(tmp_path):
    pub = generate_key(tmp_path / "k.pem")
    assert stat.S_IMODE(os.stat(tmp_path / "k.pem").st_mode) == 0o600
    assert (tmp_path / "k.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (tmp_path / "k.pem.pub").read_text().strip() == pub
    assert pub.startswith("ed25519:")
    assert len(key_id(parse_public_key(pub))) == 16


def test_generate_never_overwrites(tmp_path):
    generate_key(tmp_path / "k.pem")
    with pytest.raises(SignatureError, match="already exists"):
        generate_key(tmp_path / "k.pem")


def test_private_key_readable_by_others_is_refused(tmp_path):
    generate_key(tmp_path / "k.pem")
    os.chmod(tmp_path / "k.pem", 0o644)
    with pytest.raises(SignatureError, match="chmod 600"):
        load_private_key(tmp_path / "k.pem")


@pytest.mark.parametrize("text", ["rsa:AAAA", "ed25519:not-base64!!", "ed25519:AAAA", "AAAA"])
def test_bad_public_keys_are_errors_not_guesses(text):
    with pytest.raises(SignatureError) as info:
        parse_public_key(text)
    assert info.value.reason == "bad-key"


def test_non_ed25519_private_key_is_refused(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ec.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)
    with pytest.raises(SignatureError, match="not an ed25519 key"):
        load_private_key(path)


def test_read_tree_digest_is_stable_and_order_independent(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, order in ((a, ["x", "y", "z"]), (b, ["z", "y", "x"])):
        root.mkdir()
        for name in order:
            (root / name).write_text(name)
    assert read_tree(a).digest == read_tree(b).digest


def test_materialize_writes_exactly_the_verified_bytes(signed, keypair, tmp_path):
    from promptline.loaders._signing import materialize
    v = verify_plugin(signed, [keypair[1]])
    (signed / "demo.py").write_text("evil = 1\n")  # changed after verification: not copied
    copy = materialize(v, tmp_path / "run", executable=["demo.py"])
    assert read_tree(copy).hashes == v.hashes
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(copy / "demo.py").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(copy / "data" / "words.txt").st_mode) == 0o600


def test_three_signature_states_are_kept_apart(signed, plugin_dir, keypair, other_keypair, tmp_path):
    """Signed by a trusted key, validly signed by another key, and unsigned are three states
    in the snapshot, in the audit log's `verified` record and in `plugin list`."""
    from promptline.enforcer.audit import AuditLog, read_records
    from promptline.loaders import ApprovalStore, PluginManager

    trusted = verify_plugin(signed, [keypair[1]], require_signature=False)
    untrusted = verify_plugin(signed, [other_keypair[1]], require_signature=False)
    assert (trusted.state, untrusted.state) == ("trusted", "untrusted-key")
    assert untrusted.untrusted_key_id == key_id(parse_public_key(keypair[1])) and not untrusted.signed
    (signed / "plugin.sig").unlink()
    assert verify_plugin(signed, [keypair[1]], require_signature=False).state == "unsigned"
    sign_plugin(signed, keypair[0])

    log = AuditLog(tmp_path / "audit.jsonl")
    with PluginManager(search_path=[plugin_dir.parent], config_path=False, entry_points=False, audit_log=log,
                       approvals=ApprovalStore(tmp_path / "approvals.yaml")) as pm:
        pm.load_all()
    log.close()
    details = [r["detail"] for r in read_records(str(tmp_path / "audit.jsonl")) if r.get("event") == "verified"]
    assert details == [f"signed by untrusted key {untrusted.untrusted_key_id}"]
