"""Archives: a round trip, and every hostile archive refused with nothing written outside staging."""

from __future__ import annotations

import tarfile

import pytest
from registry_helpers import huge_header, member, snapshot, tar_gz

from promptline.loaders._registry import RegistryError, _archive, build_archive, extract_archive

MANIFEST = b"id: demo\nversion: 0.1.0\nentry: {python: demo:Plugin}\n"


def test_round_trip_is_deterministic(tmp_path):
    files = {"plugin.yaml": MANIFEST, "pkg/mod.py": b"x = 1\n", "pkg/sub/data.txt": b"d"}
    a, b = build_archive(files, b"{}"), build_archive(dict(reversed(list(files.items()))), b"{}")
    assert a == b
    (tmp_path / "a.tar.gz").write_bytes(a)
    root = extract_archive(tmp_path / "a.tar.gz", tmp_path / "out")
    assert root == tmp_path / "out"
    assert (root / "pkg" / "sub" / "data.txt").read_bytes() == b"d"
    assert (root / "plugin.sig").read_bytes() == b"{}"
    assert oct((root / "pkg" / "mod.py").stat().st_mode & 0o777) == oct(0o600)


def test_single_top_level_directory_is_the_root(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(tar_gz([member("demo/", kind=tarfile.DIRTYPE),
                                                member("demo/plugin.yaml", MANIFEST)]))
    assert extract_archive(tmp_path / "a.tar.gz", tmp_path / "out") == tmp_path / "out" / "demo"


HOSTILE = {
    "dot-dot": ([member("plugin.yaml", MANIFEST), member("../escaped.txt")], "climbs out"),
    "dot-dot-deep": ([member("a/../../escaped.txt")], "climbs out"),
    "absolute": ([member("/tmp/escaped-absolute.txt")], "absolute path"),
    "symlink": ([member("link", kind=tarfile.SYMTYPE, link="/etc/passwd")], "is a symlink"),
    "symlink-then-write": ([member("d", kind=tarfile.SYMTYPE, link=".."), member("d/escaped.txt")], "is a symlink"),
    "hardlink": ([member("plugin.yaml", MANIFEST), member("h", kind=tarfile.LNKTYPE, link="/etc/passwd")],
                 "is a hard link"),
    "char-device": ([member("null", kind=tarfile.CHRTYPE)], "character device"),
    "block-device": ([member("sda", kind=tarfile.BLKTYPE)], "block device"),
    "fifo": ([member("pipe", kind=tarfile.FIFOTYPE)], "fifo"),
    "duplicate": ([member("plugin.yaml", MANIFEST), member("plugin.yaml", b"id: evil\n")], "appears twice"),
    "backslash": ([member("..\\escaped.txt")], "backslash"),
    "control-char": ([member("a\nb")], "control character"),
    "deep": ([member("/".join(["d"] * 40) + "/f")], "nested deeper"),
    "no-manifest": ([member("readme.txt")], "no plugin.yaml"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_archive_refused_and_nothing_escapes(tmp_path, name):
    members, message = HOSTILE[name]
    box = tmp_path / "box"
    box.mkdir()
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(tar_gz(members))
    before = snapshot(tmp_path)
    with pytest.raises(RegistryError, match=message) as exc:
        extract_archive(archive, box / "staging")
    assert exc.value.reason in ("bad-archive", "too-large")
    after = snapshot(tmp_path)
    outside = {p: v for p, v in after.items() if not p.startswith(str(box))}
    assert outside == {p: v for p, v in before.items() if not p.startswith(str(box))}
    assert [p.name for p in box.iterdir()] == ["staging"]   # the caller deletes staging
    assert not (tmp_path / "escaped.txt").exists() and not (box / "escaped.txt").exists()


def test_header_claiming_a_huge_size_is_refused_before_reading(tmp_path):
    archive = tmp_path / "huge.tar.gz"
    archive.write_bytes(huge_header("plugin.yaml", 2 ** 40))
    with pytest.raises(RegistryError, match="over the limit") as exc:
        extract_archive(archive, tmp_path / "staging")
    assert exc.value.reason == "too-large"


def test_zero_bomb_member_over_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(_archive, "MAX_MEMBER_BYTES", 1024 * 1024)
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(tar_gz([member("plugin.yaml", MANIFEST), member("zeros", b"\0" * (2 * 1024 * 1024))]))
    assert archive.stat().st_size < 20_000
    with pytest.raises(RegistryError, match="`zeros` is 2097152 bytes, over the limit"):
        extract_archive(archive, tmp_path / "staging")


def test_total_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(_archive, "MAX_TOTAL_BYTES", 3000)
    archive = tmp_path / "big.tar.gz"
    archive.write_bytes(tar_gz([member(f"f{i}", b"a" * 1000) for i in range(4)]))
    with pytest.raises(RegistryError, match="unpacks to more than 3000 bytes"):
        extract_archive(archive, tmp_path / "staging")


def test_too_many_files(tmp_path, monkeypatch):
    monkeypatch.setattr(_archive, "MAX_MEMBERS", 300)   # the real 10,000 takes seconds to unpack here
    archive = tmp_path / "many.tar.gz"
    archive.write_bytes(tar_gz([member("plugin.yaml", MANIFEST)] +
                               [member(f"f{i}", b"") for i in range(_archive.MAX_MEMBERS)]))
    with pytest.raises(RegistryError, match=f"more than {_archive.MAX_MEMBERS} entries") as exc:
        extract_archive(archive, tmp_path / "staging")
    assert exc.value.reason == "too-large"


def test_compressed_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(_archive, "MAX_ARCHIVE_BYTES", 100)
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(build_archive({"plugin.yaml": MANIFEST, "x": bytes(range(256)) * 4}))
    with pytest.raises(RegistryError, match="over the limit of 100"):
        extract_archive(archive, tmp_path / "staging")


@pytest.mark.parametrize("data", [b"", b"not gzip at all", b"\x1f\x8b\x08\x00garbage"], ids=["empty", "text", "bad-gzip"])
def test_not_an_archive(tmp_path, data):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(data)
    with pytest.raises(RegistryError) as exc:
        extract_archive(archive, tmp_path / "staging")
    assert exc.value.reason == "bad-archive"


def test_limits_are_named_constants():
    assert _archive.MAX_MEMBERS == 10_000
    assert _archive.MAX_TOTAL_BYTES >= _archive.MAX_MEMBER_BYTES
