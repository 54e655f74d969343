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
