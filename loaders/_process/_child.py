"""One plugin's child process and its MCP connection: start, call, restart, stop.

Failures never raise out as anything but LoaderError (cannot start) or ToolError (a call
failed: kind ``unavailable`` or ``timeout``); the child is killed with its whole process
group and started again on the next call, after a backoff that grows with each crash.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from .._errors import LoaderError, ToolError
from .._loader import START_TIMEOUT
from . import _jsonrpc as rpc
from ._client import CallTimeout, MCPClient
from ._launch import SandboxSpec, release, spawn
from ._spec import host_version

STOP_GRACE = 2.0                # seconds between closing stdin, SIGTERM and SIGKILL
RESTART_BACKOFF = (0.0, 0.5, 2.0, 5.0, 15.0, 30.0)   # delay before restart n (after n crashes)
START_BACKOFF = (2.0, 5.0, 15.0, 30.0, 60.0)        # the same after n failed starts (hang, crash on import)
STDERR_TAIL_LINES = 20          # last stderr lines kept for error messages
MAX_STDERR_LINE = 2000          # characters of one stderr line kept or logged
log = logging.getLogger("promptline.process")


class Child:
    """The child of one plugin. Thread-safe.

    ``on_started(client)`` runs after ``initialize`` (the MCP surface lists tools there; a
    protocol error it raises means the child did not start). ``on_notification`` and
    ``on_ask`` receive what the child sends on its own.
    """

    def __init__(self, plugin_id: str, spec: SandboxSpec, *, on_started: Callable[[MCPClient], None],
                 on_notification: Callable[[str, Any], None],
                 on_ask: Callable[[Any], dict[str, Any]] | None = None, stderr_log: str | None = None,
                 make_wall: Callable[[], Any] | None = None,
                 on_call_tool: Callable[[Any], dict[str, Any]] | None = None) -> None:
        self._on_call_tool = on_call_tool
        self.id = plugin_id
        self.spec = spec
        self.lock = threading.RLock()
        self.pid: int | None = None
        self.starts = 0
        self.crashes = 0
        self._on_started = on_started
        self._on_notification = on_notification
        self._on_ask = on_ask
        self._proc: subprocess.Popen | None = None
        self._make_wall = make_wall   # the egress proxy and seccomp supervisor of each start
        self.wall: Any = None
        self._client: MCPClient | None = None
        self._next_start = 0.0
        self.start_deadline = 0.0     # monotonic end of the start under way (its answers' budget)
        self._last_error = ""
        self._closed = False
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_log = open(stderr_log, "a", encoding="utf-8", errors="replace") if stderr_log else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def client(self) -> MCPClient | None:
        return self._client

    def ensure_started(self, timeout: float | None = None) -> MCPClient:
        """Start the child if it is not running (raises LoaderError when it cannot). The start
        (``initialize`` and the first listing) gets ``timeout`` seconds, at most
        ``START_TIMEOUT``; a start that fails is not tried again before a backoff
        (``START_BACKOFF``): calls meanwhile fail at once, saying when it will be retried."""
        with self.lock:
            if self._closed:
                raise LoaderError("the plugin was shut down", plugin=self.id)
            client = self._client
            if client is not None and client.failure is None and self.running:
                return client
            if client is not None or self._proc is not None:
                self.stop()
            now = time.monotonic()
            if now < self._next_start:
                raise LoaderError(f"the plugin process failed {self.crashes} time(s) "
                                  f"({self._last_error}); next restart in {self._next_start - now:.1f} s",
                                  plugin=self.id)
            budget = START_TIMEOUT if timeout is None else max(0.05, min(START_TIMEOUT, timeout))
            self.start_deadline = now + budget
            try:
                return self._start(budget)
            except LoaderError as exc:
                self._crashed(exc.message, starting=True)
                raise

    def start_left(self) -> float:
        """Seconds left of the start under way (for the requests made while starting)."""
        return max(0.05, self.start_deadline - time.monotonic())

    def call(self, method: str, params: Any, timeout: float) -> Any:
        """One request; raises ToolError (kind unavailable/timeout) on any failure and
        passes the child's own error answers through as RpcError."""
        begin = time.monotonic()
        try:
            client = self.ensure_started(timeout)
        except LoaderError as exc:
            raise ToolError(exc.message, kind="unavailable", retryable=True) from None
        proc = self._proc
        left = max(0.05, timeout - (time.monotonic() - begin))   # a start came out of this call's time
        try:
            result = client.request(method, params, timeout=left)
        except CallTimeout:
            with self.lock:
                if self._client is client:
                    self.stop()
            raise ToolError(f"the plugin did not answer within {timeout:g} s; its process was restarted",
                            kind="timeout", retryable=True) from None
        except rpc.RpcError:
            raise
        except rpc.ProtocolError as exc:
            reason = self._exit_reason(proc, exc) if proc is not None else str(exc)
            with self.lock:
                if self._client is client:
                    self.stop()
                    self._crashed(reason)
            raise ToolError(f"the plugin process failed: {reason}", kind="unavailable", retryable=True) from None
        if self.crashes:
            self.crashes = 0
        return result

    def _start(self, budget: float) -> MCPClient:
        self._stderr_tail.clear()
        wall = self._make_wall() if self._make_wall is not None else None
        try:
            proc = spawn(self.spec, None if wall is None else wall.child_fd)
        except OSError as exc:
            if wall is not None:
                wall.close()
                os.close(wall.child_fd)
            raise LoaderError(f"cannot start the plugin process: {exc.strerror or exc}", plugin=self.id) from None
        if wall is not None:
            if getattr(proc, "forked", False):
                wall.starter_execs = False   # no exec of its own to let through
            wall.started()
        self.wall = wall
        self._proc = proc
        self.pid = proc.pid
        self.starts += 1
        threading.Thread(target=self._pump_stderr, args=(proc,), daemon=True,
                         name=f"promptline-stderr-{self.id}").start()
        client = MCPClient(proc.stdout.fileno(), proc.stdin.fileno(), name=self.id,
                           on_notification=self._on_notification,
                           on_failure=lambda exc, p=proc: self._on_failure(p, exc),
                           on_ask=self._on_ask, on_call_tool=self._on_call_tool)
        self._client = client
        try:
            client.initialize(client_version=host_version(), timeout=budget)
            self._on_started(client)
        except (rpc.ProtocolError, rpc.RpcError, CallTimeout) as exc:
            reason = (f"it did not answer `initialize` within {budget:g} s (hanging on import or in "
                      "initialize?)" if isinstance(exc, CallTimeout) else self._exit_reason(proc, exc))
            self.stop()
            raise LoaderError(f"the plugin process did not start: {reason}", plugin=self.id,
                              fix="see the plugin's stderr log") from None
        return client

    def _pump_stderr(self, proc: subprocess.Popen) -> None:
        plog = logging.getLogger(f"promptline.plugin.{self.id}")
        stream = proc.stderr
        buf = b""
        try:
            while True:
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                if len(buf) > MAX_STDERR_LINE * 4:
                    lines.append(buf)
                    buf = b""
                for raw in lines:
                    self._stderr_line(plog, raw)
        except (OSError, ValueError):
            pass
        if buf:
            self._stderr_line(plog, buf)

    def _stderr_line(self, plog: logging.Logger, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace")[:MAX_STDERR_LINE]
        text = "".join(c if c.isprintable() or c == "\t" else "?" for c in text)
        if not text.strip():
            return
        self._stderr_tail.append(text)
        plog.debug("%s", text)
        if self._stderr_log is not None:
            try:
                self._stderr_log.write(text + "\n")
                self._stderr_log.flush()
            except (OSError, ValueError):
                pass

    def _exit_reason(self, proc: subprocess.Popen, exc: BaseException | None = None) -> str:
        if isinstance(exc, rpc.ProtocolError) and not isinstance(exc, rpc.ClosedError):
            return f"protocol violation: {exc}; the process was stopped"
        try:
            code = proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            code = None
        time.sleep(0.02)   # let the stderr pump catch the last line
        tail = [line for line in self._stderr_tail if line.startswith(("promptline-sandbox:", "promptline-bootstrap:"))]
        tail = tail or list(self._stderr_tail)[-1:]
        if code is None:
            what = str(exc) if exc is not None else "it stopped answering"
        elif code < 0:
            try:
                what = f"it was killed by {signal.Signals(-code).name}"
            except ValueError:
                what = f"it was killed by signal {-code}"
        else:
            what = f"it exited with code {code}"
            if exc is not None and not isinstance(exc, rpc.ClosedError):
                what = f"{exc}; {what}"
        if tail:
            what += f": {tail[-1][:300]}"
        return what

    def _on_failure(self, proc: subprocess.Popen, exc: BaseException) -> None:
        """Called from the reader thread: the connection is gone or poisoned."""
        if self._closed:
            return
        if not isinstance(exc, rpc.ClosedError):
            log.warning("plugin `%s`: protocol violation: %s; stopping it", self.id, exc)
            _kill_group(proc, signal.SIGKILL)

    def _crashed(self, reason: str, starting: bool = False) -> None:
        self.crashes += 1
        self._last_error = reason
        steps = START_BACKOFF if starting else RESTART_BACKOFF
        delay = steps[min(self.crashes - 1, len(steps) - 1)]
        self._next_start = time.monotonic() + delay
        log.warning("plugin `%s`: %s (failure %d; restart allowed in %.1f s)", self.id, reason, self.crashes, delay)

    def stop(self, grace: float = 0.0) -> None:
        """Stop and reap the child (and its process group); idempotent."""
        proc, client, wall = self._proc, self._client, self.wall
        self._proc = self._client = self.wall = None
        if client is not None:
            client.close()
        if wall is not None:
            wall.close()
        if proc is None:
            return
        try:
            if grace > 0 and proc.poll() is None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    _kill_group(proc, signal.SIGTERM)
                    try:
                        proc.wait(timeout=grace)
                    except subprocess.TimeoutExpired:
                        pass
            _kill_group(proc, signal.SIGKILL)   # grandchildren too, even after a clean exit
            proc.wait()
            _wait_group_gone(proc.pid)
            release(proc)
        finally:
            for s in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    if s is not None:
                        s.close()
                except OSError:
                    pass

    def close(self) -> None:
        """Stop for good (gracefully); later calls fail as unavailable."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            self.stop(grace=STOP_GRACE)
            if self._stderr_log is not None:
                self._stderr_log.close()


GROUP_EXIT_WAIT = 1.0   # seconds stop() waits for the rest of a killed group (the namespace's init, the plugin)


def _wait_group_gone(pgid: int, timeout: float = GROUP_EXIT_WAIT) -> None:
    """Wait until no live process is left in process group ``pgid`` (zombies left to a
    non-reaping init do not count): the child's PID namespace ends a moment after its outer
    process, which is all ``wait()`` saw."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = False
        try:
            names = os.listdir("/proc")
        except OSError:
            return
        for name in names:
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != b"Z":
                live = True
                break
        if not live:
            return
        time.sleep(0.005)


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except (ProcessLookupError, OSError):
            pass
