"""Python plugins forked from the template process get every wall the exec'd child gets.

The template (loaders/_process/_zygote.py) is Python with the bootstrap's imports done; each
plugin is a fork of it that puts up its walls after the fork. These tests start real
plugins both ways — forked (the default) and exec'd through the shim
(``ProcessLoader(template=False)``) — switch the in-child hook off with a ctypes memory write
(``native: true`` is granted for that), and compare what the kernel enforces; then attack
what only a fork could leak: another plugin's secrets in inherited memory, the template
itself, and the exec the shim's start-up is let through.
"""

from __future__ import annotations

import errno
import os
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from promptline.loaders._process import ProcessLoader, landlock_abi  # noqa: E402

if not sys.platform.startswith("linux") or landlock_abi() < 4:
    pytest.skip("the template tests need Linux with Landlock ABI >= 4", allow_module_level=True)

from sandbox_helpers import load, write_python_plugin  # noqa: E402

PROBE = '''
def probe(arg):
    ns = {"result": None}
    exec(arg, ns)
    return ns["result"]
'''

HOOK_OFF = '''
import ctypes, os, sys, errno, resource
from promptline.enforcer import _hook
ctypes.pythonapi.Py_IncRef(ctypes.py_object(None))
ctypes.pythonapi.PyList_SetItem(ctypes.py_object(_hook.BOX), ctypes.c_ssize_t(0), ctypes.py_object(None))
assert _hook.BOX[0] is None
'''

WALLS = '''
def real_environ():   # the os._Environ behind the in-child guard (its methods ask the hook)
    cells = type(os.environ).__getitem__.__closure__
    return next(c.cell_contents for c in cells if hasattr(c.cell_contents, "_data"))
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
fds = []
for fd in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        continue
    fds.append(target.split(":")[0].split("[")[0])
limits = {n: resource.getrlimit(getattr(resource, n)) for n in dir(resource) if n.startswith("RLIMIT_")}
libc = ctypes.CDLL(None, use_errno=True)
result = {
    "status": {k: status[k].strip() for k in ("Seccomp", "Seccomp_filters", "NoNewPrivs", "CapInh", "CapPrm",
                                              "CapEff", "CapBnd", "CapAmb")},
    "real_ids_apart": (os.getuid(), os.getgid()) != (os.geteuid(), os.getegid()), "euid": os.geteuid(),
    "pid": os.getpid(), "sid_is_not_pid": os.getsid(0) != os.getpid(),
    "dumpable": libc.prctl(3, 0, 0, 0, 0),
    "env": sorted(real_environ()),
    "cwd": os.path.basename(os.getcwd()),
    "fds": sorted(fds), "limits": limits,
    "modules": sorted(m for m in ("ctypes", "_landlock", "_seccomp", "_netns", "_shim", "_zygote")
                      if any(k == m or k.endswith("." + m) for k in list(sys.modules)) and m != "ctypes"),
}
'''


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        return int(fh.read().rsplit(b")", 1)[1].split()[1])


def _run(loaded, code: str, hook_off: bool = True, **fmt):
    code = textwrap.dedent(code)
    code = (HOOK_OFF if hook_off else "") + (code.format(**fmt) if fmt else code)
    r = loaded.plugin.call_tool("run", {"arg": code}, timeout=60)
    assert r.ok, r.content
    return r.data


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same plugin twice: forked from the template, and exec'd through the shim."""
    tmp = tmp_path_factory.mktemp("template")
    out = []
    for name, template in (("forked", True), ("execd", False)):
        root = write_python_plugin(tmp / name, f"tpl-{name}", PROBE, native=True, env=["PL_TPL_*"])
        loaded = load(root, tmp, loader=ProcessLoader(template=template))
        loaded.plugin.tools()
        out.append(loaded)
    yield out
    for loaded in out:
        loaded.plugin.shutdown()


def test_a_python_plugin_is_forked_from_the_template_and_execs_without_it(pair):
    forked, execd = pair
    tpl = _parent(forked.plugin.pid)
    assert tpl != os.getpid()
    assert "_zygote.py" in Path(f"/proc/{tpl}/cmdline").read_bytes().decode()
    assert getattr(forked.plugin.child._proc, "forked", False)
    # control: without the template the host itself starts the shim
    assert _parent(execd.plugin.pid) == os.getpid()
    assert not getattr(execd.plugin.child._proc, "forked", False)


def test_the_forked_child_has_every_wall_the_execd_child_has(pair):
    forked, execd = pair
    got, want = _run(forked, WALLS), _run(execd, WALLS)
    assert got["status"]["Seccomp"] == "2" and got["status"]["NoNewPrivs"] == "1"
    assert got["status"]["CapEff"] == got["status"]["CapBnd"] == "0000000000000000"
    assert got["real_ids_apart"] and got["dumpable"] == 0 and got["pid"] == 2
    assert got["modules"] == [], "the wall modules stay behind in the forked plugin"
    assert got == want


