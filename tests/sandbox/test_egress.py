"""The host's egress proxy on its own: canonical host names (a property test over every
spelling of an IPv4 address), and a real Wall fed real sockets the way the child's
forwarder hands them over (SCM_RIGHTS on the SEQPACKET channel)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptline.loaders._process import _netns
from promptline.loaders._process._egress import Refused, Wall, canonical_host, split_authority
from promptline.loaders._process._netns import TAG_CONNECTION


def spellings(n: int) -> list[str]:
    """Forms of the IPv4 address ``n`` that inet_aton / getaddrinfo accept."""
    a, b, c, d = struct.pack(">I", n)
    return [f"{a}.{b}.{c}.{d}", str(n), hex(n), f"{a}.{(b << 16) | (c << 8) | d}", f"{a}.{b}.{(c << 8) | d}",
            f"0{a:o}.{b}.{c}.{d}" if a else f"0.{b}.{c}.{d}", f"{hex(a)}.{b}.{hex(c)}.{d}",
            f"[::ffff:{a}.{b}.{c}.{d}]", f"::ffff:{a}.{b}.{c}.{d}", f"{a}.{b}.{c}.{d}.", f"{hex(a).upper()}.{b}.{c}.{d}"]


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2 ** 32 - 1))
def test_every_spelling_of_an_address_is_one_host(n):
    want = str(ipaddress.IPv4Address(n))
    for s in spellings(n):
        assert canonical_host(s) == want, s


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=80))
def test_canonical_host_is_idempotent_and_strict(text):
    try:
        h = canonical_host(text)
    except Refused:
        return
    assert canonical_host(h) == h
    assert h == h.strip().lower() and not h.endswith(".") and h.isascii()
    assert all(c.isalnum() or c in ".-_:" for c in h)


@pytest.mark.parametrize("text,want", [
    ("Example.COM.", "example.com"), ("bücher.example", "xn--bcher-kva.example"), ("[::1]", "::1"),
    ("0x7f.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("::ffff:7f00:1", "127.0.0.1"),
])
def test_canonical_host_examples(text, want):
    assert canonical_host(text) == want


@pytest.mark.parametrize("text", ["", "a..b", "exa mple.com", "fe80::1%eth0", "a/b", "-" * 64 + ".com", "x" * 300])
def test_canonical_host_refuses(text):
    with pytest.raises(Refused):
        canonical_host(text)


@pytest.mark.parametrize("text", ["example.com", "example.com:0", "example.com:65536", "[::1]80", "h:-1"])
def test_split_authority_refuses(text):
    with pytest.raises(Refused):
        split_authority(text)


class Host:
    """A Wall whose policy grants one host:port, fed connections like the forwarder does."""

    def __init__(self, granted: tuple[str, int]):
        self.records: list[tuple[str, str, str]] = []
        self.decided: list[tuple[str, int]] = []
        self.granted = granted
        self.wall = Wall("egress-test", decide=self._decide, record=lambda *r: self.records.append(r))
        self._child_end = socket.socket(fileno=self.wall.child_fd)   # the test plays the forwarder

    def _decide(self, host, port):
        self.decided.append((host, port))
        return None if (host, port) == self.granted else f"may not net.connect {host}:{port}"

    def start(self):
        # like Wall.started() but the test keeps the child end to play the forwarder
        threading.Thread(target=self.wall._receive, daemon=True).start()

    def connect(self) -> socket.socket:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        socket.send_fds(self._child_end, [TAG_CONNECTION], [b.fileno()])
        b.close()
        a.settimeout(10)
        return a

    def close(self):
        self.wall.close()
        self._child_end.close()


@pytest.fixture
def upstream():
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(10)
    yield srv
    srv.close()


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(4096):
        out += chunk
    return out


def test_connect_to_the_granted_target_relays_bytes(upstream):
    host = Host(("127.0.0.1", upstream.getsockname()[1]))
    host.start()
    try:
        c = host.connect()
        c.sendall(f"CONNECT 127.0.0.1:{upstream.getsockname()[1]} HTTP/1.1\r\n\r\n".encode())
        assert c.recv(100).startswith(b"HTTP/1.1 200")
        peer, _ = upstream.accept()
        c.sendall(b"ping")
        assert peer.recv(4) == b"ping"
        peer.sendall(b"pong")
        peer.close()
        assert _read_all(c) == b"pong"
    finally:
        host.close()


def test_plain_http_is_sent_on_in_origin_form(upstream):
    port = upstream.getsockname()[1]
    host = Host(("127.0.0.1", port))
    host.start()
    try:
        c = host.connect()
        c.sendall(f"GET http://127.0.0.1:{port}/path?q=1 HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\n\r\n"
                  .encode())
        peer, _ = upstream.accept()
        peer.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            head += peer.recv(4096)
        assert head.startswith(b"GET /path?q=1 HTTP/1.1\r\n")
        assert b"Proxy-Connection" not in head and b"Connection: close" in head
        peer.sendall(b"HTTP/1.0 200 OK\r\n\r\nbody")
        peer.close()
        assert _read_all(c).endswith(b"body")
    finally:
        host.close()


@pytest.mark.parametrize("request_bytes,status", [
    (b"CONNECT 127.0.0.2:{port} HTTP/1.1\r\n\r\n", b"403"),        # not granted
    (b"CONNECT 2130706434:{port} HTTP/1.1\r\n\r\n", b"403"),       # 127.0.0.2 in decimal
    (b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n", b"403"),             # granted host, other port
    (b"GET ftp://127.0.0.1:{port}/ HTTP/1.1\r\n\r\n", b"400"),     # only http:// and CONNECT
    (b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", b"400"),               # no port
    (b"garbage\r\n\r\n", b"400"),
])
def test_refusals_answer_and_are_recorded(upstream, request_bytes, status):
    port = upstream.getsockname()[1]
    host = Host(("127.0.0.1", port))
    host.start()
    try:
        c = host.connect()
        c.sendall(request_bytes.replace(b"{port}", str(port).encode()))
        assert _read_all(c).split(b" ")[1] == status
        upstream.settimeout(0.2)
        with pytest.raises(socket.timeout):
            upstream.accept()   # nothing was dialled
        if status == b"400":
            assert host.records, "a malformed request must be recorded"
        else:
            assert host.decided and host.decided[-1] != ("127.0.0.1", port)
    finally:
        host.close()


def test_socks5_name_is_resolved_by_the_host(upstream):
    port = upstream.getsockname()[1]
    host = Host(("localhost", port))
    host.start()
    try:
        c = host.connect()
        c.sendall(b"\x05\x01\x00")
        assert c.recv(2) == b"\x05\x00"
        c.sendall(b"\x05\x01\x00\x03\x09localhost" + struct.pack(">H", port))
        assert c.recv(10)[1] == 0
        upstream.accept()[0].close()
        assert host.decided == [("localhost", port)]   # the name decided; its loopback address allowed
    finally:
        host.close()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists("/usr/bin/python3"),
                    reason="needs root (to become nobody with setpriv) and /usr/bin/python3")
def test_a_non_root_host_gets_a_user_and_network_namespace():
    """The non-root path of the shim (a user namespace mapping the caller's own uid, then the
    network namespace and the forwarder), run as uid 65534; a connection reaches the channel."""
    tmp_path = Path(tempfile.mkdtemp(prefix="promptline-nonroot-"))   # pytest's tmp is root-only
    os.chmod(tmp_path, 0o755)
    shutil.copy(Path(_netns.__file__), tmp_path / "_netns.py")
    os.chmod(tmp_path / "_netns.py", 0o644)
    code = textwrap.dedent(f"""
        import sys, os, socket
        sys.path.insert(0, {str(tmp_path)!r})
        import _netns
        assert _netns.probe() is None
        _netns.enter_new_netns()
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        port = _netns.start_forwarder(b.fileno(), lambda: None)
        c = socket.create_connection(("127.0.0.1", port))
        msg, fds, _, _ = socket.recv_fds(a, 16, 4)
        print(os.getuid(), [n for _, n in socket.if_nameindex()], msg.decode(), len(fds))
    """)
    try:
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
                              "-c", code], capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["65534", "['lo']", "C", "1"]


def test_a_flood_of_bad_requests_is_counted_not_written(upstream):
    from promptline.loaders._process._egress import MAX_RECORDS_PER_S
    host = Host(("127.0.0.1", upstream.getsockname()[1]))
    host.start()
    try:
        for _ in range(MAX_RECORDS_PER_S + 30):
            c = host.connect()
            c.sendall(b"garbage\r\n\r\n")
            assert _read_all(c).startswith(b"HTTP/1.1 400")   # every one is still refused
            c.close()
        assert len(host.records) == MAX_RECORDS_PER_S and host.wall.refusals == MAX_RECORDS_PER_S + 30
    finally:
        host.close()
