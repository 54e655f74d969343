"""A root host's child: the permission checks a program makes itself agree with the kernel's.

``access(2)``/``faccessat`` check the *real* ids, ``open(2)`` the effective ones. A root host's
child used to run with an unprivileged real uid (so RLIMIT_NPROC would bind), and programs
that ask ``access`` before they write — git among them — refused their own granted work dir.
Now the child keeps real uid = effective uid, counts its processes in a pids cgroup of its
own, and only its real gid is apart (every exec still in secure-execution mode, not
dumpable). These tests run real children — exec'd through the shim, forked from the
template (the in-child hook switched off) and under bubblewrap — against real files of
every mode and owner, with the walls' controls: Landlock still refuses what is not granted.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from promptline.loaders._process import ContainerLoader, ProcessLoader, landlock_abi  # noqa: E402
from promptline.loaders._process._launch import bwrap_path  # noqa: E402

if not sys.platform.startswith("linux") or landlock_abi() < 4:
    pytest.skip("the real-id tests need Linux with Landlock ABI >= 4", allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("the real-id tests are about a root host", allow_module_level=True)
GIT = shutil.which("git")

from sandbox_helpers import load, run, write_probe_plugin, write_python_plugin  # noqa: E402

OWNERS = ((0, 0), (0, 1000), (1000, 0), (1000, 1000))
MODES = range(0o1000)
CHECK = '''
import os, errno
MODES = {"r": os.R_OK, "w": os.W_OK, "x": os.X_OK}

def _op(path, what, is_dir):
    try:
        if is_dir and what == "r":
            os.listdir(path)
        elif is_dir and what == "x":
            try:
                os.stat(os.path.join(path, "absent"))
            except FileNotFoundError:
                pass
        elif is_dir:
            return None   # a write into a directory needs x too: compared through access only
        else:
            if what == "x":
                return None
            os.close(os.open(path, os.O_RDONLY if what == "r" else os.O_WRONLY))
    except PermissionError:
        return False
    return True

def check(items):
    """items: [path, spelling]; the disagreements of the real-id check with the effective
    one and with the operation itself."""
    bad = []
    for path, spelling in items:
        is_dir = os.path.isdir(path) and not os.path.islink(path)
        for what, m in MODES.items():
            if spelling == "dir_fd":
                fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
                try:
                    real = os.access(os.path.basename(path), m, dir_fd=fd)
                    eff = os.access(os.path.basename(path), m, dir_fd=fd, effective_ids=True)
                finally:
                    os.close(fd)
            elif spelling == "nofollow":
                real = os.access(path, m, follow_symlinks=False)
                eff = os.access(path, m, follow_symlinks=False, effective_ids=True)
            elif spelling == "bytes":
                real = os.access(os.fsencode(path), m)
                eff = os.access(os.fsencode(path), m, effective_ids=True)
            else:
                real, eff = os.access(path, m), os.access(path, m, effective_ids=True)
            done = _op(path, what, is_dir)
            if real != eff or (done is not None and done != real):
                bad.append([path, spelling, what, real, eff, done])
    return bad
'''
HOOK_OFF = '''
import ctypes
from promptline.enforcer import _hook
ctypes.pythonapi.Py_IncRef(ctypes.py_object(None))
ctypes.pythonapi.PyList_SetItem(ctypes.py_object(_hook.BOX), ctypes.c_ssize_t(0), ctypes.py_object(None))
assert _hook.BOX[0] is None
'''
PYTHON_PROBE = '''
def probe(arg):
    ns = {"result": None}
    exec(arg, ns)
    return ns["result"]
'''


def _tree(root: Path) -> list[str]:
    """A file and a directory of every mode for every owner pair, and symlinks to some."""
    paths = []
    for uid, gid in OWNERS:
        for mode in MODES:
            for kind in ("f", "d"):
                p = root / f"{kind}{mode:03o}-{uid}-{gid}"
                if kind == "f":
                    p.write_text("x")
                else:
                    p.mkdir()
                os.chown(p, uid, gid)
                os.chmod(p, mode)
                paths.append(str(p))
        for mode in (0o600, 0o060, 0o006, 0o000):
            link = root / f"l{mode:03o}-{uid}-{gid}"
            link.symlink_to(root / f"f{mode:03o}-{uid}-{gid}")
            paths.append(str(link))
    return paths


@pytest.fixture(scope="module", params=["exec", "fork", "container"])
def child(request, tmp_path_factory):
    level = request.param
    if level == "container" and bwrap_path() is None:
        pytest.skip("bubblewrap (bwrap) is not installed; .ci/run installs it")
    if GIT is None:
        pytest.skip("git is not installed")
    tmp = tmp_path_factory.mktemp(f"real-ids-{level}")
    os.chmod(tmp, 0o700)   # as pytest's own: only its owner (root) may enter
    for name in ("work", "readonly", "secret"):
        (tmp / name).mkdir()
    paths = _tree(tmp / "work")
    caps = dict(read=[str(tmp / "readonly")], write=[str(tmp / "work")], process=["git"],
                sandbox="container" if level == "container" else "process")
    if level == "fork":
        root = write_python_plugin(tmp / "plugins", "ids-fork", PYTHON_PROBE, native=True, **caps)
        loaded = load(root, tmp, loader=ProcessLoader(template=True))
    else:
        root = write_probe_plugin(tmp / "plugins", f"ids-{level}", **caps)
        loaded = load(root, tmp, loader=ContainerLoader() if level == "container" else ProcessLoader())
    loaded.extras.update(tmp=tmp, level=level, paths=paths)
    yield loaded
    loaded.plugin.shutdown()


def _run(child, code: str):
    code = textwrap.dedent(code)
    if child.extras["level"] == "fork":
        r = child.plugin.call_tool("run", {"arg": HOOK_OFF + code}, timeout=60)
        assert r.ok, r.content
        return r.data
    return run(child, code, timeout=60)


def test_real_uid_is_the_effective_uid_and_the_process_count_still_binds(child):
    ids = _run(child, """
        import os
        result = [os.getresuid(), os.getresgid(), os.getgroups(), open("/proc/self/cgroup").read()]""")
    (ruid, euid, suid), (rgid, egid, _), groups, cgroup = ids
    assert ruid == euid == suid == 0, ids
    assert rgid != egid == 0 and 0 in groups, ids   # only the real gid is apart
    assert f"promptline-{os.getpid()}/" in cgroup, ids   # its own pids cgroup


def test_access_agrees_with_open_for_every_mode_and_owner(child):
    bad = _run(child, CHECK + f"\nresult = check([[p, 'path'] for p in {child.extras['paths']!r}])")
    assert bad == [], bad[:10]
    # controls: the tree has both outcomes (a test of nothing would pass too)
    got = _run(child, f"""
        import os
        w = {str(child.extras['tmp'] / 'work')!r}
        result = [os.access(w + "/f600-0-0", os.W_OK), os.access(w + "/f060-1000-0", os.W_OK),
                  os.access(w + "/f600-1000-1000", os.R_OK), os.access(w + "/f006-1000-1000", os.R_OK)]""")
    assert got == [True, True, False, True], got


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_spelling_of_the_real_id_check_agrees(child, data):
    paths = child.extras["paths"]
    items = data.draw(st.lists(st.tuples(st.sampled_from(paths),
                                         st.sampled_from(["path", "dir_fd", "nofollow", "bytes"])),
                               min_size=1, max_size=40))
    bad = _run(child, CHECK + f"\nresult = check({[list(i) for i in items]!r})")
    assert bad == [], bad[:10]


def test_git_works_in_the_granted_work_dir_and_nowhere_else(child):
    tmp = child.extras["tmp"]
    out = _run(child, f"""
        import os, subprocess
        def git(*args, cwd=None):
            done = subprocess.run([{GIT!r}, *args], cwd=cwd, capture_output=True, text=True, timeout=30,
                                  env={{"PATH": "/usr/bin:/bin", "HOME": {str(tmp / 'work')!r}}})
            return [done.returncode, done.stdout.strip(), done.stderr.strip()[-200:]]
        repo = {str(tmp / 'work' / 'repo')!r}
        steps = [git("init", "-q", repo)]
        open(repo + "/README", "w").write("hello\\n")
        steps.append(git("add", "README", cwd=repo))
        steps.append(git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "first",
                         cwd=repo))
        steps.append(git("log", "--format=%s", cwd=repo))
        denied = [git("init", "-q", {str(tmp / 'readonly' / 'repo')!r}),
                  git("init", "-q", {str(tmp / 'secret' / 'repo')!r})]
        result = [steps, denied]""")
    steps, denied = out
    assert [s[0] for s in steps] == [0, 0, 0, 0] and steps[-1][1] == "first", steps
    assert (tmp / "work" / "repo" / ".git" / "HEAD").is_file()
    # the walls: a read-only grant and no grant at all still refuse git
    assert all(code != 0 for code, _, _ in denied), denied
    assert not (tmp / "readonly" / "repo").exists() and not (tmp / "secret" / "repo").exists()


def test_every_exec_stays_in_secure_execution_mode(child):
    """The real gid apart from the effective one: a program the child starts runs in
    secure-execution mode (glibc drops TMPDIR, LD_* and friends) and is not dumpable, as
    with a real uid of its own."""
    got = _run(child, """
        import subprocess, sys
        code = ("import ctypes, os; print(os.environ.get('TMPDIR'), os.environ.get('KEEP'),"
                " ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))")
        done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                              timeout=30, env={"TMPDIR": "/nonexistent", "KEEP": "kept"})
        result = [done.stdout.split(), done.stderr[-300:]]""")
    assert got[0] == ["None", "kept", "0"], got   # TMPDIR dropped, others kept, PR_GET_DUMPABLE 0


def _spec(tmp: Path, fs, **kw):
    from promptline.loaders._process._launch import DEFAULT_RLIMITS, UNPRIVILEGED_UIDS, SandboxSpec
    return SandboxSpec(argv=("/bin/true",), env={}, cwd=str(tmp), rlimits=dict(DEFAULT_RLIMITS), fs=tuple(fs),
                       connect_ports=(), bind_ports=(), allow_inet=False, ruid=UNPRIVILEGED_UIDS, **kw)


def test_no_pids_cgroup_where_the_child_could_write_into_the_cgroup_filesystem(tmp_path):
    """A write grant reaching a cgroup mount, or no Landlock at all, would let the child leave
    its group or raise its limit: it gets the unprivileged real uid instead (RLIMIT_NPROC)."""
    from promptline.loaders._process import _landlock as ll
    from promptline.loaders._process import _pids
    from promptline.loaders._process._launch import pids_group
    if _pids._own_pids_dir() is None:
        pytest.skip("no writable pids controller on this host")
    mount = _pids.mount_points()[0]
    for grant in ("/", "/sys", "/sys/fs", mount, mount + "/pids/x"):
        assert pids_group(_spec(tmp_path, [(grant, ll.WRITE)])) is None, grant
    assert pids_group(_spec(tmp_path, [(str(tmp_path), ll.WRITE)], landlock=False)) is None
    assert pids_group(_spec(tmp_path, [("/sys", ll.READ)] + [(str(tmp_path), ll.WRITE)], landlock=True)) is not None
    # control: an ordinary work dir gets its group, pids.max set to the child's NPROC
    group = pids_group(_spec(tmp_path, [(str(tmp_path), ll.WRITE)]))
    assert group is not None and Path(group.path, "pids.max").read_text().strip() == "64"
    group.release()
    assert not Path(group.path).exists()


def test_the_group_is_removed_when_the_child_stops_and_each_start_has_its_own(tmp_path):
    root = write_probe_plugin(tmp_path / "plugins", "ids-lifecycle", write=[str(tmp_path / "work")])
    (tmp_path / "work").mkdir()
    loaded = load(root, tmp_path)
    try:
        first = run(loaded, "result = open('/proc/self/cgroup').read()")
        path = loaded.plugin.child._proc.pids_group.path
        assert Path(path).is_dir() and f"/{Path(path).parent.name}/{Path(path).name}\n" in first
        loaded.plugin.child.stop()
        assert not Path(path).exists()
        second = run(loaded, "result = open('/proc/self/cgroup').read()")   # a new start, a new group
        path2 = loaded.plugin.child._proc.pids_group.path
        assert path2 != path and f"/{Path(path2).parent.name}/{Path(path2).name}\n" in second
    finally:
        loaded.plugin.shutdown()
    assert not Path(path2).exists()
