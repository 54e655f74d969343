"""JSON-RPC 2.0 over newline-delimited JSON (the MCP stdio framing), for hostile peers.

A peer's output is untrusted: every line is bounded (:data:`MAX_MESSAGE_BYTES`), must be one
UTF-8 JSON object, and must be a well-formed request, notification or response. Anything
else raises :class:`ProtocolError` with one line saying what was expected and what came.
Batches (JSON arrays) are refused: MCP stdio peers do not need them.

Standard library only; used by the host's client, the child bootstrap and the host's MCP
server.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE_BYTES = 16 * 1024 * 1024   # one JSON-RPC line; a longer line is a protocol error
READ_CHUNK = 256 * 1024                # bytes asked of os.read at a time
MAX_ID_CHARS = 128                     # a string id longer than this is refused
MAX_DEPTH = 64                         # nesting of a message's JSON

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
REQUEST_CANCELLED = -32800


class ProtocolError(Exception):
    """The peer sent something that is not valid JSON-RPC 2.0 (or the stream broke)."""


class ClosedError(ProtocolError):
    """The peer closed its end of the stream."""


class RpcError(Exception):
    """A JSON-RPC error response: ``code``, ``message`` and optional ``data``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{message} (code {code})")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    params: Any
    id: int | str


@dataclass(frozen=True, slots=True)
class Notification:
    method: str
    params: Any


@dataclass(frozen=True, slots=True)
class Response:
    id: int | str | None
    result: Any = None
    error: RpcError | None = None


Message = Request | Notification | Response


def _short(data: bytes | str, limit: int = 60) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def depth_ok(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when decoded JSON nests at most ``limit`` levels below its top (checked without
    recursion, so a hostile document cannot raise RecursionError)."""
    stack = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            return False
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return True


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2 ** 53) < value < 2 ** 53
    return isinstance(value, str) and len(value) <= MAX_ID_CHARS


def _reject_constant(name: str) -> Any:
    raise ValueError(f"`{name}` is not JSON")


def parse(line: bytes) -> Message:
    """One line (without its newline) -> a message; raise ProtocolError on anything else."""
    if len(line) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(line)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    try:
        obj = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError(f"expected a JSON-RPC message, found `{_short(line)}`") from None
    if not isinstance(obj, dict):
        kind = "a batch" if isinstance(obj, list) else type(obj).__name__
        raise ProtocolError(f"expected a JSON object, found {kind}")
    if obj.get("jsonrpc") != "2.0":
        raise ProtocolError(f"expected `\"jsonrpc\": \"2.0\"`, found `{_short(repr(obj.get('jsonrpc')))}`")
    if not depth_ok(obj):
        raise ProtocolError(f"message nested deeper than {MAX_DEPTH} levels")
    if "method" in obj:
        method = obj["method"]
        if not isinstance(method, str) or not method or len(method) > 256:
            raise ProtocolError("`method` must be a non-empty string")
        params = obj.get("params")
        if params is not None and not isinstance(params, (dict, list)):
            raise ProtocolError(f"`params` of `{_short(method)}` must be an object or array")
        extra = set(obj) - {"jsonrpc", "method", "params", "id"}
        if extra:
            raise ProtocolError(f"unexpected member `{_short(sorted(extra)[0])}` in a request")
        if "id" not in obj:
            return Notification(method, params)
        if not _valid_id(obj["id"]):
            raise ProtocolError(f"request id must be an integer or a short string, found `{_short(repr(obj['id']))}`")
        return Request(method, params, obj["id"])
    extra = set(obj) - {"jsonrpc", "id", "result", "error"}
    if extra:
        raise ProtocolError(f"unexpected member `{_short(sorted(extra)[0])}` in a response")
    if "id" not in obj:
        raise ProtocolError("a response without `id`")
    rid = obj["id"]
    if rid is not None and not _valid_id(rid):
        raise ProtocolError(f"response id must be an integer or a short string, found `{_short(repr(rid))}`")
    if ("result" in obj) == ("error" in obj):
        raise ProtocolError("a response must carry exactly one of `result` and `error`")
    if "error" in obj:
        err = obj["error"]
        if (not isinstance(err, dict) or isinstance(err.get("code"), bool)
                or not isinstance(err.get("code"), int) or not isinstance(err.get("message"), str)):
            raise ProtocolError("`error` must be an object with an integer `code` and a string `message`")
        return Response(rid, None, RpcError(err["code"], err["message"][:2000], err.get("data")))
    return Response(rid, obj["result"])


def encode(msg: Message) -> bytes:
    """A message as one line of compact JSON with its newline."""
    if isinstance(msg, Request):
        obj: dict[str, Any] = {"jsonrpc": "2.0", "id": msg.id, "method": msg.method}
        if msg.params is not None:
            obj["params"] = msg.params
    elif isinstance(msg, Notification):
        obj = {"jsonrpc": "2.0", "method": msg.method}
        if msg.params is not None:
            obj["params"] = msg.params
    else:
        obj = {"jsonrpc": "2.0", "id": msg.id}
        if msg.error is not None:
            obj["error"] = msg.error.to_dict()
        else:
            obj["result"] = msg.result
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    return data + b"\n"


class LineReader:
    """Bounded line reader over a raw file descriptor (no Python buffering, no readline
    that grows without limit). ``next_line`` returns one line without its newline, raises
    ClosedError at end of stream and ProtocolError for an over-long line."""

    __slots__ = ("fd", "_buf", "_lines", "limit")

    def __init__(self, fd: int, limit: int = MAX_MESSAGE_BYTES) -> None:
        self.fd = fd
        self._buf = b""
        self._lines: list[bytes] = []
        self.limit = limit

    def next_line(self) -> bytes:
        while not self._lines:
            chunk = os.read(self.fd, READ_CHUNK)
            if not chunk:
                if bytes(self._buf[:4096]).strip():
                    raise ClosedError(f"stream closed inside a message (`{_short(bytes(self._buf[:80]))}`)")
                raise ClosedError("stream closed")
            if b"\n" not in chunk:   # a long line arriving in pieces: append, never re-copy
                if not isinstance(self._buf, bytearray):
                    self._buf = bytearray(self._buf)
                self._buf += chunk
                if len(self._buf) > self.limit:
                    raise ProtocolError(f"a line longer than {self.limit} bytes")
                continue
            data = bytes(self._buf) + chunk if self._buf else chunk
            parts = data.split(b"\n")
            self._buf = parts.pop()
            if len(self._buf) > self.limit:
                raise ProtocolError(f"a line longer than {self.limit} bytes")
            for p in parts:
                if len(p) > self.limit:
                    raise ProtocolError(f"a line longer than {self.limit} bytes")
                if p.strip():
                    self._lines.append(p)
            self._lines.reverse()
        return self._lines.pop()


class Writer:
    """Thread-safe writer of whole messages to a raw file descriptor."""

    __slots__ = ("fd", "_lock")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()

    def send(self, msg: Message) -> None:
        self.send_bytes(encode(msg))

    def send_bytes(self, data: bytes) -> None:
        view = memoryview(data)
        with self._lock:
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
