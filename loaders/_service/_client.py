"""A small Python client of the decision service (the reference for clients in other languages).

    with ServiceClient("/run/user/1000/promptline.sock") as c:
        d = c.check("notes", {"action": "fs.read", "path": "/etc/passwd"})
        d["verdict"]    # "deny"
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
from typing import Any

from ._protocol import PROTOCOL_VERSION


class ServiceError(Exception):
    """The service answered with an error object (``code``, ``message``, ``path``)."""

    def __init__(self, error: dict) -> None:
        self.code = str(error.get("code", "internal"))
        self.message = str(error.get("message", ""))
        self.path = str(error.get("path", ""))
        super().__init__(f"{self.code}: {self.message}")


class ServiceClient:
    """One connection to a decision service; thread-safe (one request in flight at a time)."""

    def __init__(self, path: str | os.PathLike, *, timeout: float | None = 30.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(os.fspath(path))
        self._file = self._sock.makefile("rb")
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def call(self, method: str, params: dict | None = None) -> dict:
        """Send one request and return its result (ServiceError for an error response)."""
        with self._lock:
            rid = next(self._ids)
            msg = {"v": PROTOCOL_VERSION, "id": rid, "method": method, "params": params or {}}
            self._sock.sendall(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
            line = self._file.readline()
        if not line:
            raise ConnectionError("the decision service closed the connection")
        reply = json.loads(line)
        if "error" in reply:
            raise ServiceError(reply["error"])
        return reply["result"]

    def check(self, plugin: str, request: dict) -> dict:
        return self.call("check", {"plugin": plugin, "request": request})

    def explain(self, plugin: str, request: dict, *, all: bool = False) -> dict:  # noqa: A002
        return self.call("explain", {"plugin": plugin, "request": request, "all": all})

    def load(self, what: str = "all") -> dict:
        return self.call("load", {"what": what})

    def call_tool(self, tool: str, args: dict | None = None, *, timeout: float | None = None) -> dict:
        params: dict[str, Any] = {"tool": tool, "args": args or {}}
        if timeout is not None:
            params["timeout"] = timeout
        return self.call("call_tool", params)

    def audit(self, limit: int = 100, **filters: str) -> dict:
        return self.call("audit", {"limit": limit, **filters})

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
