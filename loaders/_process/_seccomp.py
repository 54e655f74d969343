"""A seccomp-BPF filter for the syscalls no plugin needs, installed through ctypes.

Standard library only: the child shim loads it with ``python -I -S``. The filter:

- kills the process on a foreign architecture (no x32/i386 side doors: x32 numbers get EPERM);
- refuses (EPERM) debugging other processes, kernel modules, mounts and namespaces, eBPF,
  keyrings, kexec, perf, userfaultfd, io_uring, handle-based opens, clock and reboot calls;
- refuses ``clone`` with namespace flags and answers ``clone3`` with ENOSYS (its flags sit
  behind a pointer the filter cannot read; libc falls back to ``clone``);
- refuses ``socket()`` for every address family except AF_INET/AF_INET6, and those too when
  the plugin has no network capability (no DNS or UDP leak without a grant).

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

LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
RET_K = 0x06

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

OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16   # struct seccomp_data (little-endian low word of args[0])


class SeccompError(OSError):
    """The filter cannot be built or installed."""


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def supported() -> bool:
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


def build(*, allow_inet: bool) -> bytes:
    """The BPF program as bytes (an array of struct sock_filter)."""
    if not supported():
        raise SeccompError(errno.EOPNOTSUPP, f"no seccomp syscall table for `{platform.machine()}`")
    prog: list[tuple] = []   # (code, jt, jf, k); jt/jf may be label names

    def op(code, k, jt=0, jf=0):
        prog.append([code, jt, jf, k])

    eperm = RET_ERRNO | errno.EPERM
    op(LD_W_ABS, OFF_ARCH)
    op(JEQ_K, AUDIT_ARCH_X86_64, 1, 0)
    op(RET_K, RET_KILL_PROCESS)
    op(LD_W_ABS, OFF_NR)
    op(JGE_K, X32_SYSCALL_BIT, "eperm", 0)
    for nr in sorted(set(X86_64_DENIED.values())):
        op(JEQ_K, nr, "eperm", 0)
    op(JEQ_K, X86_64_CLONE3, "enosys", 0)
    op(JEQ_K, X86_64_CLONE, "clone", 0)
    op(JEQ_K, X86_64_SOCKET, "socket", "allow")
    labels = {}
    labels["clone"] = len(prog)
    op(LD_W_ABS, OFF_ARG0)
    op(JSET_K, CLONE_NS_FLAGS, "eperm", "allow")
    labels["socket"] = len(prog)
    op(LD_W_ABS, OFF_ARG0)
    if allow_inet:
        op(JEQ_K, AF_INET, "allow", 0)
        op(JEQ_K, AF_INET6, "allow", 0)
    op(RET_K, eperm)
    labels["allow"] = len(prog)
    op(RET_K, RET_ALLOW)
    labels["eperm"] = len(prog)
    op(RET_K, eperm)
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


def install(*, allow_inet: bool) -> None:
    """Set no_new_privs and install the filter on the calling (single-threaded) process."""
    program = build(allow_inet=allow_inet)
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise SeccompError(e, f"no_new_privs failed: {errno.errorcode.get(e, e)}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        e = ctypes.get_errno()
        raise SeccompError(e, f"seccomp filter refused: {errno.errorcode.get(e, e)}")


PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
SYS_CAPSET = 126                     # x86_64
LINUX_CAPABILITY_VERSION_3 = 0x20080522
LAST_CAP = 63                        # dropping unknown numbers is harmless (EINVAL, ignored)


def drop_capabilities() -> None:
    """Empty the bounding set and the effective, permitted and inheritable sets, so a child
    started as root keeps no capability across ``execve`` (no_new_privs keeps it that way)."""
    libc = ctypes.CDLL(None, use_errno=True)
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
