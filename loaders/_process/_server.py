"""The server side of MCP over newline-delimited JSON-RPC: used by the child bootstrap (one
plugin) and by ``promptline run --mcp`` (every loaded plugin's tools).

A :class:`MCPBackend` answers the methods; :func:`serve_mcp_loop` runs the loop until the input closes.
Requests are answered in order; a malformed line gets a JSON-RPC error (id null) and the loop
goes on — the client is trusted less than the server, never the other way round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import _jsonrpc as rpc

SERVER_VERSIONS = ("2025-06-18", "2025-03-26", "2024-11-05", "2025-11-25")   # first is preferred
MAX_CONTENT_ITEMS = 1000

log = logging.getLogger("promptline.process")


def tool_result_to_mcp(result: Any) -> dict[str, Any]:
    """A ToolResult as an MCP ``tools/call`` result; PromptLine extras ride in ``_meta``."""
    out: dict[str, Any] = {"content": [{"type": "text", "text": result.content}], "isError": not result.ok}
    meta: dict[str, Any] = {}
    if result.data is not None:
        meta["promptline/data"] = result.data
        if isinstance(result.data, dict):
            out["structuredContent"] = result.data
    if result.error is not None:
        meta["promptline/error"] = result.error.to_dict()
    if meta:
        out["_meta"] = meta
    return out


class MCPBackend:
    """Override what the server offers. Methods raise RpcError for client mistakes."""

    name = "promptline"
    version = "0"
    instructions = ""

    def capabilities(self) -> dict[str, Any]:
        return {"tools": {"listChanged": False}}

    def list_tools(self) -> list[dict[str, Any]]:
        return []

    def call_tool(self, name: str, arguments: Any) -> dict[str, Any]:
        raise rpc.RpcError(rpc.INVALID_PARAMS, f"unknown tool `{name[:80]}`")

    def list_prompts(self) -> list[dict[str, Any]]:
        return []

    def get_prompt(self, name: str, arguments: dict[str, str]) -> dict[str, Any]:
        raise rpc.RpcError(rpc.INVALID_PARAMS, f"unknown prompt `{name[:80]}`")

    def list_resources(self) -> list[dict[str, Any]]:
        return []

    def list_resource_templates(self) -> list[dict[str, Any]]:
        return []

    def read_resource(self, uri: str) -> dict[str, Any]:
        raise rpc.RpcError(-32002, f"unknown resource `{uri[:200]}`")

    def extra(self, method: str, params: Any) -> Any:
        raise rpc.RpcError(rpc.METHOD_NOT_FOUND, f"unknown method `{method[:80]}`")

    def notification(self, method: str, params: Any) -> None:
        pass


def _params(msg: rpc.Request) -> dict[str, Any]:
    if msg.params is None:
        return {}
    if not isinstance(msg.params, dict):
        raise rpc.RpcError(rpc.INVALID_PARAMS, f"`{msg.method}` takes an object of parameters")
    return msg.params


def _str(params: dict, key: str) -> str:
    v = params.get(key)
    if not isinstance(v, str) or not v:
        raise rpc.RpcError(rpc.INVALID_PARAMS, f"`{key}` must be a non-empty string")
    return v


def dispatch(backend: MCPBackend, msg: rpc.Request) -> Any:
    """The result of one request (raises RpcError)."""
    m = msg.method
    p = _params(msg)
    if m == "initialize":
        wanted = p.get("protocolVersion")
        version = wanted if wanted in SERVER_VERSIONS else SERVER_VERSIONS[0]
        out = {"protocolVersion": version, "capabilities": backend.capabilities(),
               "serverInfo": {"name": backend.name, "version": backend.version}}
        if backend.instructions:
            out["instructions"] = backend.instructions
        return out
    if m == "ping":
        return {}
    if m == "tools/list":
        return {"tools": backend.list_tools()}
    if m == "tools/call":
        args = p.get("arguments", {})
        return backend.call_tool(_str(p, "name"), {} if args is None else args)
    if m == "prompts/list":
        return {"prompts": backend.list_prompts()}
    if m == "prompts/get":
        args = p.get("arguments") or {}
        if not isinstance(args, dict) or not all(isinstance(v, str) for v in args.values()):
            raise rpc.RpcError(rpc.INVALID_PARAMS, "prompt `arguments` must map names to strings")
        return backend.get_prompt(_str(p, "name"), args)
    if m == "resources/list":
        return {"resources": backend.list_resources()}
    if m == "resources/read":
        return backend.read_resource(_str(p, "uri"))
    if m == "resources/templates/list":
        return {"resourceTemplates": backend.list_resource_templates()}
    if m == "logging/setLevel":
        return {}
    return backend.extra(m, p)


def _requests(backend: MCPBackend, next_line: Callable[[], bytes],
              send: Callable[[bytes], None]) -> Iterator[rpc.Request]:
    """The requests on the input, until it closes. Unparsable lines are answered with a
    parse error (an over-long line ends the stream), notifications go to the backend, stray
    responses are dropped (we send no requests)."""
    while True:
        try:
            line = next_line()
        except rpc.ClosedError:
            return
        except rpc.ProtocolError as exc:   # an over-long line: say so, the stream is lost
            send(rpc.encode(rpc.Response(None, None, rpc.RpcError(rpc.PARSE_ERROR, str(exc)))))
            return
        try:
            msg = rpc.parse(line)
        except rpc.ProtocolError as exc:
            send(rpc.encode(rpc.Response(None, None, rpc.RpcError(rpc.PARSE_ERROR, str(exc)))))
            continue
        if type(msg) is rpc.Notification:
            try:
                backend.notification(msg.method, msg.params)
            except Exception:  # noqa: BLE001
                log.exception("notification `%s` failed", msg.method)
            continue
        if type(msg) is rpc.Request:
            yield msg


def serve_mcp_loop(backend: MCPBackend, next_line: Callable[[], bytes], send: Callable[[bytes], None]) -> None:
    """Answer requests until the input closes."""
    for msg in _requests(backend, next_line, send):
        try:
            reply = rpc.Response(msg.id, dispatch(backend, msg))
            data = rpc.encode(reply)
        except rpc.RpcError as exc:
            data = rpc.encode(rpc.Response(msg.id, None, exc))
        except Exception as exc:  # noqa: BLE001 - a backend bug is an internal error, not a crash
            log.exception("`%s` failed", msg.method)
            data = rpc.encode(rpc.Response(msg.id, None, rpc.RpcError(
                rpc.INTERNAL_ERROR, f"`{msg.method}` failed: {type(exc).__name__}")))
        send(data)


def serve_mcp_concurrent(backend: MCPBackend, next_line: Callable[[], bytes], send: Callable[[bytes], None], *,
                         workers: int = 8, max_inflight: int = 64,
                         deadline: Callable[[str], float] = lambda method: 60.0) -> None:
    """:func:`serve_mcp_loop`, but requests are answered concurrently (a slow tool does not
    hold up a listing) with per-request limits: at most ``max_inflight`` requests at once
    (more are refused with a JSON-RPC error), and each gets an answer within
    ``deadline(method)`` seconds — an error if its work is still running then (the late
    result is dropped). ``initialize`` is answered in order, before anything after it."""
    import concurrent.futures

    send_lock = threading.Lock()
    slots = threading.BoundedSemaphore(max_inflight)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mcp-request")

    def reply(data: bytes) -> None:
        with send_lock:
            send(data)

    def answer(msg: rpc.Request) -> bytes:
        try:
            return rpc.encode(rpc.Response(msg.id, dispatch(backend, msg)))
        except rpc.RpcError as exc:
            return rpc.encode(rpc.Response(msg.id, None, exc))
        except Exception as exc:  # noqa: BLE001 - a backend bug is an internal error, not a crash
            log.exception("`%s` failed", msg.method)
            return rpc.encode(rpc.Response(msg.id, None, rpc.RpcError(
                rpc.INTERNAL_ERROR, f"`{msg.method}` failed: {type(exc).__name__}")))

    def start(msg: rpc.Request) -> None:
        claimed = threading.Lock()       # whoever takes it first answers: the work or the timer
        limit = deadline(msg.method)

        def finish(data: bytes) -> None:
            if claimed.acquire(blocking=False):
                timer.cancel()
                reply(data)

        def work() -> None:
            try:
                data = answer(msg)
            finally:
                slots.release()     # its work is done: the slot is free before the answer is out
            finish(data)

        def too_late() -> None:
            finish(rpc.encode(rpc.Response(msg.id, None, rpc.RpcError(
                rpc.INTERNAL_ERROR, f"`{msg.method[:80]}` did not finish within {limit:g} s"))))

        timer = threading.Timer(limit, too_late)
        timer.daemon = True
        timer.start()
        pool.submit(work)

    try:
        for msg in _requests(backend, next_line, reply):
            if msg.method in ("initialize", "ping"):
                reply(answer(msg))
                continue
            if not slots.acquire(blocking=False):
                reply(rpc.encode(rpc.Response(msg.id, None, rpc.RpcError(
                    rpc.INTERNAL_ERROR, f"too many requests in flight (at most {max_inflight}); retry later"))))
                continue
            start(msg)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def stream_io(stdin: Any, stdout: Any) -> tuple[Callable[[], bytes], Callable[[bytes], None]]:
    """Line reader and writer over file objects (text or binary), for hosts that hand
    streams rather than fds. Lines are bounded like the fd reader's."""
    def next_line() -> bytes:
        while True:
            line = stdin.readline(rpc.MAX_MESSAGE_BYTES + 1)
            if not line:
                raise rpc.ClosedError("stream closed")
            if isinstance(line, str):
                line = line.encode("utf-8", "surrogateescape")
            if len(line) > rpc.MAX_MESSAGE_BYTES and not line.endswith(b"\n"):
                raise rpc.ProtocolError(f"a line longer than {rpc.MAX_MESSAGE_BYTES} bytes")
            line = line.rstrip(b"\r\n")
            if line.strip():
                return line

    import io
    binary = not isinstance(stdout, io.TextIOBase)

    def send(data: bytes) -> None:
        if binary:
            stdout.write(data)
        else:
            stdout.write(data.decode("utf-8"))
        stdout.flush()

    return next_line, send


def content_text(content: Sequence[Any]) -> str:
    """The text of an MCP content list; other kinds are named, not dropped silently."""
    parts = []
    for item in list(content)[:MAX_CONTENT_ITEMS]:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "text" and isinstance(item.get("text"), str):
            parts.append(item["text"])
        elif kind == "resource" and isinstance(item.get("resource"), dict) \
                and isinstance(item["resource"].get("text"), str):
            parts.append(item["resource"]["text"])
        elif isinstance(kind, str):
            parts.append(f"[{kind[:20]} content omitted]")
    return "\n".join(parts)
