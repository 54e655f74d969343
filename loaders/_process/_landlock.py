"""Linux Landlock through raw syscalls (ctypes): ABI probe, rulesets, restrict_self.

Only this module and ``_seccomp`` touch ctypes for the sandbox. It is imported by the host
(for :func:`landlock_abi`) and by the child shim (for :func:`restrict`), so it depends on the
standard library alone: the shim runs it with ``python -I -S`` before any other code.

Landlock ABI levels used here: 1 (filesystem), 2 (REFER), 3 (TRUNCATE), 4 (TCP bind/connect
by port), 5 (IOCTL_DEV), 6 (signal and abstract unix socket scoping). Rights the running
kernel does not know are dropped, so a ruleset is always as strict as the kernel can be.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

# x86_64 and aarch64 share these numbers (new syscalls use one table for every arch).
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_RULE_NET_PORT = 2
PR_SET_NO_NEW_PRIVS = 38

# filesystem rights (with the ABI that introduced them)
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13        # ABI 2
TRUNCATE = 1 << 14     # ABI 3
IOCTL_DEV = 1 << 15    # ABI 5

# network rights (ABI 4) and scopes (ABI 6)
NET_BIND_TCP = 1 << 0
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1,
             5: (1 << 16) - 1, 6: (1 << 16) - 1, 7: (1 << 16) - 1}
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
"""Rights that may be granted on a file (not a directory); the kernel refuses others."""

READ = READ_FILE | READ_DIR
WRITE = (READ | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SYM
         | MAKE_FIFO | MAKE_SOCK | REFER | TRUNCATE)
"""What a filesystem ``write`` capability grants below a directory (never devices)."""


class LandlockError(OSError):
    """Landlock is missing or refused a ruleset."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPort(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


_libc = None


def _syscall():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
        _libc.prctl.restype = ctypes.c_int
    return _libc


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing or disabled."""
    if platform.system() != "Linux":
        return 0
    libc = _syscall()
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
                      ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return int(rc) if rc > 0 else 0


def _fail(what: str) -> LandlockError:
    e = ctypes.get_errno()
    return LandlockError(e, f"landlock {what} failed: {os.strerror(e)}")


def restrict(fs_rules: list[tuple[str, int]], *, connect_ports: list[int] | None,
             bind_ports: list[int] | None, scope: bool = True, abi: int | None = None) -> int:
    """Restrict the calling thread (and what it execs) to ``fs_rules``.

    ``fs_rules`` are (path, rights); a path that does not exist is skipped (it cannot be
    reached anyway). ``connect_ports``/``bind_ports`` are the TCP ports allowed; None leaves
    that right unhandled (unrestricted). Returns the ABI used. Raises LandlockError.
    The caller must have set no_new_privs.
    """
    abi = landlock_abi() if abi is None else abi
    if abi < 1:
        raise LandlockError(errno.EOPNOTSUPP, "landlock is not available in this kernel")
    libc = _syscall()
    handled_fs = FS_BY_ABI.get(abi, FS_BY_ABI[7])
    handled_net = 0
    if abi >= 4:
        if connect_ports is not None:
            handled_net |= NET_CONNECT_TCP
        if bind_ports is not None:
            handled_net |= NET_BIND_TCP
    scoped = (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if (scope and abi >= 6) else 0
    attr = _RulesetAttr(handled_fs, handled_net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = libc.syscall(ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), ctypes.byref(attr),
                           ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise _fail("create_ruleset")
    try:
        for path, rights in fs_rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                allowed = rights & handled_fs
                if not os.path.isdir(path):
                    allowed &= FILE_RIGHTS
                if not allowed:
                    continue
                rule = _PathBeneath(allowed, fd)
                if libc.syscall(ctypes.c_long(SYS_LANDLOCK_ADD_RULE), ctypes.c_int(ruleset),
                                ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule),
                                ctypes.c_uint32(0)) < 0:
                    raise _fail(f"add_rule for `{path}`")
            finally:
                os.close(fd)
        for ports, right in ((connect_ports, NET_CONNECT_TCP), (bind_ports, NET_BIND_TCP)):
            if not (handled_net & right):
                continue
            for port in sorted(set(ports or ())):
                rule = _NetPort(right, port)
                if libc.syscall(ctypes.c_long(SYS_LANDLOCK_ADD_RULE), ctypes.c_int(ruleset),
                                ctypes.c_int(LANDLOCK_RULE_NET_PORT), ctypes.byref(rule),
                                ctypes.c_uint32(0)) < 0:
                    raise _fail(f"add_rule for port {port}")
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _fail("no_new_privs")
        if libc.syscall(ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset),
                        ctypes.c_uint32(0)) < 0:
            raise _fail("restrict_self")
    finally:
        os.close(ruleset)
    return abi
