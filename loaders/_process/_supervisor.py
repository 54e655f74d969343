"""The host's answer to a child's seccomp user notifications (the listener from ``_seccomp``).

Two kinds of syscalls reach here:

- ``execve``/``execveat`` when the plugin has no ``process`` grant: the first one is the
  shim's own exec of the plugin (the shim is single-threaded and no plugin code exists
  yet), let through with SECCOMP_USER_NOTIF_FLAG_CONTINUE; every later one is refused with
  EACCES. Counting needs no look at the syscall's (racy) pointer arguments.
- network syscalls the filter refuses (a UDP or raw socket, MPTCP, TCP Fast Open, ``listen``
  without a bind grant, a socket without a network grant): refused with EPERM.

Every refusal is recorded through ``record`` naming the plugin (at most
:data:`MAX_RECORDS_PER_S` a second; the rest are counted). When the host goes away the
listener closes and the kernel fails the pending and later calls (ENOSYS): closed, not open.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Callable

from ._seccomp import NAMES, X86_64_EXECVE, X86_64_EXECVEAT

log = logging.getLogger("promptline.process")

NOTIF_SIZE, RESP_SIZE = 80, 24
IOCTL_NOTIF_RECV = 0xC0502100          # _IOWR('!', 0, struct seccomp_notif)
IOCTL_NOTIF_SEND = 0xC0182101          # _IOWR('!', 1, struct seccomp_notif_resp)
FLAG_CONTINUE = 1
MAX_RECORDS_PER_S = 50

Record = Callable[[str, str, str], None]   # (action, resource, reason)


def _describe(nr: int, args: tuple[int, ...], pid: int) -> tuple[str, str]:
    """(action, resource) of a refused syscall, for the audit record."""
    name = NAMES.get(nr, f"syscall {nr}")
    if nr in (X86_64_EXECVE, X86_64_EXECVEAT):
        return "process.exec", _read_string(pid, args[0] if nr == X86_64_EXECVE else args[1]) or name
    if name == "socket":
        return "net.connect", f"socket(family={args[0]}, type={args[1] & 0xF}, protocol={args[2]})"
    return "net.connect", name


def _read_string(pid: int, addr: int) -> str:
    """Best effort, for the record only (never for the decision): a C string of the child."""
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError:
        return ""
    try:
        data = os.pread(fd, 4096, addr)
    except OSError:
        return ""
    finally:
        os.close(fd)
    return data.split(b"\0", 1)[0].decode("utf-8", "replace")


class Supervisor:
    """Answers one listener fd in a daemon thread until the child is gone."""

    def __init__(self, plugin_id: str, fd: int, *, record: Record, exec_once: bool) -> None:
        self.plugin_id = plugin_id
        self._fd = fd
        self._record = record
        self._exec_left = 1 if exec_once else 0
        self._budget = [MAX_RECORDS_PER_S, time.monotonic()]
        self.refused = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"promptline-seccomp-{plugin_id}")
        self._thread.start()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        try:
            while True:
                events = poller.poll()
                if any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in events):
                    return
                buf = bytearray(NOTIF_SIZE)
                try:
                    fcntl.ioctl(self._fd, IOCTL_NOTIF_RECV, buf, True)
                except OSError as exc:
                    if exc.errno in (errno.EINTR, errno.ENOENT):
                        continue   # the caller died or was interrupted before we read it
                    return
                nid, pid, _flags, nr, _arch, _ip, *args = struct.unpack("=QIIiIQ6Q", bytes(buf))
                if nr in (X86_64_EXECVE, X86_64_EXECVEAT) and self._exec_left > 0:
                    self._exec_left -= 1
                    self._send(nid, 0, FLAG_CONTINUE)
                    continue
                err = errno.EACCES if nr in (X86_64_EXECVE, X86_64_EXECVEAT) else errno.EPERM
                action, resource = _describe(nr, tuple(args), pid)
                self.refused += 1
                self._note(action, resource, NAMES.get(nr, str(nr)))   # on record before the call returns
                self._send(nid, -err, 0)
        finally:
            os.close(self._fd)

    def _send(self, nid: int, error: int, flags: int) -> None:
        try:
            fcntl.ioctl(self._fd, IOCTL_NOTIF_SEND, bytearray(struct.pack("=QqiI", nid, 0, error, flags)), True)
        except OSError:
            pass   # the caller is gone

    def _note(self, action: str, resource: str, syscall: str) -> None:
        budget, now = self._budget, time.monotonic()
        if now - budget[1] >= 1.0:
            if budget[0] < 0:
                log.warning("plugin `%s`: %d more seccomp refusals were not recorded", self.plugin_id, -budget[0])
            budget[0], budget[1] = MAX_RECORDS_PER_S, now
        budget[0] -= 1
        if budget[0] < 0:
            return
        try:
            self._record(action, resource[:4096], f"refused by the sandbox's seccomp filter ({syscall})")
        except Exception as exc:  # noqa: BLE001 - never take the host down
            log.error("plugin `%s`: could not record a seccomp refusal: %s", self.plugin_id, exc)
