"""The host side of the network wall: the channel to one child and its egress proxy.

A sandboxed child has a network namespace with only loopback (``_netns``). Its forwarder
hands every connection made to ``127.0.0.1:<proxy port>`` to the host over the channel (an
``AF_UNIX`` SEQPACKET socketpair; ``C`` + the socket). Here each one speaks

- HTTP ``CONNECT host:port`` (what ``HTTPS_PROXY`` clients send),
- plain HTTP with an absolute URL (``HTTP_PROXY`` clients; sent on with ``Connection: close``),
- SOCKS5 ``CONNECT`` (``ALL_PROXY=socks5h://``: the name travels, not an address).

The proxy puts the name in its canonical form (:func:`canonical_host`), decides
``net.connect`` host:port with the host's Enforcer (the same PolicySet decision as
everywhere; denies are logged there), resolves the name itself, refuses a granted name that
resolves into the ``private`` group unless that address is granted too (no rebinding to
the host's own services), and dials. The child never picks the address behind a name.
Refusals that are not policy decisions (malformed requests, unknown names) are audit
records too. The channel also carries the child's seccomp listener (``N`` + fd), handed to
``_supervisor``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable

from promptline.policy import in_cidr

from ._netns import TAG_CONNECTION, TAG_LISTENER

log = logging.getLogger("promptline.process.egress")

HANDSHAKE_TIMEOUT = 30.0     # seconds for a client to send its request
CONNECT_TIMEOUT = 10.0       # seconds to dial a granted host
MAX_HEADER = 64 * 1024       # bytes of an HTTP request head
MAX_CONNECTIONS = 64         # concurrent proxied connections of one child
MAX_RECORDS_PER_S = 50       # refusal records of one child a second (a flood is counted, not written)
BUFSIZE = 256 * 1024

Decide = Callable[[str, int], "str | None"]            # (host, port) -> None or why refused
Record = Callable[[str, str, str], None]               # (action, resource, reason)


class Refused(Exception):
    """A request the proxy will not carry; the message says why."""


def canonical_host(text: str) -> str:
    """The one spelling of a host name or address the policy judges: lowercase, no trailing
    dot, IDNA (punycode) for Unicode names, IPv6 without brackets, IPv4-mapped IPv6 and the
    numeric forms ``inet_aton`` accepts (``127.1``, ``0x7f.0.0.1``, ``2130706433``) as dotted
    quads. Raises Refused for anything else (empty labels, spaces, ``%`` scopes...)."""
    if not isinstance(text, str) or not text or len(text) > 255:
        raise Refused("empty or overlong host")
    h = text.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if not h.isascii():   # IDNA first: `²` or fullwidth digits become ASCII digits, i.e. an address
        try:
            h = h.encode("idna").decode("ascii")
        except UnicodeError:
            raise Refused(f"host `{text[:80]}` is not a valid name") from None
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        ip = None
    if ip is None and h and all(c in "0123456789abcdefxABCDEFX." for c in h) and not h.endswith(".."):
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(h[:-1] if h.endswith(".") else h))
        except OSError:
            ip = None
    if ip is not None:
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.scope_id:
                raise Refused("scoped IPv6 addresses are refused")
            if ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
        return str(ip)
    h = h.rstrip(".").lower()
    labels = h.split(".")
    if not h or any(not lab or len(lab) > 63 for lab in labels) or \
            any(not (c.isalnum() or c in "-_") for lab in labels for c in lab):
        raise Refused(f"host `{text[:80]}` is not a valid name")
    return h


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise Refused(f"port `{text[:10]}` is not a port")
    return int(text)


def split_authority(text: str) -> tuple[str, int]:
    """``host:port`` / ``[v6]:port`` -> (canonical host, port)."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise Refused("malformed [address]:port")
        return canonical_host(host), _port(rest[1:])
    host, sep, port = text.rpartition(":")
    if not sep:
        raise Refused("the target has no port")
    return canonical_host(host), _port(port)


