"""The template process: Python with the child's imports done, forking one plugin at a time.

    python -I -B .../loaders/_process/_zygote.py CONTROL_FD SYS_PATH_JSON

(started by the host, :mod:`._template`). It imports what every Python plugin's bootstrap
needs (jsonschema, the policy compiler with its CEL parser built, the enforcer, the MCP
server, the walls), then waits on its control socket. For each ``F`` message (the child's
stdin, stdout and stderr, a pipe carrying the child's spec, and maybe the host channel) it
forks; the fork, never the template:

1. reads its spec from its own pipe (the template never holds a plugin's settings or
   environment, so no plugin can find another's in memory it inherited);
2. becomes a session leader with those fds as 0/1/2 (and the channel as fd 3), closes every
   other fd, takes the spec's environment and working directory;
3. puts up every wall with the shim's own code (:func:`._shim.confine`: rlimits, namespaces,
   real uid, capabilities, Landlock, seccomp), drops what secure-execution mode would have
   dropped at an exec, and forgets ctypes and the wall modules (a ``native: false`` plugin
   finds no native door open: an ``import ctypes`` is decided again);
4. runs the bootstrap (:mod:`._bootstrap`) in place of the exec.

The template answers each fork with the child's pid and, when the child exits, its exit
code (``subprocess`` convention: negative for a signal). It runs no plugin code, holds no
secret, and exits when the host closes the control socket.
"""

from __future__ import annotations

import gc
import json
import os
import struct
import sys

MAX_SPEC_BYTES = 16 * 1024 * 1024
CHANNEL_FD = 3
CLONE_NEWPID = 0x20000000
_pid_namespace: list[int] = []   # the template's own PID namespace (root only): restored after each P fork
UNSECURE_ENV = ("GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH",
                "MALLOC_TRACE", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR")
"""What glibc's secure-execution mode drops at exec (besides ``LD_*``): a forked child whose
real uid or gid differs from its effective one drops them too, as the exec'd bootstrap would."""
_forgotten: list[str] = []
FORGOTTEN = ("ctypes", "_ctypes", "_landlock", "_seccomp", "_netns", "_shim", "_zygote")
WARM_MANIFEST = """\
id: promptline-template
name: template
version: 0.0.1
description: warms the policy compiler
types: [tool]
entry: {python: "m:P"}
sandbox: process
capabilities:
  filesystem: {read: ["/nonexistent/**"]}
  network: ["example.invalid:443"]
  environment: ["PROMPTLINE_TEMPLATE_*"]
"""


def preload() -> None:
    """Import (and warm) what the bootstrap and the walls need, as the exec'd child would.
    A policy is compiled once, for the CEL parser and the compiler's lazy imports; the
    host's own policy files are not: each child's load re-resolves `/proc/self` to its own
    pid, and the policy compiler then drops every cached program."""
    import concurrent.futures.thread  # noqa: F401 - the serve loop's and Enforcer.install's imports
    import pwd  # noqa: F401
    import sqlite3  # noqa: F401

    import jsonschema  # noqa: F401

    from promptline.enforcer import Enforcer  # noqa: F401
    from promptline.policy import load_policy_set

    from . import _backend, _bootstrap, _jsonrpc, _server, _shim  # noqa: F401
    landlock, netns, seccomp = _shim._walls()
    import itertools
    for inet, listen, guard, notify in itertools.product((False, True), repeat=4):   # every filter a
        seccomp.build(allow_inet=inet, listen=listen, exec_guard=guard, notify=notify)  # fork installs
    landlock.landlock_abi()
    for libc in (landlock._syscall(), netns._libc(), seccomp._libc()):   # the handles and functions
        for name in ("syscall", "prctl", "unshare"):                       # every fork calls
            getattr(libc, name)
    load_policy_set([], [("/nonexistent/promptline-template/plugin.yaml", WARM_MANIFEST)])
    if os.geteuid() == 0:
        _pid_namespace.append(os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC))
    _forgotten[:] = [name for name in sys.modules
                     if name.rpartition(".")[2] in FORGOTTEN or name.startswith("ctypes.")]
    gc.collect()
    gc.freeze()   # what is here now stays shared with every fork: no collection touches it


