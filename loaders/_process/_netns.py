"""The child's side of the network wall: its own network namespace and the egress forwarder.

Standard library only (the shim loads it with ``python -I -S``, like ``_landlock``).

Design (docs/design.md §7): the child gets a network namespace with only loopback, so no
packet reaches any other host whatever the plugin does. The one way out is the host's
egress proxy. Inside the namespace a tiny *forwarder* process listens on
``127.0.0.1:<port>`` (announced as ``HTTP(S)_PROXY``/``ALL_PROXY``); for every connection it
accepts it hands the socket itself to the host over an inherited ``AF_UNIX`` SEQPACKET
channel (``SCM_RIGHTS``) and forgets it. The host speaks HTTP CONNECT / SOCKS5 on that socket,
decides, dials and relays: the forwarder copies no byte and decides nothing. It is forked
before the plugin's Landlock domain exists, so the plugin can neither signal nor trace it,
and it confines itself (no files, no connect, no exec) before its first accept.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import socket
import struct

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
PR_SET_PDEATHSIG = 1
TAG_CONNECTION = b"C"
TAG_LISTENER = b"N"


class NamespaceError(OSError):
    """The network namespace cannot be made."""


_LIBC: list = []   # one handle per process: a template process makes it once for all its forks


def _libc():
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def _unshare(flags: int) -> None:
    if _libc().unshare(ctypes.c_int(flags)) != 0:
        e = ctypes.get_errno()
        raise NamespaceError(e, f"unshare failed: {os.strerror(e)}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def enter_new_netns(*, pid: bool = False) -> None:
    """Move the calling process into a new network namespace (root: directly; otherwise in a
    new user namespace that maps the caller's own uid and gid) and bring loopback up. With
    ``pid`` its next child starts a new PID namespace too (see :func:`become_init`)."""
    uid, gid = os.geteuid(), os.getegid()
    extra = CLONE_NEWPID if pid else 0
    if uid == 0:
        _unshare(CLONE_NEWNET | extra)
    else:
        _unshare(CLONE_NEWUSER | CLONE_NEWNET | extra)
        try:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
        except OSError as exc:
            raise NamespaceError(exc.errno or errno.EPERM, f"user namespace id map: {exc.strerror}") from None
    loopback_up()


def loopback_up() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    except OSError as exc:
        raise NamespaceError(exc.errno or errno.EPERM, f"loopback up: {exc.strerror}") from None
    finally:
        s.close()


def _mirror(status: int) -> None:
    """Exit the way a waited-for child exited (its code, or its signal)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _forward_to(pid: int) -> None:
    def forward(sig: int, _frame: object) -> None:
        os.kill(pid, sig)
    for sig in FORWARDED:
        signal.signal(sig, forward)


def _quiet(keep: tuple[int, ...] = ()) -> None:
    """Drop stdin and stdout (the plugin's protocol) so only the plugin holds them."""
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    os.close(devnull)
    for fd in keep:
        try:
            os.close(fd)
        except OSError:
            pass


def become_init(close: tuple[int, ...], confine) -> None:
    """After ``enter_new_netns(pid=True)``: fork twice so the plugin runs as PID 2 under a
    tiny init (PID 1) in the new PID namespace. Returns in the plugin's process only.

    The caller stays outside as the host's child: it forwards SIGTERM/SIGINT/SIGHUP and exits
    as the plugin did. The init reaps orphans and exits when the plugin does, and the kernel
    then kills everything left in the namespace (a ``setsid()`` grandchild included); it
    dies with the outer process too (PDEATHSIG), so the host killing its child kills them all.
    ``close`` are fds the two waiters must not hold; ``confine()`` locks both down (no
    capabilities, files, network or exec; signals stay possible).
    """
    # a namespace's init cannot die of its own signals: it reports the plugin's raw wait
    # status on this pipe, and the outer process mirrors it (a SIGSEGV stays a SIGSEGV)
    status_r, status_w = os.pipe()
    init = os.fork()
    if init:
        os.close(status_w)
        _confine_or_kill(init, close, confine)
        while True:
            try:
                _, status = os.waitpid(init, 0)
                break
            except InterruptedError:
                continue
        report = os.read(status_r, 4)
        _mirror(struct.unpack("=i", report)[0] if len(report) == 4 else status)
    os.close(status_r)
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    plugin = os.fork()
    if plugin == 0:
        os.close(status_w)
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        return
    serve_as_init(plugin, status_w, close, confine)


def _confine_or_kill(pid: int, close: tuple[int, ...], confine) -> None:
    """Drop stdio, forward signals to ``pid`` and confine this process; if it cannot be
    confined, ``pid`` dies with it (exit 125)."""
    _quiet(close)
    _forward_to(pid)
    try:
        confine()
    except OSError:
        os.kill(pid, signal.SIGKILL)
        os._exit(125)


def serve_as_init(plugin: int, status_w: int, close: tuple[int, ...], confine) -> None:
    """Be the tiny init (PID 1) of ``plugin``'s PID namespace: drop its stdio, forward
    signals, confine itself, reap orphans; when the plugin exits write its raw wait status to
    ``status_w`` and exit. :func:`become_init` ends here; so does the init a template
    process forks into a new PID namespace (``_zygote``: its template reads the status)."""
    _confine_or_kill(plugin, close, confine)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        except InterruptedError:
            continue
        if pid == plugin:
            os.write(status_w, struct.pack("=i", status))
            os._exit(0)


def unshare_pid() -> None:
    """The caller's next child starts a new PID namespace (root only)."""
    _unshare(CLONE_NEWPID)


def setns(fd: int, nstype: int) -> None:
    if _libc().setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        e = ctypes.get_errno()
        raise NamespaceError(e, f"setns failed: {os.strerror(e)}")


def only_loopback() -> bool:
    """True when this network namespace has no interface but ``lo``."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def probe() -> str | None:
    """None when this host can give a child its own network namespace, else the reason
    (tried in a throwaway interpreter, so nothing here changes and no thread is forked)."""
    import subprocess
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    code = (f"import sys; sys.path.insert(0, {here!r}); import _netns; _netns.enter_new_netns(); "
            "sys.exit(0 if _netns.only_loopback() else 3)")
    try:
        r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run the probe: {exc}"
    if r.returncode == 0:
        return None
    if r.returncode == 3:
        return "the new namespace has interfaces besides lo"
    return (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1][:300]


def start_forwarder(channel: int, confine) -> int:
    """Fork the forwarder (see the module docstring); returns its port on 127.0.0.1.
    ``confine()`` locks the forwarder down before its first accept."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    port = lsock.getsockname()[1]
    parent = os.getpid()
    pid = os.fork()
    if pid:
        lsock.close()
        return port
    try:   # the forwarder
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(0)
        keep = {lsock.fileno(), channel}
        os.closerange(3, min(keep))
        for fd in range(min(keep) + 1, max(keep)):
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        os.closerange(max(keep) + 1, 1024)
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1):
            os.dup2(devnull, fd)
        os.close(devnull)
        confine()
        chan = socket.socket(fileno=channel)
        while True:
            conn, _ = lsock.accept()
            try:
                socket.send_fds(chan, [TAG_CONNECTION], [conn.fileno()])
            except OSError:
                os._exit(0)   # the host is gone
            finally:
                conn.close()
    except BaseException as exc:  # noqa: BLE001
        try:
            os.write(2, f"promptline-sandbox: egress forwarder: {exc}\n".encode())
        except OSError:
            pass
    os._exit(1)
