"""Downloads against real servers on 127.0.0.1: a wall-clock deadline per fetch (a server
trickling one byte every 2 s, in the body or in the headers, is cut off at the deadline
with a clear error) and redirects that stay on the same origin (never another host or
port, never https to http). Each attack has an honest control on the same server."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import socket
import ssl
import threading
import time

import pytest

from promptline.loaders import _http
from promptline.loaders._registry import Index, RegistryError
from promptline.loaders._registry import _index as index_mod

INDEX = json.dumps({"format": "promptline-index/v1", "plugins": {}}).encode()


class Trickle:
    """A raw TCP server: sends ``head`` at once (or trickled), then the body 1 byte per ``gap`` s."""

    def __init__(self, *, gap=2.0, trickle_head=False, body=INDEX):
        self.gap, self.trickle_head, self.body = gap, trickle_head, body
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        try:
            conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.body)
            slow = (head if self.trickle_head else b"") + self.body
            if not self.trickle_head:
                conn.sendall(head)
            if self.gap == 0:
                conn.sendall(slow)
            for i in range(len(slow) if self.gap else 0):
                if self.stop.wait(self.gap):
                    break
                conn.sendall(slow[i:i + 1])
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.fixture
def deadline(monkeypatch):
    monkeypatch.setattr(index_mod, "FETCH_DEADLINE", 3.0)
    return 3.0


@pytest.mark.parametrize("trickle_head", [False, True], ids=["body", "headers"])
def test_a_trickling_server_is_cut_off_at_the_deadline(deadline, trickle_head):
    slow, fast = Trickle(trickle_head=trickle_head), Trickle(gap=0)
    try:
        start = time.monotonic()
        with pytest.raises(RegistryError, match=r"did not finish within 3 s") as exc:
            Index.open(f"http://127.0.0.1:{slow.port}/")
        took = time.monotonic() - start
        assert exc.value.reason == "fetch-failed" and "too slow" in (exc.value.fix or "")
        assert deadline <= took < deadline + 1.5, took
        assert Index.open(f"http://127.0.0.1:{fast.port}/").plugins == {}, "an honest server is read"
    finally:
        slow.close()
        fast.close()


class Redirector(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self):
        if self.path.startswith("/go"):
            self.send_response(302)
            self.send_header("Location", self.target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(INDEX)))
        self.end_headers()
        self.wfile.write(INDEX)

    def log_message(self, *a):
        pass


def _serve(handler, context=None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def _handler(target):
    return type("H", (Redirector,), {"target": target})


def test_redirects_stay_on_the_same_origin(deadline):
    other = _serve(_handler(""))
    oport = other.server_address[1]
    here = _serve(_handler(f"http://127.0.0.1:{oport}/index.json"))
    port = here.server_address[1]
    try:
        with pytest.raises(RegistryError, match="redirected off http://127.0.0.1") as exc:
            Index.open(f"http://127.0.0.1:{port}/go/")
        assert "same origin" in str(exc.value)
        same = _serve(type("S", (Redirector,), {"target": "/index.json"}))
        try:
            got = _http.http_get(f"http://127.0.0.1:{same.server_address[1]}/go/index.json", limit=1 << 20,
                                 deadline_s=5)
            assert json.loads(got)["plugins"] == {}, "a same-origin redirect is followed"
        finally:
            same.shutdown()
    finally:
        here.shutdown()
        other.shutdown()


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    crt, pem = tmp_path / "cert.pem", tmp_path / "key.pem"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def test_a_redirect_from_https_to_http_is_refused(tmp_path, monkeypatch, deadline):
    crt, pem = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(crt))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, pem)
    plain = _serve(_handler(""))
    pport = plain.server_address[1]
    secure = _serve(_handler(f"http://127.0.0.1:{pport}/index.json"), ctx)
    sport = secure.server_address[1]
    try:
        assert Index.open(f"https://127.0.0.1:{sport}/").plugins == {}, "the https server itself is trusted"
        with pytest.raises(RegistryError, match="redirected from https to http"):
            Index.open(f"https://127.0.0.1:{sport}/go/")
    finally:
        secure.shutdown()
        plain.shutdown()
