"""The process sandbox's walls, probed from inside real children (a stdlib MCP server that
runs the test's code): environment, rlimits, fds, Landlock files and TCP ports, seccomp,
capabilities, and the lifecycle (crash, timeout, hostile output, shutdown, zombies)."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

import pytest
from sandbox_helpers import load, pid_gone, run, write_probe_plugin

from promptline.loaders._errors import LoaderError
from promptline.loaders._process import ProcessLoader, scrub_env
from promptline.loaders._process import _jsonrpc as rpc

HOST_ENV = {"PL_GRANTED": "yes", "PL_PREFIX_ONE": "1", "PL_SECRET_TOKEN": "s3cr3t",
            "LD_LIBRARY_PATH": "/nonexistent/evil", "PYTHONPATH": "/nonexistent/evil",
            "PYTHONSTARTUP": "/nonexistent/evil.py", "NODE_OPTIONS": "--require=/evil.js"}


# the child's pid as the host sees it: the child runs in its own PID namespace, where
# os.getpid() is small; /proc (the host's mount) still names it by the host's number
HOST_PID = "import os; result = int(os.readlink('/proc/self'))"


def _listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("walls")
    (tmp / "readable").mkdir()
    (tmp / "readable" / "data.txt").write_text("readable data")
    (tmp / "writable").mkdir()
    (tmp / "secret").mkdir()
    (tmp / "secret" / "key.txt").write_text("TOP SECRET")
    granted, ungranted = _listener(), _listener()
    saved = {k: os.environ.get(k) for k in HOST_ENV}
    os.environ.update(HOST_ENV)
    leaked_fd = os.open(str(tmp / "secret" / "key.txt"), os.O_RDONLY)
    os.set_inheritable(leaked_fd, True)   # a careless host fd: must not reach the child
    try:
        root = write_probe_plugin(
            tmp / "plugins", "walls", read=[str(tmp / "readable")], write=[str(tmp / "writable")],
            network=[f"127.0.0.1:{granted.getsockname()[1]}"], env=["PL_GRANTED", "PL_PREFIX_*"])
        loaded = load(root, tmp)
        loaded.extras.update(tmp=tmp, granted=granted, ungranted=ungranted, leaked_fd=leaked_fd)
        run(loaded, "result = 1")   # start it while the host environment holds the secrets
        yield loaded
        loaded.plugin.shutdown()
    finally:
        os.close(leaked_fd)
        granted.close()
        ungranted.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- environment, working dir, fds, limits ------------------------------------------------


def test_environment_holds_granted_variables_only(world):
    env = run(world, "import os; result = dict(os.environ)")
    assert env["PL_GRANTED"] == "yes" and env["PL_PREFIX_ONE"] == "1"
    proxy = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "PROMPTLINE_EGRESS"}
    assert set(env) <= {"PL_GRANTED", "PL_PREFIX_ONE", "PATH", "HOME", "TMPDIR", "TMP", "TEMP", "LANG",
                        *proxy, *(p.lower() for p in proxy)}
    assert "PL_SECRET_TOKEN" not in env


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "DYLD_INSERT_LIBRARIES",
                                  "PYTHONPATH", "PYTHONSTARTUP", "NODE_OPTIONS", "GLIBC_TUNABLES"])
def test_loader_variables_pass_only_by_exact_name(name):
    environ = {name: "x", "PATH": "/bin"}
    assert name not in scrub_env(["*"], environ)
    assert name not in scrub_env([name.split("_")[0] + "_*"], environ)
    assert scrub_env([name], environ)[name] == "x"


def test_own_working_directory_and_home(world):
    # TMPDIR is dropped by glibc when a root host's child runs with a real uid of its own (AT_SECURE)
    cwd, home, tmpdir = run(world, "import os, tempfile; result = [os.getcwd(), os.environ['HOME'], "
                                   "tempfile.gettempdir()]")
    assert cwd == home == tmpdir
    assert os.path.basename(cwd) == "work" and "promptline-walls-" in cwd
    assert run(world, "open('scratch.txt', 'w').write('ok'); result = open('scratch.txt').read()") == "ok"


def test_no_inherited_file_descriptors(world):
    fds = run(world, "import os; result = sorted(int(f) for f in os.listdir('/proc/self/fd'))")
    assert fds[:3] == [0, 1, 2] and len(fds) <= 4   # + the fd listdir itself holds
    probe = run(world, f"import os\ntry:\n os.fstat({world.extras['leaked_fd']}); result = 'open'\n"
                       f"except OSError as e: result = e.errno")
    assert probe == errno.EBADF


def test_rlimits_are_set(world):
    limits = run(world, """
        import resource
        result = {n: resource.getrlimit(getattr(resource, 'RLIMIT_' + n))
                  for n in ('DATA', 'CPU', 'NOFILE', 'NPROC', 'CORE', 'FSIZE')}""")
    spec = world.plugin.spec.rlimits
    for name, (soft, hard) in limits.items():
        assert soft == hard == spec[name], name


def test_memory_limit_is_enforced(world):
    r = run(world, """
        try:
            block = bytearray(6 * 1024 ** 3); result = 'allocated'
        except MemoryError:
            result = 'MemoryError'""")
    assert r == "MemoryError"


def test_no_capabilities_and_no_new_privs(world):
    status = run(world, "result = open('/proc/self/status').read()")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[cap], 16) == 0, cap


# -- Landlock: files ------------------------------------------------------------------------


def _open(path: str, mode: str = "r") -> str:
    return (f"try:\n    f = open({path!r}, {mode!r}); result = 'ok' if {mode!r} != 'r' else f.read()\n"
            f"except OSError as e:\n    result = e.errno")


def test_granted_read_is_allowed(world):
    assert run(world, _open(str(world.extras["tmp"] / "readable" / "data.txt"))) == "readable data"


@pytest.mark.parametrize("path", ["secret/key.txt", "/etc/passwd", "/root/.bashrc", "/proc/1/environ"])
def test_ungranted_read_is_refused_by_the_kernel(world, path):
    full = path if path.startswith("/") else str(world.extras["tmp"] / path)
    if not os.path.exists(full):
        pytest.skip(f"{full} does not exist here")
    assert run(world, _open(full)) == errno.EACCES


def test_listing_an_ungranted_directory_is_refused(world):
    code = f"import os\ntry:\n result = os.listdir({str(world.extras['tmp'] / 'secret')!r})\nexcept OSError as e: result = e.errno"
    assert run(world, code) == errno.EACCES


def test_granted_write_is_allowed(world):
    target = world.extras["tmp"] / "writable" / "out.txt"
    assert run(world, _open(str(target), "w")) == "ok"
    assert target.exists()


@pytest.mark.parametrize("where", ["readable/new.txt", "secret/new.txt", "elsewhere.txt"])
def test_ungranted_write_is_refused_by_the_kernel(world, where):
    target = world.extras["tmp"] / where
    assert run(world, _open(str(target), "w")) == errno.EACCES
    assert not target.exists()


def test_truncating_a_readable_file_is_refused(world):
    target = world.extras["tmp"] / "readable" / "data.txt"
    code = f"import os\ntry:\n os.truncate({str(target)!r}, 0); result = 'ok'\nexcept OSError as e: result = e.errno"
    assert run(world, code) == errno.EACCES
    assert target.read_text() == "readable data"


# -- Landlock: TCP ports; seccomp: sockets --------------------------------------------------


def _connect(port: int) -> str:
    return ("import socket\ns = socket.socket()\n"
            f"try:\n    s.connect(('127.0.0.1', {port})); result = 'connected'\n"
            "except OSError as e:\n    result = e.errno")


def _via_proxy(port: int) -> str:
    return ("import os, socket\nport = int(os.environ['HTTPS_PROXY'].rpartition(':')[2])\n"
            "s = socket.create_connection(('127.0.0.1', port))\n"
            f"s.sendall(b'CONNECT 127.0.0.1:{port} HTTP/1.1\\r\\n\\r\\n')\n"
            "result = s.recv(100).decode()")


def test_tcp_connect_to_the_granted_port(world):
    # the child has its own network namespace: the host's listener is reached through the
    # egress proxy only; dialled directly, the port is not even open in the child's loopback
    port = world.extras["granted"].getsockname()[1]
    assert run(world, _connect(port)) == errno.EACCES
    assert run(world, _via_proxy(port)).startswith("HTTP/1.1 200")
    conn, _ = world.extras["granted"].accept()
    conn.close()


def test_tcp_connect_to_an_ungranted_port_is_refused(world):
    assert run(world, _connect(world.extras["ungranted"].getsockname()[1])) == errno.EACCES


def test_tcp_bind_is_refused(world):
    code = ("import socket\ns = socket.socket()\n"
            "try:\n    s.bind(('127.0.0.1', 0)); s.listen(); result = 'listening'\n"
            "except OSError as e:\n    result = e.errno")
    assert run(world, code) == errno.EACCES


def test_unix_and_raw_sockets_are_refused(world):
    code = """
        import socket
        result = []
        for fam, kind in ((socket.AF_UNIX, socket.SOCK_STREAM), (socket.AF_PACKET, socket.SOCK_RAW),
                          (socket.AF_NETLINK, socket.SOCK_RAW)):
            try:
                socket.socket(fam, kind); result.append('made')
            except OSError as e:
                result.append(e.errno)"""
    assert run(world, code) == [errno.EPERM] * 3


# -- seccomp ---------------------------------------------------------------------------------

SYSCALL = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return rc, ctypes.get_errno()
"""


