"""The hook's cache of allowed open() calls, keyed on the event's own arguments
(plugin, path, mode, flags): real open() calls from plugin context."""

from __future__ import annotations

import os
import pathlib

import pytest

from promptline.enforcer import PolicyViolation


@pytest.fixture
def reader(plugins):
    readable = plugins.root / "readable"
    readable.mkdir()
    (readable / "ok.txt").write_text("fine")
    enf = plugins.make({"filesystem": {"read": [str(readable) + "/"]}})
    return enf, readable / "ok.txt"


@pytest.mark.parametrize("spelling", [str, os.fsencode, pathlib.Path])
def test_a_cached_read_does_not_open_the_file_for_writing(reader, spelling):
    enf, ok = reader
    with enf.guard("p1"):
        for _ in range(3):
            assert open(spelling(str(ok))).read() == "fine"      # decided, then cached
        for mode in ("a", "r+", "w"):
            with pytest.raises(PolicyViolation):
                open(spelling(str(ok)), mode)
        with pytest.raises(PolicyViolation):
            os.open(spelling(str(ok)), os.O_WRONLY)
        fd = os.open(spelling(str(ok)), os.O_RDONLY)               # control: read flags
        os.close(fd)
    assert ok.read_text() == "fine"


def test_a_cached_allow_is_per_plugin(plugins):
    readable = plugins.root / "readable"
    readable.mkdir()
    (readable / "ok.txt").write_text("fine")
    enf = plugins.make({"filesystem": {"read": [str(readable) + "/"]}}, extra={"p2": {}})
    with enf.guard("p1"):
        assert open(readable / "ok.txt").read() == "fine"
    with enf.guard("p2"), pytest.raises(PolicyViolation):
        open(readable / "ok.txt")


def test_a_cached_path_renamed_over_by_a_secret_is_decided_again(reader, plugins):
    enf, ok = reader
    with enf.guard("p1"):
        assert open(ok).read() == "fine"
        assert open(ok).read() == "fine"
    link = ok.parent / "swap"
    os.symlink(plugins.data / "secret.txt", link)
    os.replace(link, ok)                 # the same name is now a symlink to the secret
    with enf.guard("p1"), pytest.raises(PolicyViolation):
        open(ok)