class Wall:
    """The channel and proxy of one child start. ``child_fd`` goes to the child (pass it in
    ``pass_fds``); call :meth:`started` after the spawn and :meth:`close` when it stops."""

    def __init__(self, plugin_id: str, *, decide: Decide, record: Record,
                 on_listener: Callable[[int], None] | None = None) -> None:
        self.plugin_id = plugin_id
        self._decide = decide
        self._record = record
        self._on_listener = on_listener
        self._host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.child_fd = child.detach()
        self._closed = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0
        self.refusals = 0
        self._budget = [MAX_RECORDS_PER_S, time.monotonic()]
        self.starter_execs = True   # the child's starter (the shim) execs the plugin: one exec to let
                                    # through; False for a child forked from the template process

    def started(self) -> None:
        """The child holds its end now: close ours and start receiving."""
        import os
        os.close(self.child_fd)
        threading.Thread(target=self._receive, daemon=True, name=f"promptline-egress-{self.plugin_id}").start()

    def close(self) -> None:
        self._closed.set()
        for s in [self._host, *self._open]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    # -- the channel ----------------------------------------------------------------------

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                msg, fds, _flags, _addr = socket.recv_fds(self._host, 16, 4)
            except OSError:
                return
            if not msg and not fds:
                return   # the child's end is closed
            if msg == TAG_CONNECTION and len(fds) == 1:
                conn = socket.socket(fileno=fds[0])
                if conn.type != socket.SOCK_STREAM:
                    conn.close()
                    continue
                if not self._slots.acquire(blocking=False):
                    self._refuse("net.connect", "<proxy>", f"more than {MAX_CONNECTIONS} connections at once")
                    conn.close()
                    continue
                threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                 name=f"promptline-proxy-{self.plugin_id}").start()
            elif msg == TAG_LISTENER and len(fds) == 1 and self._on_listener is not None:
                self._on_listener(fds[0])
            else:
                import os
                for fd in fds:
                    os.close(fd)

    # -- one proxied connection -----------------------------------------------------------

    def _refuse(self, action: str, resource: str, reason: str) -> None:
        self.refusals += 1
        with self._lock:
            budget, now = self._budget, time.monotonic()
            if now - budget[1] >= 1.0:
                if budget[0] < 0:
                    log.warning("plugin `%s`: %d more proxy refusals were not recorded", self.plugin_id, -budget[0])
                budget[0], budget[1] = MAX_RECORDS_PER_S, now
            budget[0] -= 1
            if budget[0] < 0:
                return
        try:
            self._record(action, resource, reason)
        except Exception as exc:  # noqa: BLE001 - never take the host down
            log.error("plugin `%s`: could not record a proxy refusal: %s", self.plugin_id, exc)

    def _serve(self, conn: socket.socket) -> None:
        upstream = None
        with self._lock:
            self._open.add(conn)
        try:
            conn.settimeout(HANDSHAKE_TIMEOUT)
            first = conn.recv(1, socket.MSG_PEEK)
            if not first:
                return
            if first == b"\x05":
                upstream = self._socks(conn)
            else:
                upstream = self._http(conn)
            if upstream is None:
                return
            self.connections += 1
            conn.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._open.add(upstream)
            t = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
            t.start()
            _pump(conn, upstream)
            t.join()
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._open.discard(conn)
                if upstream is not None:
                    self._open.discard(upstream)
            for s in (conn, upstream):
                if s is not None:
                    s.close()
            self._slots.release()

    def _dial(self, host: str, port: int) -> socket.socket:
        """Decide, resolve here, check the addresses, connect. Raises Refused."""
        why = self._decide(host, port)
        if why is not None:
            self.refusals += 1
            raise Refused(why)   # the Enforcer logged the deny
        literal = _is_ip(host)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as exc:
            self._refuse("net.connect", f"{host}:{port}", f"cannot resolve: {exc}")
            raise Refused(f"cannot resolve `{host}`") from None
        last: Exception | None = None
        for family, kind, proto, _canon, addr in infos:
            ip = canonical_host(str(addr[0]))
            if not literal and in_cidr(ip, "private") and not _loopback_name(host, ip):
                if self._decide(ip, port) is not None:
                    last = Refused(f"`{host}` resolves to the private address {ip}, which is not granted")
                    continue
            s = socket.socket(family, kind, proto)
            s.settimeout(CONNECT_TIMEOUT)
            try:
                s.connect(addr)
                return s
            except OSError as exc:
                s.close()
                last = exc
        if isinstance(last, Refused):
            self._refuse("net.connect", f"{host}:{port}", str(last))
            raise last
        raise Refused(f"cannot connect to {host}:{port}: {getattr(last, 'strerror', None) or last}")

    def _http(self, conn: socket.socket) -> socket.socket | None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return None
            head += chunk
            if len(head) > MAX_HEADER:
                self._refuse("net.connect", "<proxy>", "HTTP request head too long")
                _reply(conn, 431, "request head too long")
                return None
        raw, _, rest = head.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._refuse("net.connect", "<proxy>", "malformed HTTP request line")
            _reply(conn, 400, "malformed request line")
            return None
        method, target, version = parts
        try:
            if method == "CONNECT":
                host, port = split_authority(target)
            elif target.lower().startswith("http://"):
                authority, slash, path = target[7:].partition("/")
                authority = authority.rpartition("@")[2]
                has_port = "]:" in authority if authority.startswith("[") else ":" in authority
                host, port = split_authority(authority if has_port else authority + ":80")
                path = slash + path or "/"
            else:
                raise Refused("only CONNECT and absolute http:// URLs are proxied")
        except Refused as exc:
            self._refuse("net.connect", target[:200], str(exc))
            _reply(conn, 400, str(exc))
            return None
        try:
            upstream = self._dial(host, port)
        except Refused as exc:
            _reply(conn, 403, str(exc))
            return None
        if method == "CONNECT":
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            return upstream
        kept = [h for h in lines[1:] if h.split(":", 1)[0].strip().lower()
                not in ("proxy-connection", "proxy-authorization", "connection", "keep-alive")]
        out = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""])
        upstream.sendall(out.encode("latin-1") + rest)
        return upstream

    def _socks(self, conn: socket.socket) -> socket.socket | None:
        head = _recv_exact(conn, 2)
        methods = _recv_exact(conn, head[1])
        if 0 not in methods:
            conn.sendall(b"\x05\xff")
            self._refuse("net.connect", "<proxy>", "SOCKS5 without the no-auth method")
            return None
        conn.sendall(b"\x05\x00")
        ver, cmd, _rsv, atyp = _recv_exact(conn, 4)
        try:
            if ver != 5:
                raise Refused("not SOCKS5")
            if atyp == 1:
                host = str(ipaddress.IPv4Address(_recv_exact(conn, 4)))
            elif atyp == 4:
                host = canonical_host(str(ipaddress.IPv6Address(_recv_exact(conn, 16))))
            elif atyp == 3:
                name = _recv_exact(conn, _recv_exact(conn, 1)[0])
                host = canonical_host(name.decode("utf-8", "strict"))
            else:
                raise Refused("unknown SOCKS5 address type")
            port = int.from_bytes(_recv_exact(conn, 2), "big")
            if cmd != 1:
                raise Refused("only SOCKS5 CONNECT is proxied (no BIND, no UDP ASSOCIATE)")
            if port == 0:
                raise Refused("port 0")
        except (Refused, UnicodeError) as exc:
            self._refuse("net.connect", "<socks5>", str(exc))
            conn.sendall(b"\x05\x07\x00\x01" + bytes(6))
            return None
        try:
            upstream = self._dial(host, port)
        except Refused:
            conn.sendall(b"\x05\x02\x00\x01" + bytes(6))   # not allowed by ruleset
            return None
        conn.sendall(b"\x05\x00\x00\x01" + bytes(6))
        return upstream


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _loopback_name(host: str, ip: str) -> bool:
    """``localhost`` and ``*.localhost`` may resolve to loopback (RFC 6761)."""
    return (host == "localhost" or host.endswith(".localhost")) and ipaddress.ip_address(ip).is_loopback


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            raise OSError("closed during the handshake")
        out += chunk
    return out


def _reply(conn: socket.socket, code: int, text: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 431: "Request Header Fields Too Large"}.get(code, "Error")
    body = f"promptline egress proxy: {text}\n".encode("utf-8", "replace")
    try:
        conn.sendall(f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)
    except OSError:
        pass


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(BUFSIZE)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
