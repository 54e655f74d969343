"""The seccomp program, explored as a class: a small classic-BPF interpreter runs the exact
bytes ``_seccomp.build`` produces against random syscalls and arguments (hypothesis), and
every answer must match the rule written down here. The real kernel runs the same bytes in
tests/escape/test_wall_escapes.py (UDP, MPTCP, TCP Fast Open, listen, exec)."""

from __future__ import annotations

import errno
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from promptline.loaders._process import _seccomp as sc

ALLOW, NOTIF, KILL = sc.RET_ALLOW, sc.RET_USER_NOTIF, sc.RET_KILL_PROCESS
EPERM, ENOSYS = sc.RET_ERRNO | errno.EPERM, sc.RET_ERRNO | errno.ENOSYS


def run_bpf(program: bytes, data: bytes) -> int:
    """Classic BPF as seccomp uses it: A register, absolute loads, jumps, AND, return."""
    insns = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == sc.LD_W_ABS:
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == sc.ALU_AND_K:
            acc &= k
        elif code == sc.RET_K:
            return k
        elif code in (sc.JEQ_K, sc.JGE_K, sc.JSET_K):
            hit = acc == k if code == sc.JEQ_K else acc >= k if code == sc.JGE_K else bool(acc & k)
            pc += jt if hit else jf
        else:
            raise AssertionError(f"unknown BPF opcode {code:#x}")


def seccomp_data(nr: int, args: tuple[int, ...], arch: int = sc.AUDIT_ARCH_X86_64) -> bytes:
    return struct.pack("=iIQ6Q", nr, arch, 0, *args)


def expected(nr: int, args: tuple[int, ...], *, allow_inet: bool, listen: bool, exec_guard: bool,
             notify: bool) -> int:
    """The rule, in plain Python (what the module docstring promises)."""
    net = NOTIF if notify else EPERM
    low = [a & 0xFFFFFFFF for a in args]
    if nr >= sc.X32_SYSCALL_BIT:
        return EPERM
    if nr in sc.X86_64_DENIED.values() or nr in sc.X86_64_SETID.values():
        return EPERM
    if exec_guard and nr in (sc.X86_64_EXECVE, sc.X86_64_EXECVEAT):
        return NOTIF
    if nr == sc.X86_64_CLONE3:
        return ENOSYS
    if nr == sc.X86_64_CLONE:
        return EPERM if low[0] & sc.CLONE_NS_FLAGS else ALLOW
    if nr == sc.X86_64_SOCKET:
        if not (allow_inet and low[0] in (sc.AF_INET, sc.AF_INET6)):
            return net
        return ALLOW if (low[1] & 0xF) == sc.SOCK_STREAM and low[2] in (0, sc.IPPROTO_TCP) else net
    if nr in (sc.X86_64_SENDTO, sc.X86_64_SENDMMSG):
        return net if low[3] & sc.MSG_FASTOPEN else ALLOW
    if nr == sc.X86_64_SENDMSG:
        return net if low[2] & sc.MSG_FASTOPEN else ALLOW
    if nr == sc.X86_64_SETSOCKOPT:
        return net if low[1] == sc.IPPROTO_TCP and low[2] in (sc.TCP_FASTOPEN, sc.TCP_FASTOPEN_CONNECT) else ALLOW
    if nr == sc.X86_64_LISTEN:
        return ALLOW if listen else net
    return ALLOW


INTERESTING_NR = sorted({*sc.X86_64_DENIED.values(), *sc.X86_64_SETID.values(), sc.X86_64_SOCKET,
                         sc.X86_64_SENDTO, sc.X86_64_SENDMSG, sc.X86_64_SENDMMSG, sc.X86_64_SETSOCKOPT,
                         sc.X86_64_LISTEN, sc.X86_64_EXECVE, sc.X86_64_EXECVEAT, sc.X86_64_CLONE,
                         sc.X86_64_CLONE3, 0, 1, 2, 3, 42, 49, 257, 500})
ARG = st.one_of(st.sampled_from([0, 1, 2, 3, 5, 6, 10, 16, 17, 23, 30, 262, 0x800, 0x80000, 0x80001,
                                 sc.MSG_FASTOPEN, sc.MSG_FASTOPEN | 0x40, sc.CLONE_NS_FLAGS, 0x10000000 | 17,
                                 (1 << 32) | 2, 0xFFFFFFFF]),
                st.integers(min_value=0, max_value=2 ** 64 - 1))


