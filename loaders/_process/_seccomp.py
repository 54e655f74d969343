"""A seccomp-BPF filter for the syscalls no plugin needs, installed through ctypes.

Standard library only: the child shim loads it with ``python -I -S``. The filter:

- kills the process on a foreign architecture (no x32/i386 side doors: x32 numbers get EPERM);
- refuses (EPERM) debugging other processes, kernel modules, mounts and namespaces, eBPF,
  keyrings, kexec, perf, userfaultfd, io_uring, handle-based opens, clock and reboot calls;
- refuses ``clone`` with namespace flags and answers ``clone3`` with ENOSYS (its flags sit
  behind a pointer the filter cannot read; libc falls back to ``clone``);
- refuses ``socket()`` for every address family except AF_INET/AF_INET6, and those too when
  the plugin has no network capability (no DNS or UDP leak without a grant); an inet socket
  must be SOCK_STREAM with protocol 0 or TCP (no UDP, raw sockets or MPTCP);
- refuses TCP Fast Open (MSG_FASTOPEN on sendto/sendmsg/sendmmsg, the TCP_FASTOPEN and
  TCP_FASTOPEN_CONNECT socket options) and ``listen`` unless a bind port is granted;
- refuses changing user or group ids (a root host runs the child with an unprivileged real
  gid, or real uid where it has no pids cgroup, so every exec stays non-dumpable and
  RLIMIT_NPROC binds; the child must not switch it back);
- with ``exec_guard``: ``execve``/``execveat`` go to the host (a seccomp user notification),
  which lets the shim's own exec of the plugin through and refuses every later one. That is
  what stops the dynamic loader trick (``ld.so /bin/sh``): Landlock must grant EXECUTE on
  the loader for the plugin's own program to start, and ld.so maps its target without an
  exec check. With ``notify`` the network refusals also go to the host, which answers EPERM
  and writes an audit record (a kernel refusal the in-child enforcer never saw).

Only x86_64 has a syscall table here: elsewhere :func:`install` raises, and the host refuses
the process sandbox with a clear error rather than running without the filter.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

RET_KILL_PROCESS = 0x80000000
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
SYS_SECCOMP = 317
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3

LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
RET_K = 0x06
ALU_AND_K = 0x54

SOCK_STREAM = 1
SOCK_TYPE_MASK = 0xF
IPPROTO_TCP = 6
MSG_FASTOPEN = 0x20000000
TCP_FASTOPEN, TCP_FASTOPEN_CONNECT = 23, 30

AF_INET, AF_INET6 = 2, 10
CLONE_NS_FLAGS = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
                  | 0x20000000 | 0x40000000 | 0x00000080)
"""CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME."""

X86_64_DENIED = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "mknod": 133,
    "mknodat": 259, "bpf": 321, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "keyctl": 250,
    "add_key": 248, "request_key": 249, "kexec_load": 246, "kexec_file_load": 320,
    "perf_event_open": 298, "userfaultfd": 323, "unshare": 272, "setns": 308, "swapon": 167,
    "swapoff": 168, "reboot": 169, "acct": 163, "settimeofday": 164, "clock_settime": 227,
    "clock_adjtime": 305, "adjtimex": 159, "iopl": 172, "ioperm": 173, "syslog": 103,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "fanotify_init": 300,
    "lookup_dcookie": 212, "vhangup": 153, "quotactl": 179, "kcmp": 312, "pidfd_getfd": 438,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "mount_setattr": 442, "uselib": 134,
}
X86_64_CLONE, X86_64_CLONE3, X86_64_SOCKET = 56, 435, 41
X86_64_SENDTO, X86_64_SENDMSG, X86_64_SENDMMSG = 44, 46, 307
X86_64_SETSOCKOPT, X86_64_LISTEN = 54, 50
X86_64_EXECVE, X86_64_EXECVEAT = 59, 322
X86_64_SETID = {"setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setgroups": 116,
                "setresuid": 117, "setresgid": 119, "setfsuid": 122, "setfsgid": 123}
NAMES = {v: k for k, v in {**X86_64_DENIED, **X86_64_SETID, "socket": X86_64_SOCKET,
                            "sendto": X86_64_SENDTO, "sendmsg": X86_64_SENDMSG,
                            "sendmmsg": X86_64_SENDMMSG, "setsockopt": X86_64_SETSOCKOPT,
                            "listen": X86_64_LISTEN, "execve": X86_64_EXECVE,
                            "execveat": X86_64_EXECVEAT}.items()}
"""Syscall names by number (for the host's audit records of refusals)."""

OFF_NR, OFF_ARCH = 0, 4   # struct seccomp_data; args[i] at 16 + 8*i (little-endian low word first)


def _arg(i: int) -> int:
    return 16 + 8 * i


class SeccompError(OSError):
    """The filter cannot be built or installed."""


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_LIBC: list = []   # one handle per process: a template process makes it once for all its forks


def _libc():
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def supported() -> bool:
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


_built: dict[tuple[bool, bool, bool, bool], bytes] = {}   # a template process builds them for its forks


def build(*, allow_inet: bool, listen: bool = False, exec_guard: bool = False,
          notify: bool = False) -> bytes:
    """The BPF program as bytes (an array of struct sock_filter). ``listen``: the plugin
    has a bind grant; ``exec_guard``/``notify``: see the module docstring (both need the
    filter installed with :func:`install`, which returns the listener fd)."""
    key = (bool(allow_inet), bool(listen), bool(exec_guard), bool(notify))
    if key not in _built:
        _built[key] = _build(*key)
    return _built[key]


def _build(allow_inet: bool, listen: bool, exec_guard: bool, notify: bool) -> bytes:
    if not supported():
        raise SeccompError(errno.EOPNOTSUPP, f"no seccomp syscall table for `{platform.machine()}`")
    prog: list[list] = []   # (code, jt, jf, k); jt/jf may be label names

    def op(code, k, jt=0, jf=0):
        prog.append([code, jt, jf, k])

    eperm = RET_ERRNO | errno.EPERM
    op(LD_W_ABS, OFF_ARCH)
    op(JEQ_K, AUDIT_ARCH_X86_64, 1, 0)
    op(RET_K, RET_KILL_PROCESS)
    op(LD_W_ABS, OFF_NR)
    op(JGE_K, X32_SYSCALL_BIT, "eperm", 0)
    for nr in sorted(set(X86_64_DENIED.values()) | set(X86_64_SETID.values())):
        op(JEQ_K, nr, "eperm", 0)
    if exec_guard:
        op(JEQ_K, X86_64_EXECVE, "notify", 0)
        op(JEQ_K, X86_64_EXECVEAT, "notify", 0)
    op(JEQ_K, X86_64_CLONE3, "enosys", 0)
    op(JEQ_K, X86_64_CLONE, "clone", 0)
    op(JEQ_K, X86_64_SOCKET, "socket", 0)
    op(JEQ_K, X86_64_SENDTO, "sendto", 0)
    op(JEQ_K, X86_64_SENDMSG, "sendmsg", 0)
    op(JEQ_K, X86_64_SENDMMSG, "sendto", 0)      # flags are args[3], as for sendto
    op(JEQ_K, X86_64_SETSOCKOPT, "setsockopt", 0)
    op(JEQ_K, X86_64_LISTEN, "allow" if listen else "net", "allow")
    labels: dict[str, int] = {}
    labels["clone"] = len(prog)
    op(LD_W_ABS, _arg(0))
    op(JSET_K, CLONE_NS_FLAGS, "eperm", "allow")
    labels["socket"] = len(prog)
    op(LD_W_ABS, _arg(0))
    if allow_inet:
        op(JEQ_K, AF_INET, "inet", 0)
        op(JEQ_K, AF_INET6, "inet", 0)
    op(RET_K, RET_USER_NOTIF if notify else eperm)
    labels["inet"] = len(prog)
    op(LD_W_ABS, _arg(1))
    op(ALU_AND_K, SOCK_TYPE_MASK)
    op(JEQ_K, SOCK_STREAM, 0, "net")
    op(LD_W_ABS, _arg(2))
    op(JEQ_K, 0, "allow", 0)
    op(JEQ_K, IPPROTO_TCP, "allow", "net")
    labels["sendto"] = len(prog)
    op(LD_W_ABS, _arg(3))
    op(JSET_K, MSG_FASTOPEN, "net", "allow")
    labels["sendmsg"] = len(prog)
    op(LD_W_ABS, _arg(2))
    op(JSET_K, MSG_FASTOPEN, "net", "allow")
    labels["setsockopt"] = len(prog)
    op(LD_W_ABS, _arg(1))
    op(JEQ_K, IPPROTO_TCP, 0, "allow")
    op(LD_W_ABS, _arg(2))
    op(JEQ_K, TCP_FASTOPEN, "net", 0)
    op(JEQ_K, TCP_FASTOPEN_CONNECT, "net", "allow")
    labels["allow"] = len(prog)
    op(RET_K, RET_ALLOW)
    labels["eperm"] = len(prog)
    op(RET_K, eperm)
    labels["net"] = len(prog)
    op(RET_K, RET_USER_NOTIF if notify else eperm)
    labels["notify"] = len(prog)
    op(RET_K, RET_USER_NOTIF)
    labels["enosys"] = len(prog)
    op(RET_K, RET_ERRNO | errno.ENOSYS)
    out = b""
    for i, (code, jt, jf, k) in enumerate(prog):
        jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
        if not (0 <= jt < 256 and 0 <= jf < 256):
            raise SeccompError(errno.E2BIG, "seccomp jump out of range")
        out += struct.pack("=HBBI", code, jt, jf, k)
    return out


def install(*, allow_inet: bool, listen: bool = False, exec_guard: bool = False,
            notify: bool = False) -> int | None:
    """Set no_new_privs and install the filter on the calling (single-threaded) process.
    With ``exec_guard`` or ``notify`` returns the seccomp listener fd (hand it to the
    supervisor and close it before running the plugin), else None."""
    program = build(allow_inet=allow_inet, listen=listen, exec_guard=exec_guard, notify=notify)
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise SeccompError(e, f"no_new_privs failed: {errno.errorcode.get(e, e)}")
    if exec_guard or notify:
        fd = libc.syscall(ctypes.c_long(SYS_SECCOMP), ctypes.c_long(SECCOMP_SET_MODE_FILTER),
                          ctypes.c_long(SECCOMP_FILTER_FLAG_NEW_LISTENER), ctypes.byref(fprog))
        if fd < 0:
            e = ctypes.get_errno()
            raise SeccompError(e, f"seccomp filter with a listener refused: {errno.errorcode.get(e, e)}")
        return int(fd)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        e = ctypes.get_errno()
        raise SeccompError(e, f"seccomp filter refused: {errno.errorcode.get(e, e)}")
    return None


PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
SYS_CAPSET = 126                     # x86_64
LINUX_CAPABILITY_VERSION_3 = 0x20080522
LAST_CAP = 63                        # dropping unknown numbers is harmless (EINVAL, ignored)


def drop_capabilities() -> None:
    """Empty the bounding set and the effective, permitted and inheritable sets, so a child
    started as root keeps no capability across ``execve`` (no_new_privs keeps it that way)."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    for cap in range(LAST_CAP + 1):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.EPERM):
            e = ctypes.get_errno()
            raise SeccompError(e, f"dropping capability {cap} failed: {errno.errorcode.get(e, e)}")
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc.syscall(ctypes.c_long(SYS_CAPSET), header, data) != 0:
        e = ctypes.get_errno()
        raise SeccompError(e, f"capset failed: {errno.errorcode.get(e, e)}")
