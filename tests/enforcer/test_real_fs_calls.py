"""Ordinary file work inside a write grant, through the real audit hook and real syscalls.

CPython reports an absent ``dir_fd`` as ``-1`` (not None) on os.mkdir, remove, rmdir, rename,
link, symlink, chmod, chown and utime; shutil.rmtree and os.fwalk pass real dir_fds (and
``os.open``'s event hides them); shutil.copytree passes ``os.DirEntry`` objects. Each test runs
the stdlib call as plugin code: granted -> it works; the same call reaching outside the grant
(or with the grant removed) -> refused and logged.
"""

from __future__ import annotations

import glob
import os
import pathlib
import shutil
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptline.enforcer import PolicyViolation


def _rw(d) -> dict:
    return {"filesystem": {"read": [str(d) + "/"], "write": [str(d) + "/"]}}


def _tree(root: pathlib.Path) -> pathlib.Path:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f.txt").write_text("one")
    (root / "a" / "b" / "g.txt").write_text("two")
    return root / "a"


def ordinary_work(work: pathlib.Path) -> list[str]:
    """What a plugin author writes: every call below stays inside ``work``."""
    done = []
    (work / "new" / "deep").mkdir(parents=True)                       # Path.mkdir -> os.mkdir(..., -1)
    os.makedirs(work / "made" / "x", exist_ok=True)
    (work / "new" / "f.txt").write_text("hello")
    os.rename(work / "new" / "f.txt", work / "new" / "g.txt")
    os.replace(work / "new" / "g.txt", work / "new" / "f.txt")
    os.link(work / "new" / "f.txt", work / "new" / "hard.txt")
    os.symlink(work / "new" / "f.txt", work / "new" / "soft.txt")
    os.chmod(work / "new" / "f.txt", 0o640)
    os.utime(work / "new" / "f.txt")
    os.chown(work / "new" / "f.txt", -1, -1)
    os.remove(work / "new" / "hard.txt")
    (work / "new" / "soft.txt").unlink()
    done.append("os")
    src = _tree(work / "src")
    shutil.copytree(src, work / "copy")                               # os.DirEntry arguments
    shutil.copy2(work / "copy" / "f.txt", work / "copy" / "f2.txt")
    shutil.move(work / "copy" / "f2.txt", work / "made" / "f2.txt")
    (work / "made" / "f2.txt").rename(work / "made" / "f3.txt")
    done.append("shutil")
    assert sorted(os.listdir(work / "copy")) == ["b", "f.txt"]
    assert sorted(p.name for p in (work / "copy").rglob("*")) == ["b", "f.txt", "g.txt"]
    assert len(glob.glob(str(work / "copy" / "**"), recursive=True)) == 4
    walked = sorted(d for d, _, _ in os.walk(work / "copy"))
    fwalked = sorted(d for d, _, _, _ in os.fwalk(work / "copy"))    # real dir_fds, hidden os.open
    assert walked == fwalked
    done.append("walk")
    d = tempfile.mkdtemp(dir=work)
    with tempfile.TemporaryDirectory(dir=work) as t:
        (pathlib.Path(t) / "x").write_text("x")
    fd, name = tempfile.mkstemp(dir=work)
    os.close(fd)
    os.remove(name)
    with tempfile.NamedTemporaryFile(dir=work) as fh:
        fh.write(b"x")
    os.rmdir(d)
    done.append("tempfile")
    shutil.rmtree(work / "copy")                                      # real dir_fd, hidden os.open
    shutil.rmtree(work / "new")
    os.rmdir(work / "made" / "x")
    assert not (work / "copy").exists()
    done.append("rmtree")
    return done


def test_ordinary_work_inside_a_write_grant(plugins, fake_log):
    work = plugins.out / "work"
    work.mkdir()
    enf = plugins.make(_rw(plugins.out), audit_log=fake_log)
    with enf.guard("p1"):
        assert ordinary_work(work) == ["os", "shutil", "walk", "tempfile", "rmtree"]
    assert not [r for r in fake_log.records if r[3] == "deny"], fake_log.records


def test_the_same_work_without_the_grant_is_refused(plugins, fake_log):
    work = plugins.out / "work"
    work.mkdir()
    enf = plugins.make({"filesystem": {"read": [str(plugins.out) + "/"]}}, audit_log=fake_log)
    with enf.guard("p1"), pytest.raises(PolicyViolation) as info:
        ordinary_work(work)
    assert info.value.request.action == "fs.write"
    assert ("p1", "fs.write") in [(r[0], r[1]) for r in fake_log.records if r[3] == "deny"]


