"""The host's MCP client over a child's stdio: handshake, requests with timeouts,
notifications, and strict handling of a misbehaving peer.

One reader thread per child parses its output. A protocol violation (garbage, an over-long
line, a response to an id never sent) poisons the connection: every pending call fails with
the reason, ``on_failure`` is called once (the loader kills and later restarts the child).

A child's ``promptline/ask`` request (its enforcer met an ASK) is handed to ``on_ask`` on the
reader thread, only while the host waits on a request of its own, at most
:data:`MAX_ASKS_PER_CALL` per request; anything else (no handler, no call in progress, an
over-long line, a handler failure or odd result) is answered DENY. Time the user spends on
a prompt does not count against the waiting request's timeout.
"""

from __future__ import annotations

import _thread
import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from . import _jsonrpc as rpc

PROTOCOL_VERSION = "2025-06-18"        # MCP revision offered in `initialize`
ACCEPTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
ABANDONED_IDS_KEPT = 1024              # ids of timed-out calls whose late answers are ignored
ASK_METHOD = "promptline/ask"          # the child's enforcer asks the host's prompter
CALL_TOOL_METHOD = "promptline/call_tool"   # the plugin calls a dependency's tool through the host
MAX_ASK_BYTES = 64 * 1024              # a longer `promptline/ask` line is answered deny unread
MAX_ASKS_PER_CALL = 16                 # asks answered per host request; the rest are denied
DENIED = {"answer": "deny", "verdict": "deny"}

log = logging.getLogger("promptline.process")


class CallTimeout(Exception):
    """A request got no answer in time."""


class _Pending:
    __slots__ = ("lock", "response", "error")

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()
        self.lock.acquire()
        self.response: rpc.Response | None = None
        self.error: BaseException | None = None