@pytest.mark.parametrize("name,nr,args", [
    ("ptrace", 101, (16, 1, 0, 0)),                 # PTRACE_ATTACH to init
    ("process_vm_readv", 310, (1, 0, 1, 0, 1, 0)),
    ("mount", 165, (0, 0, 0, 0, 0)),
    ("umount2", 166, (0, 0)),
    ("unshare", 272, (0x10000000,)),                # CLONE_NEWUSER
    ("setns", 308, (0, 0)),
    ("bpf", 321, (0, 0, 0)),
    ("init_module", 175, (0, 0, 0)),
    ("keyctl", 250, (0, 0, 0, 0, 0)),
    ("perf_event_open", 298, (0, 0, -1, -1, 0)),
    ("userfaultfd", 323, (0,)),
    ("mknodat", 259, (-100, 0, 0o20600, 0)),
    ("io_uring_setup", 425, (1, 0)),
    ("open_by_handle_at", 304, (-100, 0, 0)),
])
def test_seccomp_refuses(world, name, nr, args):
    rc, err = run(world, SYSCALL + f"result = sc({nr}, *{args!r})")
    assert (rc, err) == (-1, errno.EPERM), name


def test_clone_with_namespace_flags_is_refused(world):
    rc, err = run(world, SYSCALL + "result = sc(56, 0x10000000 | 17, 0, 0, 0, 0)")   # CLONE_NEWUSER|SIGCHLD
    assert (rc, err) == (-1, errno.EPERM)