def serve(control_fd: int) -> None:
    import selectors
    import socket
    ctl = socket.socket(fileno=control_fd)
    sel = selectors.DefaultSelector()
    sel.register(ctl, selectors.EVENT_READ, None)
    ctl.send(b"R")
    while True:
        for key, _ in sel.select():
            if key.data is None:
                try:
                    msg, fds, _flags, _addr = socket.recv_fds(ctl, 16, 8)
                except OSError:
                    os._exit(0)
                if not msg:
                    os._exit(0)   # the host is gone
                _fork(ctl, sel, msg, fds)
            else:
                pid, pidfd, status_r = key.data
                sel.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                if status_r is not None:   # the init reports how the plugin ended
                    os.set_blocking(status_r, False)
                    try:
                        report = os.read(status_r, 4)
                    except OSError:
                        report = b""
                    os.close(status_r)
                    if len(report) == 4:
                        status = struct.unpack("=i", report)[0]
                _tell(ctl, {"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _tell(ctl, message: dict) -> None:
    try:
        ctl.send(json.dumps(message).encode())
    except OSError:
        os._exit(0)


def _fork(ctl, sel, msg: bytes, fds: list[int]) -> None:
    """``F``: fork the child; ``P`` (a root host's child with a network namespace): fork it as
    PID 1 of a new PID namespace, so it is the plugin's init itself and no process waits
    outside for it (the shim's start needs one); it reports the plugin's status on a pipe."""
    import selectors
    if msg not in (b"F", b"P") or len(fds) not in (4, 5):
        for fd in fds:
            os.close(fd)
        _tell(ctl, {"error": "malformed fork request"})
        return
    status_r = status_w = None
    if msg == b"P" and _pid_namespace:
        try:
            _netns().unshare_pid()
            status_r, status_w = os.pipe()
        except OSError:
            pass   # the child makes the namespaces itself (the shim's way)
    try:
        pid = os.fork()
    except OSError as exc:
        pid = -1
        error = f"fork failed: {exc}"
    if status_r is not None and pid != 0:
        try:
            _netns().setns(_pid_namespace[0], CLONE_NEWPID)
        except OSError:
            os._exit(1)   # never fork another child into that namespace
    if pid < 0:
        for fd in [*fds, *((status_r, status_w) if status_r is not None else ())]:
            os.close(fd)
        _tell(ctl, {"error": error})
        return
    if pid == 0:
        try:
            sel.close()
            ctl.detach()
            if status_r is not None and status_w is not None:
                os.close(status_r)
                _init(status_w)   # returns in the plugin, PID 2
            _child(fds, made=status_r is not None)
        except BaseException as exc:  # noqa: BLE001 - the fork never returns into the loop
            try:
                os.write(2, f"promptline-sandbox: the forked child failed: {type(exc).__name__}: {exc}\n".encode())
            except OSError:
                pass
        os._exit(125)
    for fd in fds:
        os.close(fd)
    if status_w is not None:
        os.close(status_w)
    pidfd = os.pidfd_open(pid)
    sel.register(pidfd, selectors.EVENT_READ, (pid, pidfd, status_r))
    _tell(ctl, {"pid": pid})


def _netns():
    from . import _netns
    return _netns


def _init(status_w: int) -> None:
    """In PID 1 of the new PID namespace: become the session leader, fork the plugin (it
    returns, as PID 2, to read its spec) and stay its init, holding nothing but ``status_w``
    (and none of the plugin's memory: what the plugin writes later is its own)."""
    import fcntl
    os.setsid()
    netns = _netns()
    netns._libc().prctl(netns.PR_SET_PDEATHSIG, 9, 0, 0, 0)   # SIGKILL when the template dies
    plugin = os.fork()
    if plugin == 0:
        os.close(status_w)
        return
    status = fcntl.fcntl(status_w, fcntl.F_DUPFD_CLOEXEC, 64)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.dup2(status, CHANNEL_FD)
    os.closerange(CHANNEL_FD + 1, os.sysconf("SC_OPEN_MAX"))
    from . import _shim
    landlock, _, seccomp = _shim._walls()

    def confine() -> None:   # no files, no network, no exec; it may signal its child
        seccomp.drop_capabilities()
        landlock.restrict([], connect_ports=[], bind_ports=[], scope=False)
        seccomp.install(allow_inet=False)
    netns.serve_as_init(plugin, CHANNEL_FD, (), confine)


def _child(fds: list[int], made: bool = False) -> None:
    """The plugin's process (``made``: PID 2 under the init :func:`_init` made)."""
    import fcntl
    if not made:
        os.setsid()
    spec_fd = fds[3]
    data = b""
    while len(data) <= MAX_SPEC_BYTES:
        chunk = os.read(spec_fd, 1 << 16)
        if not chunk:
            break
        data += chunk
    os.close(spec_fd)
    spec = json.loads(data)
    del data
    # out of the way first (a received fd may sit on 0-4), then into place; the rest closed
    places = list(zip(fds[:3], (0, 1, 2)))
    if len(fds) == 5:
        places.append((fds[4], CHANNEL_FD))
    high = [(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64), target) for fd, target in places]
    for fd, target in high:
        os.dup2(fd, target)
    channel = CHANNEL_FD if len(fds) == 5 else None
    os.closerange(len(high), os.sysconf("SC_OPEN_MAX"))
    os.chdir(spec["cwd"])
    os.environ.clear()
    os.environ.update(spec["env"])
    shim = spec["shim"]
    shim["channel"] = channel
    if made:
        shim["pid_namespace"] = "made"
    from . import _shim
    _shim.confine(shim)
    if (os.getuid(), os.getgid()) != (os.geteuid(), os.getegid()):   # as secure-execution mode after an exec
        for name in [n for n in os.environ if n.startswith("LD_") or n in UNSECURE_ENV]:
            del os.environ[name]
        _not_dumpable()
    _forget()
    sys.argv = list(spec["argv"][3:]) or sys.argv[:1]
    from . import _bootstrap
    _bootstrap.main(sys.argv)


def _not_dumpable() -> None:
    """PR_SET_DUMPABLE 0, as an exec with a real uid or gid apart from the effective one leaves it."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)


def _forget() -> None:
    """Drop ctypes and the wall modules from ``sys.modules`` (and their packages'
    attributes): the plugin imports them anew, through the enforcer, or not at all. The
    names were listed in the template (walking every module here would copy their pages)."""
    for name in _forgotten:
        module = sys.modules.pop(name, None)
        package, _, leaf = name.rpartition(".")
        parent = sys.modules.get(package) if package else None
        if module is not None and parent is not None and getattr(parent, leaf, None) is module:
            delattr(parent, leaf)


def main(argv: list[str]) -> None:
    fd = int(argv[1])
    for p in reversed(json.loads(argv[2])):
        if p not in sys.path:
            sys.path.insert(0, p)
    import importlib
    mod = importlib.import_module("promptline.loaders._process._zygote")
    mod.preload()
    mod.serve(fd)


if __name__ == "__main__":
    main(sys.argv)