class MCPClient:
    """JSON-RPC client on two raw fds (the child's stdout to read, stdin to write)."""

    def __init__(self, read_fd: int, write_fd: int, *, name: str = "plugin",
                 on_notification: Callable[[str, Any], None] | None = None,
                 on_failure: Callable[[BaseException], None] | None = None,
                 on_ask: Callable[[Any], dict[str, Any]] | None = None,
                 on_call_tool: Callable[[Any], dict[str, Any]] | None = None) -> None:
        self.name = name
        self._on_call_tool = on_call_tool
        self._reader = rpc.LineReader(read_fd)
        self._writer = rpc.Writer(write_fd)
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._abandoned: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._on_notification = on_notification
        self._on_failure = on_failure
        self._on_ask = on_ask
        self._asks_left = MAX_ASKS_PER_CALL
        self._prompting = 0                    # asks being answered right now
        self._prompt_ended = 0.0               # monotonic time the last ask was answered
        self.failure: BaseException | None = None
        self.server_info: dict[str, Any] = {}
        self.server_capabilities: dict[str, Any] = {}
        self.protocol_version = ""
        self._thread = threading.Thread(target=self._run, name=f"promptline-mcp-{name}", daemon=True)
        self._thread.start()

    # -- calls ----------------------------------------------------------------------------

    def request(self, method: str, params: Any = None, *, timeout: float | None = 30.0) -> Any:
        """Send a request and wait for its result. Raises RpcError (an error response),
        CallTimeout, or ProtocolError/ClosedError (the connection is gone)."""
        if self.failure is not None:
            raise self.failure
        rid = next(self._ids)
        p = _Pending()
        start = time.monotonic()
        with self._lock:
            self._pending[rid] = p
            self._asks_left = MAX_ASKS_PER_CALL
        try:
            self._writer.send(rpc.Request(method, params, rid))
        except OSError as exc:
            with self._lock:
                self._pending.pop(rid, None)
            raise rpc.ClosedError(f"cannot write to the plugin: {exc.strerror or exc}") from None
        if not self._wait(p, start, timeout):
            with self._lock:
                if self._pending.pop(rid, None) is not None:
                    self._abandoned[rid] = None
                    while len(self._abandoned) > ABANDONED_IDS_KEPT:
                        self._abandoned.popitem(last=False)
                    timed_out = True
                else:
                    timed_out = False
            if timed_out:
                try:
                    self.notify("notifications/cancelled", {"requestId": rid, "reason": "timeout"})
                except (OSError, rpc.ProtocolError):
                    pass
                raise CallTimeout(f"`{method}` got no answer within {timeout:g} s")
            p.lock.acquire()
        if p.error is not None:
            raise p.error
        resp = p.response
        assert resp is not None
        if resp.error is not None:
            raise resp.error
        return resp.result

    def _wait(self, p: _Pending, start: float, timeout: float | None) -> bool:
        """Wait for ``p``; False on timeout. Prompt time is not counted: while the host's
        prompter answers an ask of this child the wait goes on, and after it the call gets
        its whole ``timeout`` again."""
        if timeout is None:
            return p.lock.acquire()
        timeout = max(timeout, 0.0)
        deadline = start + timeout
        while True:
            if p.lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
                return True
            now = time.monotonic()
            with self._lock:
                prompting, ended = self._prompting, self._prompt_ended
            if prompting:
                deadline = now + 0.25
            elif ended > start and ended + timeout > now:
                deadline = ended + timeout
            else:
                return False

    def notify(self, method: str, params: Any = None) -> None:
        self._writer.send(rpc.Notification(method, params))

    def initialize(self, *, client_version: str, timeout: float) -> dict[str, Any]:
        """The MCP handshake; returns the server's `initialize` result."""
        result = self.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "promptline", "version": client_version}}, timeout=timeout)
        if not isinstance(result, dict) or not isinstance(result.get("protocolVersion"), str) \
                or not isinstance(result.get("capabilities", {}), dict):
            raise rpc.ProtocolError("`initialize` answered without `protocolVersion` and `capabilities`")
        if result["protocolVersion"] not in ACCEPTED_VERSIONS:
            raise rpc.ProtocolError(f"the plugin speaks MCP `{result['protocolVersion'][:40]}`, "
                                    f"expected one of {', '.join(ACCEPTED_VERSIONS)}")
        self.protocol_version = result["protocolVersion"]
        self.server_capabilities = result.get("capabilities") or {}
        info = result.get("serverInfo")
        self.server_info = info if isinstance(info, dict) else {}
        self.notify("notifications/initialized")
        return result

    def close(self) -> None:
        self._fail(rpc.ClosedError("the connection was closed by the host"), notify=False)

    # -- reader ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                line = self._reader.next_line()
                msg = rpc.parse(line)
                if type(msg) is rpc.Response:
                    self._deliver(msg)
                elif type(msg) is rpc.Notification:
                    self._notification(msg)
                else:
                    self._answer(msg, len(line))
        except rpc.ProtocolError as exc:
            self._fail(exc)
        except OSError as exc:
            self._fail(rpc.ClosedError(f"reading from the plugin failed: {exc.strerror or exc}"))
        except Exception as exc:  # noqa: BLE001 - never let the reader die silently
            self._fail(rpc.ProtocolError(f"unexpected error reading the plugin: {exc}"))

    def _deliver(self, msg: rpc.Response) -> None:
        with self._lock:
            p = self._pending.pop(msg.id, None) if isinstance(msg.id, int) else None
            if p is None:
                if isinstance(msg.id, int) and self._abandoned.pop(msg.id, 0) is None:
                    return   # a late answer to a call that timed out
                raise rpc.ProtocolError(f"response to unknown request id `{rpc._short(repr(msg.id))}`")
        p.response = msg
        p.lock.release()

    def _notification(self, msg: rpc.Notification) -> None:
        cb = self._on_notification
        if cb is not None:
            try:
                cb(msg.method, msg.params)
            except Exception:  # noqa: BLE001 - a bad notification never kills the reader
                log.exception("plugin `%s`: handling notification `%s` failed", self.name, msg.method)

    def _answer(self, msg: rpc.Request, size: int = 0) -> None:
        if msg.method == ASK_METHOD:
            self._writer.send(rpc.Response(msg.id, self._ask(msg.params, size)))
        elif msg.method == CALL_TOOL_METHOD:
            self._writer.send(rpc.Response(msg.id, self._call_tool(msg.params, size)))
        elif msg.method == "ping":
            self._writer.send(rpc.Response(msg.id, {}))
        elif msg.method == "roots/list":
            self._writer.send(rpc.Response(msg.id, {"roots": []}))
        else:
            self._writer.send(rpc.Response(msg.id, None, rpc.RpcError(
                rpc.METHOD_NOT_FOUND, f"the host does not offer `{msg.method[:80]}`")))

    def _ask(self, params: Any, size: int) -> dict[str, Any]:
        """The host's answer to one ``promptline/ask``: DENIED unless ``on_ask`` gave one."""
        handler = self._on_ask
        if handler is None or size > MAX_ASK_BYTES:
            return DENIED
        with self._lock:
            if not self._pending:
                return DENIED   # asks only while the host waits on this plugin
            if self._asks_left <= 0:
                if self._asks_left == 0:
                    log.warning("plugin `%s`: more than %d asks during one call; denying the rest",
                                self.name, MAX_ASKS_PER_CALL)
                    self._asks_left -= 1
                return DENIED
            self._asks_left -= 1
            self._prompting += 1
        try:
            result = handler(params)
        except Exception:  # noqa: BLE001 - a failed ask is a refusal, never a dead reader
            log.exception("plugin `%s`: answering an ask failed", self.name)
            result = DENIED
        finally:
            with self._lock:
                self._prompting -= 1
                self._prompt_ended = time.monotonic()
        if type(result) is not dict or result.get("answer") not in ("once", "always", "deny", "never"):
            return DENIED
        return result

    def _call_tool(self, params: Any, size: int) -> dict[str, Any]:
        """The host's answer to one ``promptline/call_tool`` (a dependency's tool), only while
        the host waits on this plugin; the time it takes does not count against that wait."""
        refused = {"ok": False, "content": "the host refused the call",
                   "error": {"message": "the host refused the call", "kind": "denied"}}
        handler = self._on_call_tool
        if handler is None or size > MAX_ASK_BYTES:
            return refused
        with self._lock:
            if not self._pending:
                return refused
            self._prompting += 1
        try:
            result = handler(params)
        except Exception:  # noqa: BLE001 - a failed call is an error result, never a dead reader
            log.exception("plugin `%s`: a call through the host failed", self.name)
            result = refused
        finally:
            with self._lock:
                self._prompting -= 1
                self._prompt_ended = time.monotonic()
        return result if type(result) is dict else refused

    def _fail(self, exc: BaseException, notify: bool = True) -> None:
        with self._lock:
            if self.failure is not None:
                return
            self.failure = exc
            pending, self._pending = self._pending, {}
        for p in pending.values():
            p.error = exc
            p.lock.release()
        if notify and self._on_failure is not None:
            try:
                self._on_failure(exc)
            except Exception:  # noqa: BLE001
                log.exception("plugin `%s`: failure handler raised", self.name)