@settings(max_examples=600, deadline=None)
@given(nr=st.one_of(st.sampled_from(INTERESTING_NR), st.integers(min_value=0, max_value=2 ** 31 - 1)),
       args=st.tuples(ARG, ARG, ARG, ARG, ARG, ARG),
       allow_inet=st.booleans(), listen=st.booleans(), exec_guard=st.booleans(), notify=st.booleans())
def test_the_filter_is_the_rule(nr, args, allow_inet, listen, exec_guard, notify):
    program = _program(allow_inet, listen, exec_guard, notify)
    got = run_bpf(program, seccomp_data(nr, args))
    assert got == expected(nr, args, allow_inet=allow_inet, listen=listen, exec_guard=exec_guard, notify=notify), \
        (sc.NAMES.get(nr, nr), args)


_PROGRAMS: dict[tuple[bool, ...], bytes] = {}


def _program(*flags: bool) -> bytes:
    if flags not in _PROGRAMS:
        allow_inet, listen, exec_guard, notify = flags
        _PROGRAMS[flags] = sc.build(allow_inet=allow_inet, listen=listen, exec_guard=exec_guard, notify=notify)
    return _PROGRAMS[flags]


@given(arch=st.integers(min_value=0, max_value=2 ** 32 - 1), nr=st.integers(min_value=0, max_value=500))
def test_a_foreign_architecture_is_killed(arch, nr):
    got = run_bpf(_program(True, False, True, True), seccomp_data(nr, (0,) * 6, arch))
    assert got == (KILL if arch != sc.AUDIT_ARCH_X86_64 else got)


def test_examples_of_the_issue():
    p = _program(True, False, True, True)
    udp = seccomp_data(sc.X86_64_SOCKET, (sc.AF_INET, 2 | 0x80000, 0, 0, 0, 0))        # SOCK_DGRAM|CLOEXEC
    mptcp = seccomp_data(sc.X86_64_SOCKET, (sc.AF_INET, 1, 262, 0, 0, 0))
    tcp = seccomp_data(sc.X86_64_SOCKET, (sc.AF_INET6, 1 | 0x800, 0, 0, 0, 0))         # SOCK_STREAM|NONBLOCK
    tfo = seccomp_data(sc.X86_64_SENDTO, (3, 0, 10, sc.MSG_FASTOPEN, 0, 16))
    assert [run_bpf(p, d) for d in (udp, mptcp, tfo)] == [NOTIF] * 3
    assert run_bpf(p, tcp) == ALLOW


SOCK_FLAGS = st.sampled_from([0, 0x800, 0x80000, 0x80800])   # SOCK_NONBLOCK, SOCK_CLOEXEC


@settings(max_examples=400, deadline=None)
@given(family=st.one_of(st.sampled_from([sc.AF_INET, sc.AF_INET6, 1, 16, 17]), st.integers(0, 2 ** 32 - 1)),
       kind=st.one_of(st.sampled_from([1, 2, 3, 5, 10]), st.integers(0, 15)), flags=SOCK_FLAGS,
       proto=st.one_of(st.sampled_from([0, 6, 17, 132, 262, 255]), st.integers(0, 2 ** 32 - 1)),
       allow_inet=st.booleans(), notify=st.booleans())
def test_socket_creation_is_the_rule(family, kind, flags, proto, allow_inet, notify):
    args = (family, kind | flags, proto, 0, 0, 0)
    got = run_bpf(_program(allow_inet, False, False, notify), seccomp_data(sc.X86_64_SOCKET, args))
    assert got == expected(sc.X86_64_SOCKET, args, allow_inet=allow_inet, listen=False, exec_guard=False,
                           notify=notify)


@settings(max_examples=400, deadline=None)
@given(nr=st.sampled_from([sc.X86_64_SENDTO, sc.X86_64_SENDMSG, sc.X86_64_SENDMMSG, sc.X86_64_SETSOCKOPT]),
       level=st.sampled_from([0, 1, 6, 41, 262]), opt=st.sampled_from([1, 23, 30, 31, 0]),
       flags=st.one_of(st.sampled_from([0, 0x40, sc.MSG_FASTOPEN, sc.MSG_FASTOPEN | 0x4000]),
                       st.integers(0, 2 ** 32 - 1)))
def test_fast_open_in_every_door(nr, level, opt, flags):
    if nr == sc.X86_64_SETSOCKOPT:
        args = (3, level, opt, 0, 4, 0)
    elif nr == sc.X86_64_SENDMSG:
        args = (3, 0, flags, 0, 0, 0)
    else:
        args = (3, 0, 10, flags, 0, 16)
    got = run_bpf(_program(True, False, True, False), seccomp_data(nr, args))
    assert got == expected(nr, args, allow_inet=True, listen=False, exec_guard=True, notify=False)
