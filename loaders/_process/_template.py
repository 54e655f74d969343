"""The host's side of the template process (:mod:`._zygote`): start it once, fork plugins from it.

A Python plugin's child normally costs an interpreter start and every import of the
bootstrap (jsonschema, the policy compiler and its CEL parser, the enforcer): most of its
start time and memory. The template pays that once; each plugin is a fork of it that puts
up its walls after the fork (the shim's own code), so it starts in a fraction of the time
and shares the template's pages instead of holding its own copy.

:func:`spawn` returns a :class:`ForkedProcess` (what the child supervisor uses of a
``subprocess.Popen``), or None when no template can run here — the caller then starts the
child the ordinary way (shim, exec). The template is the plugin's parent: it reports each
exit code over the control socket; if the template dies, its plugins are killed.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_zygote.py")
READY_TIMEOUT = 30.0    # seconds for the template to import and warm everything
REPLY_TIMEOUT = 10.0    # seconds for the template to answer one fork
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
log = logging.getLogger("promptline.process")


class ForkedProcess:
    """A plugin child forked by the template: ``pid``, the host ends of its stdio
    (unbuffered, as ``Popen(bufsize=0)``), ``poll``/``wait``/``send_signal``/``kill``."""

    forked = True

    def __init__(self, pid: int, stdin: io.FileIO, stdout: io.FileIO, stderr: io.FileIO) -> None:
        self.pid = pid
        self.args = [ZYGOTE]
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.returncode: int | None = None
        self._exited = threading.Event()
        self._code = 0

    def _exit(self, code: int) -> None:
        self._code = code
        self._exited.set()

    def poll(self) -> int | None:
        if self._exited.is_set():
            self.returncode = self._code
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        self.returncode = self._code
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class Template:
    """One running template process and its control socket (thread-safe)."""

    def __init__(self, sys_path: Sequence[str]) -> None:
        host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-B", ZYGOTE, str(child.fileno()), json.dumps(list(sys_path))],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(ENV),
                cwd="/", close_fds=True, start_new_session=True, pass_fds=(child.fileno(),))
        finally:
            child.close()
        self._sock = host
        self._lock = threading.Lock()
        self._children: dict[int, ForkedProcess] = {}
        self._replies: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self.alive = True
        host.settimeout(READY_TIMEOUT)
        try:
            ready = host.recv(16)
        except OSError:
            ready = b""
        host.settimeout(None)
        self._stderr: io.BufferedReader = self._proc.stderr   # type: ignore[assignment]
        if ready != b"R":
            err = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            self.close()
            raise OSError(f"the template process did not start: {(err or ['no output'])[-1][:300]}")
        threading.Thread(target=self._read, daemon=True, name="promptline-template").start()
        threading.Thread(target=self._pump_stderr, daemon=True, name="promptline-template-stderr").start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def spawn(self, spec: Mapping[str, Any], channel: int | None, pid_namespace: bool = False) -> ForkedProcess:
        """Fork one child with ``spec`` (shim spec, argv, env, cwd); raises OSError.
        ``pid_namespace``: the child will make network and PID namespaces; as root the
        template forks it into the new PID namespace (it becomes the plugin's init)."""
        pipes = [os.pipe() for _ in range(4)]   # stdin, stdout, stderr, the spec
        theirs = [pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][0]]
        ours = [pipes[0][1], pipes[1][0], pipes[2][0], pipes[3][1]]
        try:
            with self._lock:
                if not self.alive:
                    raise OSError("the template process is gone")
                socket.send_fds(self._sock, [b"P" if pid_namespace else b"F"],
                                theirs + ([channel] if channel is not None else []))
                reply = self._reply()
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        if "pid" not in reply:
            for fd in ours:
                os.close(fd)
            raise OSError(reply.get("error") or "the template process refused to fork")
        proc = self._children[reply["pid"]]
        proc.stdin = io.FileIO(ours[0], "wb")
        proc.stdout = io.FileIO(ours[1], "rb")
        proc.stderr = io.FileIO(ours[2], "rb")
        try:
            with io.FileIO(ours[3], "wb") as fh:
                fh.write(json.dumps(spec, separators=(",", ":")).encode())
        except OSError:
            pass   # it died before reading: its exit code and stderr say why
        return proc

    def _reply(self) -> dict[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: self._replies or not self.alive, REPLY_TIMEOUT):
                raise OSError("the template process did not answer a fork")
            if not self._replies:
                raise OSError("the template process is gone")
            return self._replies.pop(0)

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                break
            try:
                msg = json.loads(data)
            except ValueError:
                continue
            if "exit" in msg:
                proc = self._children.pop(msg["exit"], None)
                if proc is not None:
                    proc._exit(int(msg["code"]))
                continue
            if "pid" in msg:   # registered before the spawner sees it: its exit cannot come first
                self._children[msg["pid"]] = ForkedProcess(msg["pid"], None, None, None)  # type: ignore[arg-type]
            with self._cond:
                self._replies.append(msg)
                self._cond.notify_all()
        self._gone()

    def _gone(self) -> None:
        """The template died (or was closed): its children are killed, their codes -SIGKILL."""
        with self._cond:
            self.alive = False
            self._cond.notify_all()
        for pid, proc in list(self._children.items()):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            proc._exit(-signal.SIGKILL)
        self._children.clear()

    def _pump_stderr(self) -> None:
        for line in self._stderr:
            log.warning("template process: %s", line.decode("utf-8", "replace").rstrip()[:2000])

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


_lock = threading.Lock()
_templates: dict[tuple[str, ...], Template] = {}
_broken: dict[tuple[str, ...], str] = {}
_owner = [os.getpid()]   # a forked host starts templates of its own


def spawn(spec: Mapping[str, Any], channel: int | None, sys_path: Sequence[str]) -> ForkedProcess | None:
    """Fork a child from the template for ``sys_path`` (started on first use), or None when
    no template can run here (the reason is logged once; the caller execs instead)."""
    key = tuple(sys_path)
    with _lock:
        if _owner[0] != os.getpid():
            _owner[0] = os.getpid()
            _templates.clear()
            _broken.clear()
        if key in _broken:
            return None
        t = _templates.get(key)
        if t is None or not t.alive:
            try:
                t = _templates[key] = Template(sys_path)
            except OSError as exc:
                _broken[key] = str(exc)
                log.warning("process plugins start without the template process: %s", exc)
                return None
    return t.spawn(spec, channel, pid_namespace=(spec.get("shim") or {}).get("netns") == "new")


def shutdown() -> None:
    """Stop every template process (their running plugins are killed)."""
    with _lock:
        ts = list(_templates.values())
        _templates.clear()
    for t in ts:
        t.close()