def test_ordinary_fork_still_works(world):
    code = "import os\npid = os.fork()\nif pid == 0: os._exit(7)\nresult = os.waitpid(pid, 0)[1] >> 8"
    assert run(world, code) == 7


def test_signals_to_processes_outside_the_sandbox_are_refused(world):
    # the host is not even addressable from the child's PID namespace; the namespace's init
    # (pid 1) is, and Landlock's signal scope refuses it
    for target, want in ((os.getpid(), (errno.ESRCH, errno.EPERM)), (1, (errno.EPERM,))):
        code = f"import os\ntry:\n os.kill({target}, 0); result = 'reached'\nexcept OSError as e: result = e.errno"
        assert run(world, code) in want, target
    assert run(world, "import os; os.kill(os.getpid(), 0); result = 'self'") == "self"   # the control


# -- lifecycle -------------------------------------------------------------------------------


@pytest.fixture
def probe(tmp_path):
    loaded = load(write_probe_plugin(tmp_path / "plugins", "lifecycle"), tmp_path)
    yield loaded
    loaded.plugin.shutdown()


def test_crash_gives_a_clear_error_then_restarts(probe):
    first = run(probe, HOST_PID)
    r = probe.plugin.call_tool("run", {"code": "import os; os._exit(3)"}, timeout=10)
    assert not r.ok and r.error.kind == "unavailable"
    assert "exited with code 3" in r.content
    second = run(probe, HOST_PID)
    assert second != first and pid_gone(first)


def test_crash_by_signal_is_named(probe):
    r = probe.plugin.call_tool("run", {"code": "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"}, timeout=10)
    assert not r.ok and "SIGSEGV" in r.content


def test_repeated_crashes_back_off(probe):
    for _ in range(2):
        probe.plugin.call_tool("run", {"code": "import os; os._exit(1)"}, timeout=10)
    r = probe.plugin.call_tool("run", {"code": "result = 1"}, timeout=10)
    assert not r.ok and "next restart in" in r.content


def test_timeout_kills_the_hung_child_and_the_next_call_works(probe):
    pid = run(probe, HOST_PID)
    t = time.monotonic()
    r = probe.plugin.call_tool("run", {"code": "import time; time.sleep(60)"}, timeout=0.5)
    assert time.monotonic() - t < 5
    assert not r.ok and r.error.kind == "timeout" and "0.5 s" in r.content
    assert pid_gone(pid)
    assert run(probe, "result = 'alive'") == "alive"


@pytest.mark.parametrize("attack,expect", [
    ("out.write(b'this is not json\\n'); out.flush(); import time; time.sleep(5)", "expected a JSON-RPC message"),
    ("out.write(b'[1, 2]\\n'); out.flush(); import time; time.sleep(5)", "found a batch"),
    ("out.write(b'{\"jsonrpc\": \"2.0\", \"id\": 999999, \"result\": {}}\\n'); out.flush(); import time; time.sleep(5)",
     "unknown request id"),
    ("out.write(b'{\"jsonrpc\": \"1.0\", \"id\": rid}\\n'); out.flush(); import time; time.sleep(5)", "jsonrpc"),
    ("out.write(b'x' * (17 * 1024 * 1024)); out.flush(); import time; time.sleep(5)", "longer than"),
    ("out.write(b'\\xff\\xfe\\n'); out.flush(); import time; time.sleep(5)", "expected a JSON-RPC message"),
], ids=["garbage", "batch", "wrong-id", "bad-version", "huge-line", "not-utf8"])
def test_hostile_output_is_a_clear_error_and_the_child_is_replaced(probe, attack, expect):
    pid = run(probe, HOST_PID)
    t = time.monotonic()
    r = probe.plugin.call_tool("run", {"code": attack}, timeout=20)
    assert not r.ok and r.error.kind == "unavailable"
    assert expect in r.content
    assert time.monotonic() - t < 10   # the violation is acted on at once, not at the timeout
    assert pid_gone(pid)
    assert run(probe, "result = 'fresh'") == "fresh"


