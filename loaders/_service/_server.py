"""The decision service: a PluginManager's decisions served over a Unix socket (docs/service.md).

A core in any language connects to ``PATH``, writes one JSON request per line and reads one
response per line. The peer's uid (``SO_PEERCRED``) must be the service owner's (or one in
``allow_uids``); the socket file is created 0600 besides. A malformed, oversized or
unknown-version line gets an error object and the connection stays usable; nothing a client
sends stops the service. Each connection has its own thread (``max_clients`` at once).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterable
from typing import Any

from promptline.policy import Request

from ._protocol import MAX_MESSAGE, ProtocolError, decode, encode_error, encode_result

log = logging.getLogger("promptline.service")

MAX_CLIENTS = 64
AUDIT_LIMIT = 100


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class DecisionService:
    """Serve ``manager`` (a loaded PluginManager) on the Unix socket ``path``.

        service = DecisionService(pm, "/run/user/1000/promptline.sock")
        service.start()          # listening in a background thread
        ...
        service.stop()
    """

    def __init__(self, manager: Any, path: str | os.PathLike, *, allow_uids: Iterable[int] | None = None,
                 max_message: int = MAX_MESSAGE, max_clients: int = MAX_CLIENTS) -> None:
        self.manager = manager
        self.path = os.path.abspath(os.fspath(path))
        self.owner = os.geteuid()
        self.allow_uids = frozenset(allow_uids) if allow_uids is not None else frozenset({self.owner})
        self.max_message = max_message
        self._slots = threading.BoundedSemaphore(max_clients)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.stats = {"connections": 0, "refused_peers": 0, "requests": 0, "errors": 0}
        self._methods = {"check": self._check, "explain": self._explain, "load": self._load,
                         "call_tool": self._call_tool, "audit": self._audit}

    # -- lifecycle -------------------------------------------------------------------

    def bind(self) -> socket.socket:
        """Create the listening socket (0600; a stale socket file of a dead service is replaced)."""
        if os.path.exists(self.path):
            if not _is_socket(self.path):
                raise OSError(f"`{self.path}` exists and is not a socket — choose another --socket path")
            if _alive(self.path):
                raise OSError(f"a service is already listening on `{self.path}` — stop it or choose another path")
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)
        sock.listen(128)
        self._sock = sock
        return sock

    def start(self) -> DecisionService:
        if self._sock is None:
            self.bind()
        self._thread = threading.Thread(target=self.serve_forever, name="promptline-service", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        sock = self._sock if self._sock is not None else self.bind()
        while not self._stopping.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            threading.Thread(target=self._serve_conn, args=(conn,), name="promptline-service-conn",
                             daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        with self._lock:
            for c in list(self._conns):
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            if _is_socket(self.path):
                os.unlink(self.path)

    def __enter__(self) -> DecisionService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- one connection ----------------------------------------------------------------

    def _serve_conn(self, conn: socket.socket) -> None:
        with conn:
            try:
                uid = peer_uid(conn)
            except OSError:
                uid = -1
            if uid not in self.allow_uids:
                self.stats["refused_peers"] += 1
                log.warning("refused a client with uid %s on %s", uid, self.path)
                _send(conn, encode_error(None, ProtocolError(
                    "forbidden", f"uid {uid} may not use this service (owner uid {self.owner})")))
                return
            if not self._slots.acquire(blocking=False):
                _send(conn, encode_error(None, ProtocolError("busy", "too many clients; retry later")))
                return
            with self._lock:
                self._conns.add(conn)
                self.stats["connections"] += 1
            try:
                for line, too_long in _lines(conn, self.max_message):
                    if not _send(conn, self.handle(line, too_long)):
                        return
            except OSError:
                return
            finally:
                with self._lock:
                    self._conns.discard(conn)
                self._slots.release()

    def handle(self, line: bytes, too_long: bool = False) -> bytes:
        """The response line for one request line (never raises)."""
        self.stats["requests"] += 1
        rid = None
        try:
            if too_long:
                raise ProtocolError("too-large", f"a request line is at most {self.max_message} bytes")
            if not line.strip():
                raise ProtocolError("invalid-request", "empty line: send one JSON request per line", "/")
            rid, msg = decode(line)
            return encode_result(rid, self._methods[msg["method"]](msg.get("params", {})))
        except ProtocolError as exc:
            self.stats["errors"] += 1
            return encode_error(exc.rid if rid is None else rid, exc)
        except Exception as exc:  # noqa: BLE001 - a request never takes the service down
            self.stats["errors"] += 1
            log.exception("service request failed")
            return encode_error(rid, ProtocolError("internal", f"{type(exc).__name__}: {str(exc)[:200]}"))

    # -- methods -----------------------------------------------------------------------

    def _request(self, params: dict) -> Request:
        data = dict(params["request"])
        if isinstance(data.get("args"), dict):   # the same JSON text Request.tool_call makes
            data["args"] = json.dumps(data["args"], sort_keys=True, default=str)
        try:
            return Request.from_dict(data, plugin=params["plugin"])
        except ValueError as exc:
            raise ProtocolError("invalid-params", str(exc), "/params/request") from None

    def _enforcer(self):
        enforcer = self.manager.enforcer
        if enforcer is None:
            raise ProtocolError("internal", "no policy is loaded yet")
        return enforcer

    def _check(self, params: dict) -> dict:
        request = self._request(params)
        d = self._enforcer().check(params["plugin"], request)
        return dict(d.to_dict(), reason=d.reason())

    def _explain(self, params: dict) -> dict:
        request = self._request(params)
        ps = self.manager.policy_set
        if ps is None:
            raise ProtocolError("internal", "no policy is loaded yet")
        ex = ps.explain(request)
        show_all = params.get("all", False)
        return {"decision": ex.decision.to_dict(),
                "rules": [{"id": t.rule.id, "origin": t.rule.origin, "effect": t.rule.effect.value,
                           "considered": t.considered, "matched": t.matched, "why": t.why}
                          for t in ex.traces if t.considered or show_all]}

    def _load(self, params: dict) -> dict:
        what = params.get("what", "all")
        pm = self.manager
        loaded: list[str] = []
        refused: list[dict] = []
        if what in ("all", "plugins"):
            report = pm.reload_plugins()
            loaded = list(report.loaded)
            refused = [{"plugin": p, "why": w} for p, w in report.refused]
        ok = not refused
        error = ""
        if what in ("all", "policy"):
            ok = pm.reload_policy() and ok
            error = pm.last_reload_error
        out = {"ok": ok, "policy_version": getattr(pm.policy_set, "version", "") or "",
               "loaded": loaded, "refused": refused}
        if error:
            out["error"] = error
        return out

    def _call_tool(self, params: dict) -> dict:
        result = self.manager.call_tool(params["tool"], params.get("args", {}), timeout=params.get("timeout"))
        return result.to_dict()

    def _audit(self, params: dict) -> dict:
        audit_log = self.manager.audit_log
        if audit_log is None:
            return {"records": [], "counters": {}}
        with contextlib.suppress(Exception):
            audit_log.flush(timeout=2.0)
        counters = {k: v for k, v in audit_log.counters().items() if isinstance(v, int)}
        path = getattr(audit_log, "path", None)
        limit = params.get("limit", AUDIT_LIMIT)
        records: list[dict] = []
        if path and os.path.exists(path) and limit:
            from collections import deque

            from promptline.enforcer.audit import read_records, select
            records = list(deque(select(read_records(path), plugin=params.get("plugin"), kind=params.get("kind"),
                                        decision=params.get("decision")), maxlen=limit))
        out: dict[str, Any] = {"records": records, "counters": counters}
        shipping = getattr(audit_log, "shipping_stats", None)
        if callable(shipping):
            out["shipping"] = shipping()
        return out


def _lines(conn: socket.socket, limit: int):
    """(line, too_long) for each newline-terminated line; an over-long line is skipped to its end."""
    buf = b""
    skipping = False
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > limit:
                    if not skipping:
                        skipping = True
                        yield b"", True
                    buf = b""
                break
            line, buf = buf[:nl], buf[nl + 1:]
            if skipping:
                skipping = False
                continue
            if len(line) > limit:
                yield b"", True
                continue
            yield line.rstrip(b"\r"), False


def _send(conn: socket.socket, data: bytes) -> bool:
    try:
        conn.sendall(data)
        return True
    except OSError:
        return False


def _is_socket(path: str) -> bool:
    import stat
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _alive(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()
