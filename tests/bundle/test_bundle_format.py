"""Bundle format: what is signed is what is read; tampering, wrong keys and path tricks are refused."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptline.loaders import BundleError, build_bundle, generate_key, read_bundle, sign_bundle, verify_bundle
from promptline.loaders._bundle._format import MAX_EXPANDED_BYTES, MEMBER, pack
from promptline.loaders._signing import load_private_key

ORG = "apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules:\n  - {id: r1, effect: deny, actions: [fs.read]}\n"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("bkeys")
    pub = generate_key(d / "org.pem")
    other = generate_key(d / "other.pem")
    return load_private_key(d / "org.pem"), pub, load_private_key(d / "other.pem"), other


@pytest.fixture
def src(tmp_path, keys):
    d = tmp_path / "org"
    (d / "keys").mkdir(parents=True)
    (d / "org.yaml").write_text(ORG)
    (d / "org.test.yaml").write_text("not bundled")
    (d / "keys" / "publisher.pub").write_text(keys[3] + "\n")
    return d


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def test_build_sign_verify_roundtrip_is_deterministic(src, keys):
    a, b = build_bundle(src, 7), build_bundle(src, 7)
    assert a == b
    signed = sign_bundle(a, keys[0])
    bundle = verify_bundle(signed, [keys[1]])
    assert bundle.revision == 7 and bundle.policy_names == ["policies/org.yaml"]
    assert bundle.files["policies/org.yaml"] == ORG.encode()
    assert bundle.trusted_keys == [keys[3]]
    assert "policies/org.test.yaml" not in bundle.files
    assert set(_members(signed)) == {"bundle.json", "bundle.sig", "policies/org.yaml", "keys/publisher.pub"}


def test_unsigned_and_wrong_key_are_refused(src, keys):
    data = build_bundle(src, 1)
    with pytest.raises(BundleError) as e:
        verify_bundle(data, [keys[1]])
    assert e.value.reason == "unsigned"
    with pytest.raises(BundleError) as e:
        verify_bundle(sign_bundle(data, keys[2]), [keys[1]])
    assert e.value.reason == "untrusted-key"
    assert verify_bundle(sign_bundle(data, keys[0]), [keys[3], keys[1]]).revision == 1   # control


@pytest.mark.parametrize("how, reason", [
    ("policy byte", "file-changed"),
    ("manifest", "bad-signature"),
    ("added file", "file-added"),
    ("removed file", "file-removed"),
    ("signature swapped", "untrusted-key"),
])
def test_tampering_is_refused(src, keys, how, reason):
    signed = sign_bundle(build_bundle(src, 3), keys[0])
    m = _members(signed)
    if how == "policy byte":
        m["policies/org.yaml"] = m["policies/org.yaml"].replace(b"deny", b"allo")
    elif how == "manifest":
        man = json.loads(m["bundle.json"])
        man["revision"] = 99
        m["bundle.json"] = json.dumps(man).encode()
    elif how == "added file":
        m["policies/extra.yaml"] = ORG.encode()
    elif how == "removed file":
        del m["keys/publisher.pub"]
    elif how == "signature swapped":
        m["bundle.sig"] = _members(sign_bundle(build_bundle(src, 3), keys[2]))["bundle.sig"]
    with pytest.raises(BundleError) as e:
        verify_bundle(pack(m), [keys[1]])
    assert e.value.reason == reason, str(e.value)


def _tar_with(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        manifest = json.dumps({"format": "promptline-bundle/v1", "revision": 1, "files": {}}).encode()
        mi = tarfile.TarInfo("bundle.json")
        mi.size = len(manifest)
        tar.addfile(mi, io.BytesIO(manifest))
        info.size = len(data) if info.isreg() else 0
        tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(raw.getvalue())


TRICKS = ["../evil.yaml", "/etc/evil.yaml", "policies/../../evil.yaml", "policies/./org.yaml", "policies//org.yaml",
          "policies/sub/org.yaml", "policies/.hidden.yaml", "policies/org.yaml/", "keys/../bundle.json",
          "policies/\u202eyaml.lmth", "POLICIES/org.yaml", "policies\\org.yaml",
          "policies/org.txt", "bundle.json.sig", "./bundle.json"]


@pytest.mark.parametrize("name", TRICKS)
def test_path_tricks_are_refused_on_read(name):
    info = tarfile.TarInfo(name)
    with pytest.raises(BundleError) as e:
        read_bundle(_tar_with(info, ORG.encode()))
    assert e.value.reason == "unsafe-member"


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
def test_links_directories_and_devices_are_refused(kind):
    info = tarfile.TarInfo("policies/org.yaml")
    info.type = kind
    info.linkname = "/etc/passwd"
    with pytest.raises(BundleError) as e:
        read_bundle(_tar_with(info))
    assert e.value.reason == "unsafe-member"


@settings(max_examples=200, deadline=None)
@given(name=st.text(st.sampled_from("./\\\x00policieskeysyamlpub-_ \u202e"), min_size=1, max_size=30))
def test_any_member_name_outside_the_grammar_is_refused(name):
    info = tarfile.TarInfo(name)
    try:
        data = _tar_with(info, ORG.encode())
    except (ValueError, UnicodeError):
        return
    if name in ("bundle.json", "bundle.sig"):
        return
    try:
        read_bundle(data)
    except BundleError as exc:
        # refused: either its name, or (a well-formed name) because the manifest does not list it
        assert exc.reason in ("unsafe-member", "file-added", "malformed")
        if exc.reason == "file-added":
            assert MEMBER.match(name.split("\x00")[0].rstrip("/"))
        return
    raise AssertionError(f"{name!r} was accepted")


def test_duplicates_bombs_and_garbage_are_refused(src, keys):
    m = _members(build_bundle(src, 1))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in ["bundle.json", "policies/org.yaml", "policies/org.yaml"]:
            ti = tarfile.TarInfo(name)
            ti.size = len(m[name])
            tar.addfile(ti, io.BytesIO(m[name]))
    with pytest.raises(BundleError, match="twice"):
        read_bundle(gzip.compress(raw.getvalue()))
    with pytest.raises(BundleError) as e:
        read_bundle(gzip.compress(b"\0" * (MAX_EXPANDED_BYTES + 10)))
    assert e.value.reason == "too-large"
    for junk in [b"", b"not gzip", gzip.compress(b"not a tar")[:-3], gzip.compress(b"garbage" * 100)]:
        with pytest.raises(BundleError):
            read_bundle(junk)
    good = build_bundle(src, 1)
    with pytest.raises(BundleError):
        read_bundle(good[: len(good) // 2])
    assert read_bundle(good).revision == 1


def test_build_refuses_symlinks_and_empty_dirs(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    with pytest.raises(BundleError, match="no policy file"):
        build_bundle(d, 1)
    (tmp_path / "real.yaml").write_text(ORG)
    (d / "org.yaml").symlink_to(tmp_path / "real.yaml")
    with pytest.raises(BundleError, match="symlinks"):
        build_bundle(d, 1)
    with pytest.raises(BundleError, match="revision"):
        build_bundle(d, 0)


def test_a_bundle_without_a_policy_file_is_refused(src, keys):
    m = _members(build_bundle(src, 2))
    del m["policies/org.yaml"]
    man = json.loads(m["bundle.json"])
    del man["files"]["policies/org.yaml"]
    m["bundle.json"] = json.dumps(man).encode()
    with pytest.raises(BundleError, match="no policy file"):
        read_bundle(pack(m))
