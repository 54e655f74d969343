"""Audit shipping: forward records to a fleet's collector, asynchronously, from a bounded queue.

The local hash-chained log stays the source of truth; shipping is a copy. ``ShippingSink`` is
an ``AuditLog`` sink whose ``emit`` only appends to a bounded in-memory queue and returns (it
never waits on the network), so a slow or dead collector never blocks a guarded call. A
background thread sends batches through a transport, retrying with backoff:

- ``forwarded``: records the collector accepted;
- ``delayed``: of those, records that were waiting while a send failed, or waited in the
  queue over ``DELAYED_S``;
- ``dropped``: records never forwarded (queue full, older than ``retry_for``, or still queued
  at close);
- ``failures``: failed send attempts; ``last_error`` the newest reason.

The counters are written to ``state_path`` (next to the log: ``<log>.ship.<name>.json``) at
most once a second and at close, so ``promptline audit stats`` shows them for a running host.

Transports: ``SyslogTcpTransport`` (RFC 5424 over TCP with RFC 6587 octet-counting framing,
e.g. rsyslog's ``imtcp``) and ``OtlpHttpTransport`` (OpenTelemetry logs over OTLP/HTTP with
the official ``opentelemetry-sdk`` exporter, imported only when used).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import glob
import json
import os
import socket
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from ._sinks import _FACILITY, _severity, rfc5424

DELAYED_S = 1.0            # a record forwarded later than this after it was written counts as delayed
DEFAULT_QUEUE = 10_000
BATCH = 256
SEND_BUFFER = 64 * 1024    # bytes of kernel send buffer for a syslog connection
STATE_EVERY_S = 1.0


class Transport(Protocol):
    """Sends one batch of (line, record) pairs; raises OSError when the collector did not take them."""

    name: str

    def send(self, batch: Sequence[tuple[str, dict]]) -> None: ...

    def close(self) -> None: ...


class ShippingSink:
    """An audit sink forwarding records through ``transport`` from a queue of ``queue_size``."""

    def __init__(self, transport: Transport, *, queue_size: int = DEFAULT_QUEUE, retry_for: float = 300.0,
                 state_path: str | os.PathLike | None = None, backoff_max: float = 5.0) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.transport = transport
        self.queue_size = queue_size
        self.retry_for = retry_for
        self.backoff_max = backoff_max
        self.state_path = os.fspath(state_path) if state_path is not None else None
        self._queue: collections.deque[tuple[float, str, dict]] = collections.deque()
        self._cv = threading.Condition()
        self._counters = {"forwarded": 0, "delayed": 0, "dropped": 0, "failures": 0}
        self._last_error = ""
        self._closing = False
        self._abandoned = False              # close gave up on the worker and counted its batch
        self._inflight = 0
        self._state_at = 0.0
        self._down = False                   # the last send attempt failed
        self._recovered_at = float("-inf")   # when the first send after a failure began
        self._thread = threading.Thread(target=self._run, name=f"promptline-ship-{transport.name}", daemon=True)
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- the sink interface (called by AuditLog, outside its locks) ----------------------

    def emit(self, line: str, record: dict) -> None:
        with self._cv:
            if self._closing or len(self._queue) >= self.queue_size:
                self._counters["dropped"] += 1
                return
            self._queue.append((time.monotonic(), line, record))
            self._cv.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued for up to ``timeout`` seconds; the rest counts as dropped.
        Runs by itself at interpreter exit (after the AuditLog's own final flush)."""
        with self._cv:
            if self._closing:
                return
            deadline = time.monotonic() + timeout
            while (self._queue or self._inflight) and time.monotonic() < deadline and self._thread.is_alive():
                self._cv.wait(0.05)
            self._closing = True
            self._counters["dropped"] += len(self._queue)
            self._queue.clear()
            self._cv.notify_all()
        # a batch stuck in a send is cut off: the worker sees the failure while closing and
        # counts that batch as dropped itself
        abort = getattr(self.transport, "abort", None)
        if abort is not None:
            with contextlib.suppress(Exception):
                abort()
        self._thread.join(timeout=max(1.0, deadline - time.monotonic()))
        with self._cv:
            if self._thread.is_alive():          # a transport that cannot be cut off
                self._counters["dropped"] += self._inflight
                self._inflight = 0
                self._abandoned = True
        with contextlib.suppress(Exception):
            self.transport.close()
        self._write_state(force=True)

    def stats(self) -> dict[str, Any]:
        with self._cv:
            return dict(self._counters, queued=len(self._queue) + self._inflight, last_error=self._last_error,
                        transport=self.transport.name)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is empty (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._queue or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
        return True

    # -- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    self._cv.wait(STATE_EVERY_S)
                    self._write_state()
                if self._closing:
                    return
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                self._inflight = len(batch)
            retried = False
            while True:
                started = time.monotonic()
                try:
                    self.transport.send([(line, rec) for _, line, rec in batch])
                    err = None
                except Exception as exc:  # noqa: BLE001 - any transport failure is a failed attempt
                    err = exc
                with self._cv:
                    if self._abandoned:
                        return
                    if err is None:
                        now = time.monotonic()
                        if self._down:
                            self._down, self._recovered_at = False, started
                        late = sum(1 for t, _, _ in batch
                                   if retried or t < self._recovered_at or now - t > DELAYED_S)
                        self._counters["forwarded"] += len(batch)
                        self._counters["delayed"] += late
                        self._inflight = 0
                        backoff = 0.0
                        self._cv.notify_all()
                        break
                    self._counters["failures"] += 1
                    self._down = True
                    self._last_error = f"{type(err).__name__}: {str(err)[:200]}"
                    expired = [b for b in batch if time.monotonic() - b[0] > self.retry_for]
                    if expired:
                        self._counters["dropped"] += len(expired)
                        batch = [b for b in batch if b not in expired]
                        self._inflight = len(batch)
                    if self._closing or not batch:
                        self._counters["dropped"] += len(batch)
                        self._inflight = 0
                        self._cv.notify_all()
                        break
                    backoff = min(self.backoff_max, max(0.05, backoff * 2))
                    self._cv.wait(backoff)
                    if self._closing:
                        self._counters["dropped"] += len(batch)
                        self._inflight = 0
                        self._cv.notify_all()
                        break
                    retried = True
            self._write_state()

    def _write_state(self, force: bool = False) -> None:
        if self.state_path is None:
            return
        now = time.monotonic()
        if not force and now - self._state_at < STATE_EVERY_S:
            return
        self._state_at = now
        data = dict(self._counters, queued=len(self._queue) + self._inflight, last_error=self._last_error,
                    transport=self.transport.name, pid=os.getpid(),
                    updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        tmp = f"{self.state_path}.{os.getpid()}.tmp"
        with contextlib.suppress(OSError):
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.state_path)


def _close_at_exit(ref: weakref.ref) -> None:
    sink = ref()
    if sink is not None:
        sink.close(timeout=2.0)


def shipping_state(log_path: str | os.PathLike) -> dict[str, dict]:
    """The counters each shipping sink of the log at ``log_path`` last wrote, by transport."""
    out = {}
    for p in sorted(glob.glob(glob.escape(os.fspath(log_path)) + ".ship.*.json")):
        with contextlib.suppress(OSError, ValueError):
            with open(p, encoding="utf-8") as fh:
                data = json.load(fh)
            if isinstance(data, dict):
                out[str(data.get("transport") or p)] = data
    return out


# -- transports ---------------------------------------------------------------------------


class SyslogTcpTransport:
    """RFC 5424 messages over TCP, octet-counted (RFC 6587 §3.4.1): ``LEN SP <PRI>1 ...``."""

    def __init__(self, host: str, port: int, *, app_name: str = "promptline", facility: int = _FACILITY,
                 timeout: float = 5.0, send_buffer: int = SEND_BUFFER) -> None:
        self.host, self.port = host, port
        self.send_buffer = send_buffer
        self.app_name = app_name
        self.facility = facility
        self.timeout = timeout
        self.name = f"syslog+tcp://{host}:{port}"
        self._sock: socket.socket | None = None

    def send(self, batch: Sequence[tuple[str, dict]]) -> None:
        frames = []
        for line, record in batch:
            msg = f"<{self.facility * 8 + _severity(record)}>{rfc5424(line, record, self.app_name)}".encode()
            frames.append(b"%d %s" % (len(msg), msg))
        sock = self._sock
        if sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            # bounded: what a collector has not read waits in our queue (and is counted), not
            # in megabytes of kernel buffer that would be lost unseen
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            self._sock = sock
        try:
            sock.sendall(b"".join(frames))
        except OSError:
            self.close()
            raise

    def abort(self) -> None:
        """Cut off a send blocked in another thread (it fails with an OSError)."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


class OtlpHttpTransport:
    """OpenTelemetry logs over OTLP/HTTP (protobuf) with the official SDK exporter. The body
    of each log is the record's canonical JSON line; seq, kind, hash and the decision are
    attributes."""

    def __init__(self, endpoint: str, *, headers: Mapping[str, str] | None = None, timeout: float = 5.0,
                 service_name: str = "promptline") -> None:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        self.name = f"otlp+{endpoint}"
        self._exporter = OTLPLogExporter(endpoint=endpoint, headers=dict(headers or {}), timeout=timeout)
        self._resource = Resource.create({"service.name": service_name, "host.name": socket.gethostname()})
        self._scope = InstrumentationScope("promptline.audit")

    def send(self, batch: Sequence[tuple[str, dict]]) -> None:
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.sdk._logs import ReadableLogRecord
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        from ._records import line_hash
        numbers = {3: SeverityNumber.ERROR, 4: SeverityNumber.WARN, 5: SeverityNumber.INFO2, 6: SeverityNumber.INFO}
        items = []
        for line, record in batch:
            sev = _severity(record)
            attrs: dict[str, Any] = {"promptline.seq": int(record.get("seq") or 0), "promptline.kind": str(record.get("kind", "")),
                     "promptline.hash": line_hash(line.encode())}
            for key in ("action", "decision", "rule", "resource"):
                if isinstance(record.get(key), str):
                    attrs[f"promptline.{key}"] = record[key]
            plugin = record.get("plugin")
            if isinstance(plugin, dict) and isinstance(plugin.get("id"), str):
                attrs["promptline.plugin"] = plugin["id"]
            items.append(ReadableLogRecord(LogRecord(timestamp=_ns(record.get("time")), observed_timestamp=time.time_ns(),
                                                     body=line, severity_number=numbers.get(sev, SeverityNumber.INFO),
                                                     severity_text={3: "ERROR", 4: "WARN", 5: "NOTICE"}.get(sev, "INFO"),
                                                     attributes=attrs),
                                           self._resource, self._scope))
        if self._exporter.export(items) != LogRecordExportResult.SUCCESS:
            raise OSError(f"the OTLP collector refused or did not answer ({self.name})")

    def close(self) -> None:
        self._exporter.shutdown()


def _ns(when: Any) -> int:
    from datetime import datetime
    try:
        return int(datetime.fromisoformat(str(when).replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return time.time_ns()


def transport_from_url(url: str, **options: Any) -> Transport:
    """``syslog+tcp://HOST:PORT`` (or ``tcp://``) or ``http(s)://HOST:PORT/v1/logs`` (OTLP)."""
    parts = urlsplit(url)
    if parts.scheme in ("syslog+tcp", "tcp"):
        if not parts.hostname or not parts.port:
            raise ValueError(f"`{url}` needs a host and a port — write syslog+tcp://HOST:PORT")
        return SyslogTcpTransport(parts.hostname, parts.port, **options)
    if parts.scheme in ("http", "https"):
        return OtlpHttpTransport(url, **options)
    raise ValueError(f"cannot ship audit records to `{url}` — use syslog+tcp://HOST:PORT or http(s)://HOST/v1/logs")


def shipping_sinks(urls: Sequence[str], log_path: str | os.PathLike | None, *,
                   queue_size: int = DEFAULT_QUEUE) -> list[ShippingSink]:
    """One ShippingSink per collector URL, each keeping its counters next to ``log_path``."""
    import hashlib
    sinks = []
    for url in urls:
        state = None
        if log_path is not None:
            state = f"{os.fspath(log_path)}.ship.{hashlib.sha256(url.encode()).hexdigest()[:8]}.json"
        sinks.append(ShippingSink(transport_from_url(url), queue_size=queue_size, state_path=state))
    return sinks
