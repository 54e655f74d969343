"""In-process holes closed in this layer: forged attribution markers, executor hand-offs,
a blinded realpath, SQLite ATTACH, and doors CPython does not audit (mkfifo, mknod,
pidfd_send_signal, threading.settrace). Each attacks from plugin code through the real entry
point and keeps an honest control that still works.
"""

from __future__ import annotations

import concurrent.futures
import os
import sqlite3
import stat
import threading

import pytest

from promptline.enforcer import PolicyViolation


@pytest.fixture
def env(plugins, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("TOPSECRET")
    enf = plugins.make({"filesystem": {"read": [str(plugins.data) + "/"],
                                       "write": [str(plugins.out) + "/"]}})

    class E:
        pass
    e = E()
    e.enf, e.p, e.secret_dir, e.secret = enf, plugins, secret, str(secret / "key")
    e.granted = str(plugins.data / "a.txt")
    return e


def test_a_forged_privileged_marker_is_refused(env, load_module):
    m = load_module(env.p.plugin_dir("p1"), f"""
from promptline.enforcer import _attribution

class Fake:
    frame = None
    plugin = None

def attack():
    token = _attribution.ACTIVE.set(Fake())
    try:
        return open({env.secret!r}).read()
    finally:
        _attribution.ACTIVE.reset(token)

def forged_class():
    token = _attribution.ACTIVE.set(_attribution.Privileged(None, None))
    try:
        return open({env.secret!r}).read()
    finally:
        _attribution.ACTIVE.reset(token)

def honest():
    return open({env.granted!r}).read()
""")
    with env.enf.guard("p1"):
        with pytest.raises(PolicyViolation, match="forged"):
            m.attack()
        with pytest.raises(PolicyViolation, match="forged"):
            m.forged_class()
        assert m.honest() == "alpha"                                   # honest control


def test_a_genuine_privileged_block_still_runs_as_host(env, load_module):
    from promptline.enforcer import privileged

    @privileged
    def host_reads():
        return open(env.secret).read()
    m = load_module(env.p.plugin_dir("p1"), "def call(f):\n    return f()\n")
    with env.enf.guard("p1"):
        assert m.call(host_reads) == "TOPSECRET"


def test_executor_side_doors_run_as_the_plugin(env, load_module):
    m = load_module(env.p.plugin_dir("p1"), f"""
import concurrent.futures, functools, queue
from concurrent.futures import thread as cft

def via_closure(pool):
    submit = concurrent.futures.ThreadPoolExecutor.submit
    assert not hasattr(submit, "__wrapped__")
    orig = [c.cell_contents for c in submit.__closure__ if callable(c.cell_contents)
            and getattr(c.cell_contents, "__name__", "") == "submit"][0]
    return orig(pool, open, {env.secret!r})

def via_queue(pool):
    pool.submit(int)     # start a worker
    f = concurrent.futures.Future()
    pool._work_queue.put(cft._WorkItem(f, open, ({env.secret!r},), {{}}))
    return f

def under_the_queue(pool):
    f = concurrent.futures.Future()
    queue.SimpleQueue.put(pool._work_queue, cft._WorkItem(f, open, ({env.secret!r},), {{}}))
    return f

def initializer():
    return concurrent.futures.ThreadPoolExecutor(1, initializer=functools.partial(open, {env.secret!r}))

def honest(pool):
    return pool.submit(lambda: open({env.granted!r}).read())
""")
    pool = concurrent.futures.ThreadPoolExecutor(2)
    try:
        with env.enf.guard("p1"):
            closure = m.via_closure(pool)
            queued = m.via_queue(pool)
            hidden = m.under_the_queue(pool)
            init_pool = m.initializer()
            honest = m.honest(pool)
            init_future = init_pool.submit(int)
        with pytest.raises(PermissionError):
            closure.result(timeout=10)
        with pytest.raises(PermissionError):
            queued.result(timeout=10)
        with pytest.raises(concurrent.futures.TimeoutError):
            hidden.result(timeout=0.5)                 # dropped by the worker: nothing ran
        with pytest.raises(concurrent.futures.thread.BrokenThreadPool):
            init_future.result(timeout=10)             # the initializer's open was refused
        assert honest.result(timeout=10) == "alpha"   # honest control
        init_pool.shutdown(wait=False)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_patching_stat_does_not_blind_symlink_resolution(env, load_module):
    link = env.p.data / "innocent.txt"
    os.symlink(env.secret, link)
    m = load_module(env.p.plugin_dir("p1"), f"""
import stat, os
def attack():
    saved, saved_os = stat.S_ISLNK, os.path.islink
    stat.S_ISLNK = lambda mode: False
    os.path.islink = lambda p: False
    try:
        return open({str(link)!r}).read()
    finally:
        stat.S_ISLNK, os.path.islink = saved, saved_os
def honest():
    return open({env.granted!r}).read()
""")
    with env.enf.guard("p1"):
        with pytest.raises(PolicyViolation):
            m.attack()
        assert m.honest() == "alpha"
    assert stat.S_ISLNK(os.lstat(link).st_mode)


def test_sqlite_attach_is_decided_on_the_file_it_opens(env, load_module):
    victim = env.secret_dir / "victim.db"
    sqlite3.connect(victim).execute("create table t(x)").connection.commit()
    m = load_module(env.p.plugin_dir("p1"), """
import sqlite3
def attach(path):
    c = sqlite3.connect(":memory:")
    c.execute("ATTACH DATABASE '%s' AS other" % path.replace("'", "''"))
    return [r[0] for r in c.execute("select name from other.sqlite_master")]
def attach_bound(path):
    c = sqlite3.connect(":memory:")
    c.execute("ATTACH DATABASE ? AS other", (path,))
def direct():
    return sqlite3.Connection(":memory:")
def vacuum_into(path):
    c = sqlite3.connect(":memory:")
    c.execute("create table t(x)")
    c.execute("VACUUM INTO '%s'" % path)
""")
    with env.enf.guard("p1"):
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            m.attach(str(victim))
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            m.attach(f"file:{victim}?mode=ro")
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            m.attach_bound(str(env.p.out / "mine.db"))      # which file? unknown: refused
        with pytest.raises(PermissionError):
            m.direct()                                     # a Connection made without connect()
        with pytest.raises(sqlite3.DatabaseError, match="not authorized|authorization denied"):
            m.vacuum_into(str(env.secret_dir / "copy.db"))  # VACUUM INTO attaches its target
        m.vacuum_into(str(env.p.out / "copy.db"))          # honest control
        assert m.attach(str(env.p.out / "mine.db")) == []  # honest control: a granted file
    assert env.enf.check("p1", __import__("promptline").policy.Request(
        "fs.write", "p1", path=str(victim))).verdict.value == "deny"


def test_mkfifo_and_mknod_are_decided(env, load_module):
    m = load_module(env.p.plugin_dir("p1"), """
import os, posix, stat
def fifo(p):
    os.mkfifo(p)
def node(p):
    os.mknod(p, 0o600 | stat.S_IFIFO)
def raw(p):
    posix.mkfifo(p)
""")
    with env.enf.guard("p1"):
        for fn in (m.fifo, m.node, m.raw):
            with pytest.raises(PolicyViolation):
                fn(str(env.secret_dir / f"x-{fn.__name__}"))
        m.fifo(str(env.p.out / "ok-fifo"))                         # honest controls
        m.node(str(env.p.out / "ok-node"))
    assert stat.S_ISFIFO(os.stat(env.p.out / "ok-fifo").st_mode)
    assert not any(n.startswith("x-") for n in os.listdir(env.secret_dir))


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open")
def test_pidfd_send_signal_needs_a_process_grant(plugins, load_module):
    code = """
import os, signal
def poke():
    fd = os.pidfd_open(os.getpid())
    try:
        signal.pidfd_send_signal(fd, 0)
    finally:
        os.close(fd)
    return "sent"
"""
    enf = plugins.make({})
    m = load_module(plugins.plugin_dir("p1"), code)
    with enf.guard("p1"), pytest.raises(PolicyViolation, match="kill"):
        m.poke()
    enf.uninstall()
    granted = plugins.make({"process": ["kill"]})
    with granted.guard("p1"):
        assert m.poke() == "sent"                                   # honest control


def test_threading_settrace_is_refused_in_plugin_context(env, load_module):
    m = load_module(env.p.plugin_dir("p1"), """
import threading
def attack():
    threading.settrace(lambda *a: None)
def attack_profile():
    threading.setprofile(lambda *a: None)
""")
    with env.enf.guard("p1"):
        with pytest.raises(PolicyViolation, match="threading.settrace"):
            m.attack()
        with pytest.raises(PolicyViolation, match="threading.settrace"):
            m.attack_profile()
    assert threading._trace_hook is None and threading._profile_hook is None
    threading.settrace(None)                                        # host code: allowed


def test_listen_without_bind_is_decided_as_a_bind(plugins, load_module):
    code = """
import socket
def serve():
    s = socket.socket()
    try:
        s.listen(1)          # binds an ephemeral port on every interface
        return s.getsockname()[1]
    finally:
        s.close()
"""
    enf = plugins.make({})
    m = load_module(plugins.plugin_dir("p1"), code)
    with enf.guard("p1"), pytest.raises(PolicyViolation, match="net.bind"):
        m.serve()
    enf.uninstall()
    granted = plugins.make({}, rules=[{"id": "bind", "effect": "allow", "actions": ["net.bind"]}])
    with granted.guard("p1"):
        assert m.serve() > 0                                        # honest control


def test_connect_to_a_name_is_decided_before_the_lookup(plugins, load_module):
    # `.invalid` never resolves (RFC 6761): refused by the policy rather than failing in
    # getaddrinfo shows the decision came before the C code sent the query
    enf = plugins.make({"network": ["*"]}, rules=[
        {"id": "no-blocked", "effect": "deny", "actions": ["net.connect"],
         "when": 'host_matches(request.host, "*.invalid")'}])
    m = load_module(plugins.plugin_dir("p1"), """
import socket
def connect(host, ex=False):
    s = socket.socket()
    try:
        return s.connect_ex((host, 9)) if ex else s.connect((host, 9))
    finally:
        s.close()
""")
    with enf.guard("p1"):
        for ex in (False, True):
            with pytest.raises(PolicyViolation, match="no-blocked"):
                m.connect("blocked.invalid", ex)
        # control: allowed by the policy, then refused by the kernel (nothing listens on 9)
        assert m.connect("127.0.0.1", True) != 0


# -- what stays open in process (docs/enforcer.md lists each with the wall that stops it) ---

UNSTOPPABLE = "in-process hooks cannot stop this; see process sandbox"


@pytest.mark.xfail(strict=True, reason=UNSTOPPABLE + " (the attribution variable takes any str)")
def test_impersonating_another_plugin_through_the_context_variable(plugins, load_module, tmp_path):
    secret = tmp_path / "s.txt"
    secret.write_text("x")
    enf = plugins.make({}, extra={"other": {"filesystem": {"read": [str(tmp_path) + "/"]}}})
    m = load_module(plugins.plugin_dir("p1"), f"""
from promptline.enforcer import _attribution
def attack():
    token = _attribution.ACTIVE.set("other")
    try:
        return open({str(secret)!r}).read()
    finally:
        _attribution.ACTIVE.reset(token)
""")
    with enf.guard("p1"), pytest.raises(PolicyViolation):
        m.attack()


@pytest.mark.xfail(strict=True, reason=UNSTOPPABLE + " (the C connect resolves before its event)")
def test_c_level_connect_resolves_a_name_before_the_decision(plugins, load_module):
    enf = plugins.make({}, rules=[{"id": "no-blocked", "effect": "deny",
                                   "actions": ["net.connect"],
                                   "when": 'host_matches(request.host, "*.invalid")'}])
    m = load_module(plugins.plugin_dir("p1"), """
import _socket
def attack():
    s = _socket.socket()
    try:
        _socket.socket.connect(s, ("blocked.invalid", 9))   # the lookup happens here
    finally:
        s.close()
""")
    with enf.guard("p1"), pytest.raises(PolicyViolation):
        m.attack()          # fails with socket.gaierror: the query was sent first


@pytest.mark.xfail(strict=True, reason=UNSTOPPABLE + " (set_authorizer is not audited)")
def test_replacing_the_sqlite_authorizer_reopens_attach(plugins, load_module, tmp_path):
    victim = tmp_path / "v.db"
    sqlite3.connect(victim).close()
    enf = plugins.make({})
    m = load_module(plugins.plugin_dir("p1"), f"""
import sqlite3
def attack():
    c = sqlite3.connect(":memory:")
    sqlite3.Connection.set_authorizer(c, None)
    c.execute("ATTACH DATABASE '{victim}' AS v")
""")
    with enf.guard("p1"), pytest.raises(sqlite3.DatabaseError):
        m.attack()


@pytest.mark.xfail(strict=True, reason=UNSTOPPABLE + " (module globals of threading are writable)")
def test_writing_threading_trace_hook_directly(plugins, load_module):
    enf = plugins.make({})
    m = load_module(plugins.plugin_dir("p1"), """
import threading
def attack():
    threading._trace_hook = None      # any function: it would trace every host thread
""")
    with enf.guard("p1"), pytest.raises(PermissionError):
        m.attack()


@pytest.mark.xfail(strict=True, reason=UNSTOPPABLE + " (a granted program runs outside the hook)")
def test_a_granted_program_reads_outside_the_read_grant(plugins, load_module, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    enf = plugins.make({"process": ["cat"]})
    m = load_module(plugins.plugin_dir("p1"), f"""
import subprocess
def attack():
    return subprocess.run(["cat", {str(secret)!r}], capture_output=True, text=True).stdout
""")
    with enf.guard("p1"):
        assert "TOPSECRET" not in m.attack()


def test_the_readme_counts_the_documented_escapes():
    import re
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    docs = open(os.path.join(root, "docs", "enforcer.md"), encoding="utf-8").read()
    section = docs.split("## What in-process hooks cannot stop", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and
            not line.startswith("| technique") and not line.startswith("|---")]
    readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    count = int(re.search(r"(\d+) known in-process escapes", readme).group(1))
    assert count == len(rows)