def test_malformed_tool_result_is_an_error_result(probe):
    code = ("import json\nout.write(json.dumps({'jsonrpc': '2.0', 'id': rid, 'result': {'content': 'nope'}}).encode() + b'\\n')\n"
            "out.flush()\nimport time; time.sleep(0.2)")
    r = probe.plugin.call_tool("run", {"code": code}, timeout=10)
    assert not r.ok and r.error.kind in ("malformed-result", "unavailable")


def test_parse_refuses_hostile_messages():
    for bad in (b"", b"null", b'{"jsonrpc":"2.0"}', b'{"jsonrpc":"2.0","id":true,"result":1}',
                b'{"jsonrpc":"2.0","id":1,"result":1,"error":{}}', b'{"jsonrpc":"2.0","method":5}',
                b'{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}',
                b'{"jsonrpc":"2.0","id":1,"result":NaN}', b"[" * 100000):
        with pytest.raises(rpc.ProtocolError):
            rpc.parse(bad)


def test_shutdown_reaps_the_child_and_its_descendants(tmp_path):
    loaded = load(write_probe_plugin(tmp_path / "plugins", "reaper"), tmp_path)
    pid = run(loaded, HOST_PID)
    grandchild = run(loaded, """
        import os, time
        pid = os.fork()
        if pid == 0:
            os.setsid()   # leaves the process group: the PID namespace still ends it
            time.sleep(60); os._exit(0)
        me = os.readlink('/proc/self')
        result = int(open(f'/proc/self/task/{me}/children').read().split()[0])   # its host pid""")
    loaded.plugin.shutdown()
    assert pid_gone(pid)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    deadline = time.monotonic() + 5
    while not pid_gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_gone(grandchild) or _zombie_of_init(grandchild)


def _zombie_of_init(pid: int) -> bool:
    """A killed grandchild reparented to an init that does not reap is not ours to reap."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[0] == "Z" and fields[1] != str(os.getpid())
    except FileNotFoundError:
        return True


def test_concurrent_calls_are_all_answered(probe):
    results = []

    def call(i):
        results.append(run(probe, f"result = {i}"))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(20))


def test_sandbox_failure_in_the_shim_is_a_clear_error(tmp_path):
    loaded = load(write_probe_plugin(tmp_path / "plugins", "badlimit"), tmp_path,
                  loader=ProcessLoader(rlimits={"BOGUS": 1}))
    try:
        r = loaded.plugin.call_tool("run", {"code": "result = 1"}, timeout=10)
        assert not r.ok and "promptline-sandbox: rlimit BOGUS" in r.content
    finally:
        loaded.plugin.shutdown()


def test_eager_start_fails_at_load_with_the_reason(tmp_path):
    root = write_probe_plugin(tmp_path / "plugins", "eager")
    (root / "server.py").write_text("import sys\nsys.stderr.write('boom: cannot start\\n')\nsys.exit(2)\n")
    with pytest.raises(LoaderError, match="exited with code 2: boom: cannot start"):
        load(root, tmp_path, loader=ProcessLoader(start="eager"), verified=False)


def test_missing_landlock_is_refused_clearly(tmp_path, monkeypatch):
    import promptline.loaders._process._loader as mod
    monkeypatch.setattr(mod, "landlock_abi", lambda: 0)
    root = write_probe_plugin(tmp_path / "plugins", "nolandlock")
    with pytest.raises(LoaderError, match="no Landlock"):
        load(root, tmp_path)


def test_missing_landlock_with_hooks_only_policy_runs_python_plugins_without_it(tmp_path, monkeypatch):
    from sandbox_helpers import write_python_plugin

    import promptline.loaders._process._loader as mod
    monkeypatch.setattr(mod, "landlock_abi", lambda: 0)
    root = write_python_plugin(tmp_path / "plugins", "hooksonly", "def probe(arg):\n    return 1\n")
    loaded = load(root, tmp_path, loader=ProcessLoader(landlock_missing="hooks-only"))
    try:
        assert loaded.plugin.spec.landlock is False and loaded.plugin.spec.seccomp is True
    finally:
        loaded.plugin.shutdown()
