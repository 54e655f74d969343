"""One test per row of the audit-event table: refused when not granted, allowed when granted.

Events are raised with ``sys.audit`` with the arguments CPython passes, so every row is
exercised on every version (3.11–3.13) and without side effects; test_guards.py does the
real operations for the common rows.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import sys
import types

import pytest

from promptline.enforcer import EVENT_TABLE, PolicyViolation


def _d(p):
    return str(p.data)


def _a(p):
    return str(p.data / "a.txt")


def _o(p, name="new.txt"):
    return str(p.out / name)


READ = lambda p: {"filesystem": {"read": [_d(p) + "/"]}}            # noqa: E731
WRITE = lambda p: {"filesystem": {"write": [str(p.out) + "/"]}}     # noqa: E731
RW = lambda p: {"filesystem": {"read": [_d(p) + "/"], "write": [str(p.out) + "/"]}}  # noqa: E731
NET = lambda p: {"network": ["example.com", "127.0.0.1"]}           # noqa: E731
ENV = lambda p: {"environment": ["PL_TEST_VAR"]}                    # noqa: E731
PROC = lambda p: {"process": ["/bin/true", "/bin/sh", "fork", "kill", "webbrowser"]}  # noqa: E731
NATIVE = lambda p: {"native": True}                                 # noqa: E731


_CONN = sqlite3.connect(":memory:")


def _sock(kind=socket.SOCK_STREAM, family=socket.AF_INET):
    return socket.socket(family, kind)


def _tb_of_enforcer():
    from promptline.enforcer._enforcer import Snapshot
    try:
        Snapshot.refuse(types.SimpleNamespace(enforcer=types.SimpleNamespace(_log=lambda *a: None),
                                              policy_set=types.SimpleNamespace(version="v")),
                        "p", types.SimpleNamespace(action="native.load", resource="x", why="w"))
    except PermissionError as exc:
        tb = exc.__traceback__
        while tb.tb_next:
            tb = tb.tb_next
        return tb


def _enforcer_frame():
    from promptline.enforcer import _enforcer
    ns = {"sys": sys}
    exec(compile("f = sys._getframe(0)", _enforcer.__file__, "exec"), ns)
    return ns["f"]


# event -> (args factory, grant factory); arguments as CPython really passes them (an absent
# dir_fd is -1: tests/enforcer/test_real_fs_calls.py checks the real events)
ROWS = {
    "open": (lambda p: (_a(p), "r", os.O_RDONLY), READ),
    "os.listdir": (lambda p: (_d(p),), READ),
    "os.scandir": (lambda p: (_d(p),), READ),
    "os.walk": (lambda p: (_d(p), True, None, False), READ),
    "os.fwalk": (lambda p: (_d(p), True, None, False, None), READ),
    "os.chdir": (lambda p: (_d(p),), READ),
    "os.listxattr": (lambda p: (_a(p),), READ),
    "os.getxattr": (lambda p: (_a(p), "user.x"), READ),
    "os.setxattr": (lambda p: (_o(p), "user.x", b"v", 0), WRITE),
    "os.removexattr": (lambda p: (_o(p), "user.x"), WRITE),
    "os.remove": (lambda p: (_o(p), -1), WRITE),
    "os.rmdir": (lambda p: (_o(p), -1), WRITE),
    "os.mkdir": (lambda p: (_o(p), 0o777, -1), WRITE),
    "os.chmod": (lambda p: (_o(p), 0o600, -1), WRITE),
    "os.chown": (lambda p: (_o(p), 1, 1, -1), WRITE),
    "os.utime": (lambda p: (_o(p), None, None, -1), WRITE),
    "os.truncate": (lambda p: (_o(p), 0), WRITE),
    "os.rename": (lambda p: (_o(p, "x"), _o(p, "y"), -1, -1), WRITE),
    "os.link": (lambda p: (_o(p, "x"), _o(p, "y"), -1, -1), WRITE),
    "os.symlink": (lambda p: (_a(p), _o(p, "l"), -1), WRITE),
    "glob.glob": (lambda p: (_d(p) + "/*", False), None),
    "glob.glob/2": (lambda p: (_d(p) + "/*", False, None, 5), "dir_fd"),
    "shutil.copyfile": (lambda p: (_a(p), _o(p)), RW),
    "shutil.copymode": (lambda p: (_a(p), _o(p)), RW),
    "shutil.copystat": (lambda p: (_a(p), _o(p)), RW),
    "shutil.copytree": (lambda p: (_d(p), _o(p, "tree")), RW),
    "shutil.move": (lambda p: (_o(p, "x"), _o(p, "y")), WRITE),
    "shutil.rmtree": (lambda p: (_o(p, "tree"), None), WRITE),
    "shutil.chown": (lambda p: (_o(p), "root", None), WRITE),
    "shutil.make_archive": (lambda p: (_o(p, "arc"), "zip", _d(p), None), RW),
    "shutil.unpack_archive": (lambda p: (_a(p), _o(p, "x"), "zip"), RW),
    "tempfile.mkstemp": (lambda p: (_o(p, "tmpabc"),), WRITE),
    "tempfile.mkdtemp": (lambda p: (_o(p, "tmpdir"),), WRITE),
    "sqlite3.connect": (lambda p: (_o(p, "db.sqlite"),), WRITE),
    "sqlite3.connect/handle": (lambda p: (_CONN,), "dir_fd"),   # only through sqlite3.connect
    "promptline.socket.connect": (lambda p: (_sock(), ("127.0.0.1", 80)), NET),
    "promptline.socket.listen": (lambda p: (_sock(),), "bind"),
    "promptline.os.mkfifo": (lambda p: (_o(p, "fifo"), None), WRITE),
    "promptline.os.mknod": (lambda p: (_o(p, "node"), None), WRITE),
    "promptline.signal.pidfd_send_signal": (lambda p: (3, 0), PROC),
    "promptline.threading.settrace": (lambda p: (None,), NATIVE),
    "mmap.__new__": (lambda p: (os.open(_a(p), os.O_RDONLY), 0, 1, 0), READ),
    "socket.getaddrinfo": (lambda p: ("example.com", 80, 0, 0, 0), NET),
    "socket.gethostbyname": (lambda p: ("example.com",), NET),
    "socket.gethostbyaddr": (lambda p: ("127.0.0.1",), NET),
    "socket.getnameinfo": (lambda p: (("127.0.0.1", 80), 0), NET),
    "socket.connect": (lambda p: (_sock(), ("127.0.0.1", 9)), NET),
    "socket.sendto": (lambda p: (_sock(socket.SOCK_DGRAM), ("127.0.0.1", 9)), NET),
    "socket.sendmsg": (lambda p: (_sock(socket.SOCK_DGRAM), ("127.0.0.1", 9)), NET),
    "socket.bind": (lambda p: (_sock(), ("127.0.0.1", 0)), "bind"),
    "socket.__new__": (lambda p: (None, socket.AF_INET, socket.SOCK_RAW, 0), NATIVE),
    "socket.sethostname": (lambda p: ("h",), NATIVE),
    "urllib.Request": (lambda p: ("http://example.com/x", None, {}, "GET"), NET),
    "http.client.connect": (lambda p: (None, "example.com", 80), NET),
    "ftplib.connect": (lambda p: (None, "example.com", 21), NET),
    "smtplib.connect": (lambda p: (None, "example.com", 25), NET),
    "poplib.connect": (lambda p: (None, "example.com", 110), NET),
    "imaplib.open": (lambda p: (None, "example.com", 143), NET),
    "nntplib.connect": (lambda p: (None, "example.com", 119), NET),
    "telnetlib.Telnet.open": (lambda p: (None, "example.com", 23), NET),
    "os.putenv": (lambda p: ("PL_TEST_VAR", "1"), "envw"),
    "os.unsetenv": (lambda p: ("PL_TEST_VAR",), "envw"),
    "subprocess.Popen": (lambda p: ("/bin/true", ["/bin/true"], None, None), PROC),
    "os.system": (lambda p: ("true",), PROC),
    "os.exec": (lambda p: ("/bin/true", ["/bin/true"], {}), PROC),
    "os.posix_spawn": (lambda p: ("/bin/true", ["/bin/true"], {}), PROC),
    "os.fork": (lambda p: (), PROC),
    "os.forkpty": (lambda p: (), PROC),
    "pty.spawn": (lambda p: (["/bin/true"],), PROC),
    "os.kill": (lambda p: (os.getpid(), 0), PROC),
    "os.killpg": (lambda p: (os.getpgid(0), 0), PROC),
    "signal.pthread_kill": (lambda p: (1, 0), NATIVE),
    "webbrowser.open": (lambda p: ("http://example.com",), PROC),
    "import": (lambda p: ("_ctypes", None, [], [], []), NATIVE),
    "ctypes.dlopen": (lambda p: ("libc.so.6",), NATIVE),
    "sqlite3.enable_load_extension": (lambda p: (None, True), NATIVE),
    "sqlite3.load_extension": (lambda p: (None, "/x.so"), NATIVE),
    "fcntl.ioctl": (lambda p: (0, 0x5412, 0), NATIVE),
    "resource.setrlimit": (lambda p: (0, (1, 1)), NATIVE),
    "resource.prlimit": (lambda p: (0, 0, None), NATIVE),
    "cpython.PyInterpreterState_New": (lambda p: (), NATIVE),
    "_thread.start_new_thread": (lambda p: (print, (), None), NATIVE),
    "_thread.start_joinable_thread": (lambda p: (print, None, False), NATIVE),
    "exec": (lambda p: (compile("1", "<x>", "eval"),), None),
    "code.__new__": (lambda p: (b"", "f", "n", 0, 0, 0, 0, 0, 0), NATIVE),
    "sys._getframe": (lambda p: (_enforcer_frame(),), NATIVE),
    "object.__getattr__": (lambda p: (_tb_of_enforcer(), "tb_frame"), NATIVE),
    "object.__setattr__": (lambda p: (__import__("promptline.enforcer", fromlist=["Enforcer"]).Enforcer, "check", None), NATIVE),
    "object.__delattr__": (lambda p: (__import__("promptline.enforcer", fromlist=["Enforcer"]).Enforcer, "check"), NATIVE),
    "sys._current_frames": (lambda p: (), NATIVE),
    "sys._current_exceptions": (lambda p: (), NATIVE),
    "gc.get_objects": (lambda p: (None,), NATIVE),
    "gc.get_referrers": (lambda p: ((),), NATIVE),
    "gc.get_referents": (lambda p: ((),), NATIVE),
    "sys.settrace": (lambda p: (), NATIVE),
    "sys.setprofile": (lambda p: (), NATIVE),
    "sys.addaudithook": (lambda p: (), NATIVE),
    "sys.monitoring.register_callback": (lambda p: (None,), NATIVE),
    "marshal.load": (lambda p: (), None),
}
for _e in ("ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.addressof", "ctypes.call_function",
           "ctypes.cdata", "ctypes.cdata/buffer", "ctypes.create_string_buffer",
           "ctypes.create_unicode_buffer", "ctypes.get_errno", "ctypes.set_errno",
           "ctypes.string_at", "ctypes.wstring_at", "ctypes.PyObj_FromPtr"):
    ROWS[_e] = (lambda p: (0,), NATIVE)


def test_every_row_has_a_test():
    assert {e for e, _, _ in EVENT_TABLE} == set(ROWS)


def _grant(kind, p):
    if kind == "bind":
        return {"network": ["127.0.0.1"]}, [{"id": "bind", "effect": "allow", "actions": ["net.bind"]}]
    if kind == "envw":
        return {}, [{"id": "envw", "effect": "allow", "actions": ["env.write"],
                     "when": 'request.name == "PL_TEST_VAR"'}]
    return kind(p), []


@pytest.mark.parametrize("event", sorted(ROWS))
def test_row(plugins, event):
    make_args, grant = ROWS[event]
    if grant is None:  # decides nothing itself: allowed in plugin context
        enf = plugins.make({})
        with enf.guard("p1"):
            sys.audit(event, *make_args(plugins))
        return
    if grant == "dir_fd":  # no grant opens it
        enf = plugins.make(RW(plugins))
        with enf.guard("p1"), pytest.raises(PolicyViolation):
            sys.audit(event, *make_args(plugins))
        return
    args = make_args(plugins)
    denied = plugins.make({})
    with denied.guard("p1"), pytest.raises(PolicyViolation) as info:
        sys.audit(event, *args)
    assert "p1" in str(info.value)
    denied.uninstall()
    caps, rules = _grant(grant, plugins)
    allowed = plugins.make(caps, rules=rules)
    with allowed.guard("p1"):
        sys.audit(event, *args)
    # host code is never decided
    allowed.uninstall()
    plugins.make({})
    sys.audit(event, *args)