def _outside(plugins) -> pathlib.Path:
    return _tree(plugins.data / "victim")   # victim/f.txt, victim/b/g.txt


def test_rmtree_reaching_outside_the_grant_is_refused(plugins, fake_log):
    victim = _outside(plugins)
    enf = plugins.make(_rw(plugins.out), audit_log=fake_log)
    # a symlink inside the grant to a directory outside: rmtree's dir_fds name the real place
    link = plugins.out / "link"
    os.symlink(victim, link)
    with enf.guard("p1"):
        with pytest.raises(PolicyViolation):
            shutil.rmtree(victim)
        with pytest.raises(PolicyViolation):
            shutil.rmtree(str(link) + "/b")
        _tree(plugins.out / "mine")
        shutil.rmtree(plugins.out / "mine")              # honest control in the same test
    assert (victim / "b" / "g.txt").read_text() == "two"
    assert not (plugins.out / "mine").exists()
    assert any(r[1] == "fs.write" and r[3] == "deny" for r in fake_log.records)


@pytest.mark.parametrize("call", ["mkdir", "remove", "rmdir", "rename_src", "rename_dst", "link",
                                  "symlink", "chmod", "utime", "fwalk", "scandir_fd"])
def test_a_real_dir_fd_is_decided_on_the_directory_it_names(plugins, fake_log, call):
    victim = _outside(plugins)
    mine = _tree(plugins.out / "mine")
    other = plugins.out / "other"          # granted: the other side of rename/link
    other.mkdir()
    for d in (victim, mine):
        (d / "empty").mkdir()
    enf = plugins.make(_rw(plugins.out), audit_log=fake_log)

    def run(d: pathlib.Path) -> None:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        ofd = os.open(other, os.O_RDONLY | os.O_DIRECTORY)
        try:
            {"mkdir": lambda: os.mkdir("m", dir_fd=fd),
             "remove": lambda: os.remove("f.txt", dir_fd=fd),
             "rmdir": lambda: os.rmdir("empty", dir_fd=fd),
             "rename_src": lambda: os.rename("f.txt", "moved.txt", src_dir_fd=fd, dst_dir_fd=ofd),
             "rename_dst": lambda: (pathlib.Path(other / "n.txt").write_text("n"),
                                    os.rename("n.txt", "moved.txt", src_dir_fd=ofd, dst_dir_fd=fd)),
             "link": lambda: os.link("f.txt", "l.txt", src_dir_fd=fd, dst_dir_fd=ofd),
             "symlink": lambda: os.symlink("/etc/hostname", "s", dir_fd=fd),
             "chmod": lambda: os.chmod("f.txt", 0o600, dir_fd=fd),
             "utime": lambda: os.utime("f.txt", dir_fd=fd),
             "fwalk": lambda: list(os.fwalk("b", dir_fd=fd)),
             "scandir_fd": lambda: list(os.scandir(fd)),
             }[call]()
        finally:
            os.close(fd)
            os.close(ofd)

    with enf.guard("p1"):
        with pytest.raises(PolicyViolation):
            run(victim)
        run(mine)                          # the honest control, same call, inside the grant
    assert sorted(p.name for p in victim.iterdir()) == ["b", "empty", "f.txt"]
    assert any(r[3] == "deny" for r in fake_log.records)


def test_relative_os_open_outside_known_stdlib_callers_stays_refused(plugins):
    enf = plugins.make(_rw(plugins.data))
    dfd = os.open(plugins.data, os.O_RDONLY)
    try:
        with enf.guard("p1"):
            with pytest.raises(PolicyViolation):
                os.open("a.txt", os.O_RDONLY, dir_fd=dfd)
            os.close(os.open(str(plugins.data / "a.txt"), os.O_RDONLY))   # the honest spelling
    finally:
        os.close(dfd)


def test_direntry_arguments_are_read_as_their_path(plugins, fake_log):
    src = _tree(plugins.data / "tree")
    enf = plugins.make({"filesystem": {"read": [str(plugins.data) + "/"], "write": [str(plugins.out) + "/"]}},
                       audit_log=fake_log)
    entries = {e.name: e for e in os.scandir(src)}
    with enf.guard("p1"):
        shutil.copyfile(entries["f.txt"], plugins.out / "f.txt")
        shutil.copytree(entries["b"], plugins.out / "b")
        with pytest.raises(PolicyViolation):
            shutil.copyfile(entries["f.txt"], plugins.data / "again.txt")   # dst outside the write grant
    assert (plugins.out / "b" / "g.txt").read_text() == "two"


