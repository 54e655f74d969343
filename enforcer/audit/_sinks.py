"""Sinks: copies of every record for log shippers and fleets.

A sink is any object with ``emit(line, record)`` and ``close()``. ``AuditLog`` calls
``emit`` after the record is in the file, outside every lock, with the canonical JSON line
(no newline) and the record dict. Sink errors are counted in ``AuditLog.counters()``,
never raised into the guarded call.

- ``StdoutSink``: JSON Lines on a stream (stdout by default) for Fluent Bit, Vector, ...
- ``SyslogSink``: RFC 5424 messages through ``logging.handlers.SysLogHandler`` (UDP, TCP
  or a local socket such as ``/dev/log``). The structured data carries the record's seq
  and hash (``[promptline@32473 seq="…" hash="…"]``; 32473 is the documentation
  enterprise number of RFC 5612), so a collector off the machine holds an anchor for every
  record.
"""

from __future__ import annotations

import logging
import logging.handlers
import socket
import sys
import threading
from typing import Any, TextIO

from ._records import host_name, line_hash

SD_ID = "promptline@32473"
_FACILITY = logging.handlers.SysLogHandler.LOG_AUTHPRIV


class StdoutSink:
    """Writes each record as one JSON line to ``stream`` (default ``sys.stdout``)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, line: str, record: dict) -> None:
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def close(self) -> None:
        pass


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _severity(record: dict) -> int:
    h = logging.handlers.SysLogHandler
    kind = record.get("kind")
    if kind == "decision":
        if record.get("decision") == "deny":
            return h.LOG_WARNING
        return h.LOG_NOTICE if record.get("decision") == "ask" or record.get("would_deny") \
            else h.LOG_INFO
    if kind == "policy_reload" and not record.get("ok"):
        return h.LOG_ERR
    if kind in ("dropped", "recovered") or record.get("event") == "failed":
        return h.LOG_WARNING
    return h.LOG_INFO


def rfc5424(line: str, record: dict, app_name: str = "promptline") -> str:
    """The RFC 5424 message after ``<PRI>``: ``1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG``.

    MSGID is the record kind; the MSG is the record's JSON line.
    """
    sd = (f'[{SD_ID} seq="{record.get("seq")}" '
          f'hash="{_sd_escape(line_hash(line.encode()))}"]')
    return (f"1 {record.get('time', '-')} {record.get('host') or host_name() or '-'} "
            f"{app_name} {record.get('pid', '-')} {record.get('kind', '-')} {sd} {line}")


class _Rfc5424Formatter(logging.Formatter):
    def __init__(self, app_name: str) -> None:
        super().__init__()
        self._app = app_name

    def format(self, rec: logging.LogRecord) -> str:
        return rfc5424(rec.msg, rec.args_record, self._app)  # type: ignore[attr-defined]


class _SysLogHandler(logging.handlers.SysLogHandler):
    """Takes the severity from ``levelname`` = ``sev:N`` (set by SyslogSink)."""

    def mapPriority(self, levelName: str) -> Any:  # noqa: N802,N803  (stdlib names; may be an int)
        if levelName.startswith("sev:"):
            return int(levelName[4:])
        return super().mapPriority(levelName)


class SyslogSink:
    """Sends each record to syslog as RFC 5424 (``address``: ``(host, port)`` or a socket
    path; ``socktype``: ``socket.SOCK_DGRAM`` or ``SOCK_STREAM``)."""

    def __init__(self, address: tuple[str, int] | str = ("localhost", 514),
                 facility: int = _FACILITY, socktype: socket.SocketKind = socket.SOCK_DGRAM,
                 app_name: str = "promptline") -> None:
        self._handler = _SysLogHandler(address=address, facility=facility,
                                                       socktype=socktype)
        self._handler.append_nul = False
        self._handler.ident = ""
        self._handler.setFormatter(_Rfc5424Formatter(app_name))

    def emit(self, line: str, record: dict) -> None:
        rec = logging.LogRecord("promptline.audit", logging.INFO, __file__, 0, line, None, None)
        rec.args_record = record
        rec.levelname = f"sev:{_severity(record)}"
        self._handler.emit(rec)

    def close(self) -> None:
        self._handler.close()
