"""One HTTP(S) GET with a wall-clock deadline, a size limit and same-origin redirects.

``urlopen``'s ``timeout`` bounds each socket operation, not the fetch: a server sending one
byte every two seconds (headers or body) never trips it. :func:`http_get` arms a timer at
the deadline that shuts the connection's socket down, so a blocked read returns at once,
and then reports the deadline, not a broken connection. Redirects are followed only to the
same origin (scheme, host and port): never to another host, never from https to http.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

READ_TIMEOUT = 30.0      # seconds one socket operation may block (also bounded by the deadline)
MAX_REDIRECTS = 5
CHUNK = 64 * 1024


class FetchError(OSError):
    """A GET failed; ``kind`` is ``deadline``, ``redirect``, ``too-large``, ``http`` or
    ``network``; ``status`` the HTTP status for ``http``."""

    def __init__(self, message: str, kind: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


class _Fetch:
    """One fetch's state: its sockets, its deadline timer, where it started."""

    def __init__(self, url: str, deadline_s: float) -> None:
        self.origin = origin(url)
        self.deadline_s = deadline_s
        self.sockets: list[socket.socket] = []
        self.expired = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(deadline_s, self.expire)
        self._timer.daemon = True

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self.sockets.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self.sockets:
                _shut(sock)

    def __enter__(self) -> _Fetch:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _connection(base: type, fetch: _Fetch):
    class Connection(base):
        def connect(self) -> None:
            super().connect()
            fetch.add(self.sock)
    return Connection


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, fetch: _Fetch) -> None:
        super().__init__()
        self._cls = _connection(http.client.HTTPConnection, fetch)

    def http_open(self, req):
        return self.do_open(self._cls, req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, fetch: _Fetch) -> None:
        super().__init__()
        self._cls = _connection(http.client.HTTPSConnection, fetch)

    def https_open(self, req):
        return self.do_open(self._cls, req)   # the default context: certificates and host checked


class _SameOrigin(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def __init__(self, fetch: _Fetch) -> None:
        super().__init__()
        self._fetch = fetch

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        target = urllib.parse.urljoin(req.full_url, newurl)
        if origin(target) != self._fetch.origin:
            scheme, host, port = self._fetch.origin
            why = ("from https to http" if scheme == "https" and origin(target)[0] == "http"
                   else f"off {scheme}://{host}:{port}")
            raise FetchError(f"redirected {why} (to `{_clip(target)}`); redirects must stay on the same origin",
                             "redirect")
        return super().redirect_request(req, fp, code, msg, headers, target)


def http_get(url: str, *, limit: int, deadline_s: float, headers: Mapping[str, str] | None = None) -> bytes:
    """The body of ``url`` (at most ``limit`` bytes), fetched within ``deadline_s`` seconds
    wall-clock from connect to the last byte. Raises FetchError."""
    return http_fetch(url, limit=limit, deadline_s=deadline_s, headers=headers)[0]


def http_fetch(url: str, *, limit: int, deadline_s: float,
               headers: Mapping[str, str] | None = None) -> tuple[bytes, Mapping[str, str]]:
    """:func:`http_get` that also returns the response headers (a 304 is a FetchError with
    ``status`` 304)."""
    if origin(url)[0] not in ("http", "https"):
        raise FetchError(f"`{_clip(url)}` is not an http(s) URL", "network")
    fetch = _Fetch(url, deadline_s)
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), _HTTP(fetch), _HTTPS(fetch), _SameOrigin(fetch), urllib.request.HTTPDefaultErrorHandler(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    req = urllib.request.Request(url, headers={"Accept-Encoding": "identity", **(headers or {})})
    start = time.monotonic()
    with fetch:
        try:
            with opener.open(req, timeout=min(READ_TIMEOUT, deadline_s)) as resp:
                length = resp.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > limit:
                    raise FetchError(f"the server announces {length[:20]} bytes, over the limit of {limit}",
                                     "too-large")
                data = bytearray()
                while len(data) <= limit:
                    chunk = resp.read1(CHUNK) if hasattr(resp, "read1") else resp.read(CHUNK)
                    if not chunk:
                        break
                    data += chunk
                if fetch.expired:
                    raise _late(fetch, start)
                if len(data) > limit:
                    raise FetchError(f"the body is larger than {limit} bytes", "too-large")
                if length and length.isdigit() and len(data) != int(length):
                    raise FetchError(f"truncated body: {len(data)} of {length} bytes", "network")
                return bytes(data), resp.headers
        except FetchError:
            raise
        except urllib.error.HTTPError as exc:
            raise FetchError(f"HTTP {exc.code}", "http", exc.code) from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            if fetch.expired:
                raise _late(fetch, start) from None
            why = getattr(exc, "reason", None) or exc
            raise FetchError(str(why) or type(exc).__name__, "network") from None


def _late(fetch: _Fetch, start: float) -> FetchError:
    return FetchError(f"the download did not finish within {fetch.deadline_s:g} s (cut off after "
                      f"{time.monotonic() - start:.1f} s)", "deadline")


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["FetchError", "http_fetch", "http_get", "origin", "READ_TIMEOUT", "MAX_REDIRECTS"]