SAFE_NAME = st.text(alphabet="abcxyz", min_size=1, max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op=st.sampled_from(["mkdir", "remove", "rmdir", "chmod", "utime", "rename", "symlink", "open_w"]),
       where=st.sampled_from(["granted", "outside", "link_to_outside"]),
       via=st.sampled_from(["absolute", "dir_fd", "relative_cwd"]),
       name=SAFE_NAME)
def test_property_the_decision_follows_the_real_target(plugins, op, where, via, name):
    """Whatever the spelling (absolute, relative to a real dir_fd, relative to the cwd,
    through a symlinked directory), a call is allowed iff the file it really touches is
    inside the write grant."""
    granted = plugins.out / "g"
    outside = plugins.data / "o"
    for d in (granted, outside):
        d.mkdir(exist_ok=True)
    link = granted / "to_outside"
    if not link.exists():
        os.symlink(outside, link)
    base = {"granted": granted, "outside": outside, "link_to_outside": link}[where]
    target = base / name
    if op in ("remove", "chmod", "utime", "rename"):
        target.write_text("x")
    elif op == "rmdir":
        target.mkdir(exist_ok=True)
    enf = plugins.make({"filesystem": {"read": [str(granted) + "/"], "write": [str(granted) + "/"]}})
    expect_allowed = os.path.realpath(base).startswith(os.path.realpath(granted) + "/") or \
        os.path.realpath(base) == os.path.realpath(granted)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    cwd = os.getcwd()
    try:
        if via == "relative_cwd":
            os.chdir(base)
        spelled = {"absolute": str(target), "dir_fd": name, "relative_cwd": name}[via]
        kw = {"dir_fd": fd} if via == "dir_fd" else {}
        call = {
            "mkdir": lambda: os.mkdir(spelled + "_d", **kw),
            "remove": lambda: os.remove(spelled, **kw),
            "rmdir": lambda: os.rmdir(spelled, **kw),
            "chmod": lambda: os.chmod(spelled, 0o600, **kw),
            "utime": lambda: os.utime(spelled, **kw),
            "rename": lambda: os.rename(spelled, spelled + "_r", **({"src_dir_fd": fd, "dst_dir_fd": fd} if kw else {})),
            "symlink": lambda: os.symlink("/etc/hostname", spelled + "_l", **kw),
            "open_w": lambda: os.close(os.open(spelled + "_w", os.O_WRONLY | os.O_CREAT, **kw)),
        }[op]
        with enf.guard("p1"):
            if expect_allowed and not (op == "open_w" and via != "absolute"):
                call()
            else:
                # relative os.open from plugin code is refused whatever it names (its dir_fd
                # is invisible to the hook); everything else outside the grant is refused
                with pytest.raises(PolicyViolation):
                    call()
    finally:
        os.chdir(cwd)
        os.close(fd)
        enf.uninstall()
        for d in (granted, outside):
            for p in d.iterdir():
                if p.is_symlink() or p.is_file():
                    p.unlink()
                elif p.is_dir():
                    shutil.rmtree(p)
        if not link.exists():
            os.symlink(outside, link)


def test_event_arguments_cpython_really_passes():
    """The table rows are written from real events: an absent dir_fd is -1 on every version."""
    seen = {}

    def hook(event, args):
        if event in ("os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.chmod", "os.utime",
                     "os.symlink", "os.link", "os.chown") and "pl-ev" in str(args[0]) + str(args[1:2]):
            seen[event] = args
    sys.addaudithook(hook)
    d = pathlib.Path(tempfile.mkdtemp(prefix="pl-ev"))
    try:
        (d / "x").mkdir()
        (d / "f").write_text("")
        os.chmod(d / "f", 0o600)
        os.utime(d / "f")
        os.chown(d / "f", -1, -1)
        os.link(d / "f", d / "h")
        os.symlink(d / "f", d / "s")
        os.rename(d / "h", d / "h2")
        os.remove(d / "h2")
        os.rmdir(d / "x")
    finally:
        shutil.rmtree(d)
    assert seen["os.mkdir"][-1] == -1 and seen["os.remove"][-1] == -1 and seen["os.rmdir"][-1] == -1
    assert seen["os.rename"][-2:] == (-1, -1) and seen["os.link"][-2:] == (-1, -1)
    assert seen["os.symlink"][-1] == -1 and seen["os.chmod"][-1] == -1 and seen["os.utime"][-1] == -1
    assert seen["os.chown"][-1] == -1
