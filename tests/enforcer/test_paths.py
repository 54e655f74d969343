"""enforcer._paths.resolve: realpath with a validated directory cache."""

import os

from promptline.enforcer._paths import resolve


def test_resolve_matches_realpath(tmp_path):
    (tmp_path / "x" / "dir").mkdir(parents=True)
    os.symlink(tmp_path / "x", tmp_path / "link")
    p = str(tmp_path / "link" / "dir" / "f")
    assert resolve(p) == os.path.realpath(p) == str(tmp_path / "x" / "dir" / "f")


def test_renamed_directory_and_repointed_symlink_are_not_served_from_the_cache(tmp_path):
    (tmp_path / "x" / "dir").mkdir(parents=True)
    (tmp_path / "y").mkdir()
    os.symlink(tmp_path / "x", tmp_path / "link")
    p = str(tmp_path / "link" / "dir" / "f")
    assert resolve(p) == str(tmp_path / "x" / "dir" / "f")          # now cached
    os.rename(tmp_path / "x" / "dir", tmp_path / "y" / "dir")       # same inode, new place
    os.unlink(tmp_path / "link")
    os.symlink(tmp_path / "y", tmp_path / "link")
    assert resolve(p) == os.path.realpath(p) == str(tmp_path / "y" / "dir" / "f")


def test_symlinked_last_component_is_followed(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", tmp_path / "d" / "innocent")
    assert resolve(str(tmp_path / "d" / "innocent")) == str(tmp_path / "secret")


def test_resolve_identity_is_the_files_identity_and_none_for_a_symlink(tmp_path):
    from promptline.enforcer._paths import resolve_identity
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    os.symlink(tmp_path / "d" / "f", tmp_path / "d" / "link")
    for _ in range(2):   # cold and cached directory
        st = os.stat(tmp_path / "d" / "f")
        assert resolve_identity(str(tmp_path / "d" / "f")) == (str(tmp_path / "d" / "f"), (st.st_dev, st.st_ino))
        assert resolve_identity(str(tmp_path / "d" / "link")) == (str(tmp_path / "d" / "f"), None)
        assert resolve_identity(str(tmp_path / "d" / "missing")) == (str(tmp_path / "d" / "missing"), None)


def test_a_cached_allow_is_not_served_after_the_file_becomes_a_symlink(plugins):
    """The hook's open() cache: an allowed path string, then swapped for a symlink to a
    file outside the grant (and back to a fresh file: a new inode) — real open() calls."""
    import pytest

    from promptline.enforcer import PolicyViolation
    readable = plugins.root / "readable"
    readable.mkdir()
    good = readable / "ok.txt"
    good.write_text("fine")
    enf = plugins.make({"filesystem": {"read": [str(readable) + "/"]}})
    with enf.guard("p1"):
        for _ in range(3):
            assert open(good).read() == "fine"   # decided once, then from the cache
    good.unlink()
    os.symlink(plugins.data / "secret.txt", good)   # same path string, now the secret
    with enf.guard("p1"), pytest.raises(PolicyViolation):
        open(good).read()
    good.unlink()
    good.write_text("again")                         # a new file at the path: decided again
    with enf.guard("p1"):
        assert open(good).read() == "again"
