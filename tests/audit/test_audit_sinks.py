"""Sinks: JSON Lines on a stream and RFC 5424 syslog."""

from __future__ import annotations

import io
import json
import re
import socket

from audit_helpers import decision

from promptline.enforcer.audit import AuditLog, StdoutSink, SyslogSink, line_hash, verify


def test_stdout_sink_gets_the_same_lines(log_path):
    buf = io.StringIO()
    with AuditLog(log_path, sinks=[StdoutSink(buf)]) as log:
        log.decision("p", "1", "fs.read", "/a", decision())
        log.decision("p", "1", "fs.read", "/b", decision("allow"))
    assert buf.getvalue() == open(log_path).read()
    assert verify(log_path).ok


RFC5424 = re.compile(r"<(\d+)>1 (\S+) (\S+) promptline (\d+) (\S+) "
                     r"\[promptline@32473 seq=\"(\d+)\" hash=\"([0-9a-f]{64})\"\] (\{.*\})\Z")


def test_syslog_sink_speaks_rfc5424_over_udp(log_path):
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(5)
    sink = SyslogSink(address=srv.getsockname())
    with AuditLog(log_path, sinks=[sink]) as log:
        log.decision("p", "1", "fs.read", "/secret", decision())
        log.lifecycle("p", "1", "loaded")
    msgs = [srv.recv(65536).decode() for _ in range(2)]
    srv.close()
    file_lines = open(log_path).read().splitlines()
    for msg, line in zip(msgs, file_lines):
        m = RFC5424.match(msg)
        assert m, msg
        pri, ts, host, pid, msgid, seq, h, body = m.groups()
        assert body == line and h == line_hash(line.encode())
        rec = json.loads(body)
        assert (ts, int(pid), msgid, int(seq)) == (rec["time"], rec["pid"], rec["kind"],
                                                  rec["seq"])
    # authpriv (10) * 8 + warning (4) for a deny; info (6) for a lifecycle event
    assert RFC5424.match(msgs[0]).group(1) == str(10 * 8 + 4)
    assert RFC5424.match(msgs[1]).group(1) == str(10 * 8 + 6)


def test_a_failing_sink_never_breaks_the_log(log_path):
    class Broken:
        def emit(self, line, rec):
            raise OSError("collector down")

        def close(self):
            raise OSError("still down")

    log = AuditLog(log_path, sinks=[Broken()])
    assert log.decision("p", "1", "fs.read", "/a", decision()) == 1
    log.close()
    assert log.counters()["errors"] == 1
    assert verify(log_path).records == 1
