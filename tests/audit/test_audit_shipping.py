"""Audit shipping to real collectors: rsyslog (RFC 5424 over TCP) and an OTLP/HTTP receiver that
decodes the protobuf; a dead or stalled collector never blocks the guarded call and every
dropped or delayed forward is counted (and shown by `audit stats`)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from promptline.enforcer.audit import (
    AuditLog,
    OtlpHttpTransport,
    ShippingSink,
    SyslogTcpTransport,
    read_records,
    shipping_state,
    verify,
)

RSYSLOGD = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)
DENY = {"verdict": "deny", "decided_by": "rule", "policy_version": "v1",
        "rules": [{"id": "no-ssh", "effect": "deny", "layer": "org", "origin": "org.yaml:3"}], "errors": []}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def write_denies(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.decision("notes", "1.0.0", "fs.read", f"/home/u/.ssh/id_{i}", DENY,
                     {"action": "fs.read", "plugin": "notes", "path": f"/home/u/.ssh/id_{i}"})


@pytest.fixture
def rsyslog(tmp_path):
    if RSYSLOGD is None:
        pytest.skip("rsyslogd is not installed (CI installs Debian's rsyslog)")
    port = free_port()
    out = tmp_path / "received.log"
    conf = tmp_path / "rsyslog.conf"
    work = tmp_path / "work"
    work.mkdir()
    conf.write_text(f"""
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="raw" type="string" string="%pri%|%app-name%|%msgid%|%structured-data%|%msg%\\n")
*.* action(type="omfile" file="{out}" template="raw")
""")
    proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslog.pid")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    if not wait_until(listening, 20):
        proc.kill()
        pytest.fail(f"rsyslogd did not listen: {proc.communicate()[0].decode()[-2000:]}")
    yield port, out
    proc.terminate()
    proc.wait(10)


def test_rsyslog_receives_every_record_as_rfc5424(tmp_path, rsyslog):
    port, out = rsyslog
    path = tmp_path / "audit.jsonl"
    sink = ShippingSink(SyslogTcpTransport("127.0.0.1", port), state_path=str(path) + ".ship.syslog.json")
    log = AuditLog(str(path), sinks=[sink])
    write_denies(log, 50)
    log.lifecycle("notes", "1.0.0", "loaded", "sandbox process")
    log.close()
    local = list(read_records(str(path)))
    assert verify(str(path)).ok
    assert wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= len(local))
    lines = out.read_text().splitlines()
    assert len(lines) == len(local)
    for got, rec in zip(lines, local):
        pri, app, msgid, sd, msg = got.split("|", 4)
        assert app == "promptline" and msgid == rec["kind"]
        assert f'seq="{rec["seq"]}"' in sd and 'hash="' in sd
        assert json.loads(msg) == rec                      # the very record of the local chain
        assert int(pri) == 10 * 8 + (4 if rec.get("decision") == "deny" else 6)
    st = sink.stats()
    assert st["forwarded"] == len(local) and st["dropped"] == 0


def test_a_dead_collector_never_blocks_and_drops_are_counted(tmp_path):
    """A collector that accepts and never reads, then one that is gone: the guarded calls run at
    the speed of the local log; what cannot be forwarded is counted as dropped."""
    stall = socket.socket()
    stall.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stall.bind(("127.0.0.1", 0))
    stall.listen(1)
    path = tmp_path / "audit.jsonl"
    sink = ShippingSink(SyslogTcpTransport("127.0.0.1", stall.getsockname()[1], timeout=30), queue_size=20,
                        state_path=str(path) + ".ship.x.json")
    control = AuditLog(str(tmp_path / "control.jsonl"))
    log = AuditLog(str(path), sinks=[sink])
    try:
        t = time.perf_counter()
        write_denies(control, 1500)
        plain = time.perf_counter() - t
        t = time.perf_counter()
        write_denies(log, 1500)
        shipped = time.perf_counter() - t
        st = sink.stats()
        assert st["dropped"] > 0 and st["queued"] <= 20 + 256
        assert st["forwarded"] + st["dropped"] + st["queued"] == 1500
        # not blocked: a stalled collector would hold each call for its 30 s timeout
        assert shipped < plain * 5 + 2.0, (shipped, plain)
        assert len(list(read_records(str(path)))) == 1500 and verify(str(path)).ok   # the local log is whole
    finally:
        t = time.perf_counter()
        log.close()
        control.close()
        stall.close()
    assert time.perf_counter() - t < 15
    st = sink.stats()
    assert st["forwarded"] + st["dropped"] == 1500
    # audit stats shows the counters the sink left next to the log
    state = shipping_state(path)
    assert list(state.values())[0]["dropped"] == st["dropped"]
    out = subprocess.run([sys.executable, "-m", "promptline", "audit", "stats", "--log", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"dropped {st['dropped']}" in out.stdout and "shipping to syslog+tcp://127.0.0.1" in out.stdout


def test_a_collector_that_comes_back_gets_the_records_late_and_they_count_as_delayed(tmp_path):
    srv = socket.socket()           # bound, not listening: connects are refused, and the port stays
    srv.bind(("127.0.0.1", 0))       # ours (no TCP self-connect can land on it)
    port = srv.getsockname()[1]
    received: list[bytes] = []
    sink = ShippingSink(SyslogTcpTransport("127.0.0.1", port, timeout=2), backoff_max=0.2)
    log = AuditLog(str(tmp_path / "audit.jsonl"), sinks=[sink])
    write_denies(log, 10)          # nobody listens yet: sends fail, records wait in the queue
    assert wait_until(lambda: sink.stats()["failures"] >= 2)
    srv.listen(1)

    def accept() -> None:
        conn, _ = srv.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.append(chunk)

    threading.Thread(target=accept, daemon=True).start()
    assert wait_until(lambda: sink.stats()["forwarded"] == 10)
    write_denies(log, 5, start=10)
    assert wait_until(lambda: sink.stats()["forwarded"] == 15)
    st = sink.stats()
    assert st["delayed"] >= 10 and st["dropped"] == 0
    log.close()
    srv.close()
    data = b"".join(received)
    assert data.count(b"<84>1 ") == 15        # authpriv.warning, RFC 5424 version 1, octet-counted frames
    assert data.split(b" ", 1)[0].isdigit()


class Receiver:
    """A tiny OTLP/HTTP logs receiver: decodes ExportLogsServiceRequest protobufs."""

    def __init__(self, status: int = 200) -> None:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest,
            ExportLogsServiceResponse,
        )
        self.logs: list = []
        self.resources: list = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.status != 200:
                    self.send_response(outer.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                req = ExportLogsServiceRequest.FromString(body)
                for rl in req.resource_logs:
                    outer.resources.append({a.key: a.value.string_value for a in rl.resource.attributes})
                    for sl in rl.scope_logs:
                        outer.logs.extend(sl.log_records)
                data = ExportLogsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/logs"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_otlp_http_logs_reach_a_receiver_as_protobuf(tmp_path):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    rx = Receiver()
    try:
        sink = ShippingSink(OtlpHttpTransport(rx.url, timeout=5))
        log = AuditLog(str(tmp_path / "audit.jsonl"), sinks=[sink])
        write_denies(log, 20)
        log.close()
        local = list(read_records(str(tmp_path / "audit.jsonl")))
        assert wait_until(lambda: len(rx.logs) == len(local))
        for got, rec in zip(rx.logs, local):
            assert json.loads(got.body.string_value) == rec
            attrs = {a.key: a.value for a in got.attributes}
            assert attrs["promptline.seq"].int_value == rec["seq"]
            assert attrs["promptline.decision"].string_value == "deny"
            assert attrs["promptline.plugin"].string_value == "notes"
            assert got.severity_text == "WARN"
        assert rx.resources[0]["service.name"] == "promptline"
        assert sink.stats()["forwarded"] == 20
    finally:
        rx.close()


def test_otlp_refusals_are_failures_and_the_log_goes_on(tmp_path):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    rx = Receiver(status=400)          # not retryable: the exporter gives up at once
    try:
        sink = ShippingSink(OtlpHttpTransport(rx.url, timeout=2), retry_for=0.3, backoff_max=0.1)
        log = AuditLog(str(tmp_path / "audit.jsonl"), sinks=[sink])
        write_denies(log, 5)
        assert wait_until(lambda: sink.stats()["dropped"] == 5)
        st = sink.stats()
        assert st["failures"] >= 1 and "OTLP" in st["last_error"] and st["forwarded"] == 0
        rx.status = 200
        write_denies(log, 3, start=5)
        assert wait_until(lambda: sink.stats()["forwarded"] == 3)
        log.close()
        assert len(list(read_records(str(tmp_path / "audit.jsonl")))) == 8
    finally:
        rx.close()


def test_config_file_audit_ship_is_used_by_the_host(tmp_path, rsyslog):
    port, out = rsyslog
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"audit:\n  ship: [\"syslog+tcp://127.0.0.1:{port}\"]\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("audit:\n  ship: 5\n")
    pol = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"
    base = [sys.executable, "-m", "promptline", "tool", "list", "--policy", str(pol), "--plugins", str(tmp_path / "np"),
            "--audit-log", str(tmp_path / "a.jsonl"), "--yes",
            "--approvals", str(tmp_path / "ap.yaml"), "--grants", str(tmp_path / "g.yaml")]
    (tmp_path / "np" / "demo").mkdir(parents=True)
    (tmp_path / "np" / "demo" / "plugin.yaml").write_text("id: demo\nversion: 1.0.0\nentry: {python: 'demo_mod:P'}\n"
                                                          "sandbox: process\n")
    (tmp_path / "np" / "demo" / "demo_mod.py").write_text("from promptline import ToolPlugin\n"
                                                          "class P(ToolPlugin):\n    def tools(self):\n        return []\n")
    r = subprocess.run(base + ["--config", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "bad.yaml:2" in r.stderr and "audit.ship" in r.stderr
    r = subprocess.run(base + ["--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    local = list(read_records(str(tmp_path / "a.jsonl")))
    assert local and local[0]["kind"] == "lifecycle"
    assert wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= len(local))
    assert [json.loads(line.split("|", 4)[4])["seq"] for line in out.read_text().splitlines()] == \
        [r["seq"] for r in local]
    (state,) = shipping_state(tmp_path / "a.jsonl").values()
    assert state["forwarded"] == len(local) and state["dropped"] == 0