def test_the_first_exec_of_a_forked_plugin_is_refused(pair):
    """No `process` grant: the exec guard lets through only the starter's own exec. A
    forked child has none, so its very first exec is refused (EACCES) and recorded. The
    program is the plugin's own interpreter, which Landlock lets it execute: only the guard
    stands in the way (run, it would exit 7)."""
    for loaded in pair:
        out = _run(loaded, """
            pid = os.fork()
            if pid == 0:
                try:
                    os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", "import os; os._exit(7)"])
                except OSError as e:
                    os._exit(e.errno)
                os._exit(0)
            exec_code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            pid = os.fork()
            if pid == 0:
                os._exit(5)
            result = [exec_code, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])]""")
        assert out == [errno.EACCES, 5], (loaded.plugin.id, out)   # refused; control: fork works
        log = loaded.audit_path.read_text()
        assert "process.exec" in log and "seccomp" in log, loaded.plugin.id


SCAN = '''
import re
token = re.compile(rb"PLTPLSECRET-[0-9a-f]{{32}}")
mine = ("PLTPL" + "SECRET-" + "ab" * 16).encode()   # the control: a token this process made
found = set()
fd = os.open("/proc/self/mem", os.O_RDONLY)
for line in open("/proc/self/maps").read().splitlines():
    parts = line.split()
    if "r" not in parts[1] or line.endswith(("[vvar]", "[vsyscall]")):
        continue
    lo, hi = (int(x, 16) for x in parts[0].split("-"))
    try:
        data = os.pread(fd, hi - lo, lo)
    except OSError:
        continue
    found.update(m.decode() for m in token.findall(data))
os.close(fd)
def attempt(path):
    try:
        with open(path, "rb") as fh:
            return "read " + str(len(fh.read(64)))
    except OSError as e:
        return "refused"
result = {{"found": sorted(found), "mine": mine.decode() in found,
          "template_mem": attempt("/proc/{tpl}/mem"), "template_environ": attempt("/proc/{tpl}/environ"),
          "own_environ": attempt("/proc/self/environ")}}
'''


def test_a_forked_plugin_finds_no_other_plugins_secret_and_cannot_reach_the_template(tmp_path, monkeypatch):
    secret = "PLTPLSECRET-" + os.urandom(16).hex()
    monkeypatch.setenv("PL_TPL_SECRET", secret)
    holder = load(write_python_plugin(tmp_path / "a", "tpl-holder", PROBE, native=True, env=["PL_TPL_SECRET"]),
                  tmp_path)
    attacker = load(write_python_plugin(tmp_path / "b", "tpl-attacker", PROBE, native=True), tmp_path)
    try:
        # the control: the holder (forked before the attacker) really has the secret
        assert _run(holder, "import os; result = os.environ.get('PL_TPL_SECRET')", hook_off=False) == secret
        attacker.plugin.tools()
        tpl = _parent(attacker.plugin.pid)
        assert tpl == _parent(holder.plugin.pid) != os.getpid()
        out = _run(attacker, SCAN, tpl=tpl)
    finally:
        holder.plugin.shutdown()
        attacker.plugin.shutdown()
    assert out["mine"], out            # the scan sees this process's own memory
    assert secret not in out["found"], "another plugin's secret is in the forked plugin's memory"
    assert out["template_mem"] == out["template_environ"] == "refused", out
    assert out["own_environ"].startswith("read"), out


def test_a_dead_template_kills_its_plugins_and_the_next_start_makes_a_new_one(tmp_path):
    import signal
    import time
    loaded = load(write_python_plugin(tmp_path / "p", "tpl-orphan", "def probe(arg):\n    return arg\n"), tmp_path)
    try:
        assert loaded.plugin.call_tool("run", {"arg": 1}).data == 1
        old_pid, tpl = loaded.plugin.pid, _parent(loaded.plugin.pid)
        os.kill(tpl, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{old_pid}").exists() \
                and Path(f"/proc/{old_pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.02)
        assert not Path(f"/proc/{old_pid}").exists() or \
            Path(f"/proc/{old_pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", "the plugin outlived its template"
        # the next call restarts the plugin (a crash, restarted at once) from a new template
        r = loaded.plugin.call_tool("run", {"arg": 2})
        if not r.ok:   # the call that found the connection gone
            r = loaded.plugin.call_tool("run", {"arg": 2})
        assert r.ok and r.data == 2, r.content
        new_tpl = _parent(loaded.plugin.pid)
        assert loaded.plugin.pid != old_pid and new_tpl not in (tpl, os.getpid())
    finally:
        loaded.plugin.shutdown()


def test_a_forked_plugin_that_dies_is_reported_as_it_died(tmp_path):
    """The template reports the plugin's own end (its init hands the wait status over)."""
    loaded = load(write_python_plugin(tmp_path / "p", "tpl-dies", PROBE, native=True), tmp_path)
    try:
        r = loaded.plugin.call_tool("run", {"arg": HOOK_OFF + "import signal; os.kill(os.getpid(), signal.SIGSEGV)"})
        assert not r.ok and "SIGSEGV" in r.content, r.content
        r = loaded.plugin.call_tool("run", {"arg": "import os; os._exit(3)"})
        assert not r.ok and "exited with code 3" in r.content, r.content
        import time
        deadline = time.monotonic() + 15   # the control: it restarts, after the crash backoff
        while not (r := loaded.plugin.call_tool("run", {"arg": "result = 4"})).ok and time.monotonic() < deadline:
            time.sleep(0.1)
        assert r.data == 4, r.content
    finally:
        loaded.plugin.shutdown()
