"""AuditLog: the writer.

Deny and ask decisions, audit-mode would-be denials, lifecycle events and policy reloads
are written synchronously: when the call returns, the record is in the file (``write(2)``
done, so it survives the process being killed; ``fsync=True`` also survives power loss).
Allow decisions go through a bounded queue to one background thread that writes them in
batches; ``flush()`` waits for it and an ``atexit`` handler flushes at exit.

Every append happens under a ``filelock.FileLock`` on the sidecar ``<log>.lock``. Under
the lock the writer checks whether someone else appended (file identity and size); if so it
re-reads the file's tail to continue the chain from the true last record. A torn last line
left by a writer that died mid-write is closed with a newline and followed by a
``recovered`` record carrying the fragment's length and hash, so ``verify`` can tell a crash
from tampering.

Audit hooks: everything this module does to files runs with a thread-local flag set;
``writing()`` returns it so the enforcer's hook can let the writer's own ``open``/``rename``
events pass without deciding (and without recursing into the log). The background thread
has the flag set for its whole life.
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import json
import json.encoder
import os
import threading
import weakref
from dataclasses import dataclass

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

import filelock
import platformdirs

from ._records import (
    GENESIS,
    LIFECYCLE_EVENTS,
    SCHEMA_VERSION,
    AuditError,
    canonical,
    check_record,
    host_name,
    line_hash,
    plain,
    rotated_files,
    rotated_name,
    utc_now,
)
from ._redact import Redactor

LOG_ENV = "PROMPTLINE_AUDIT_LOG"
"""Environment variable naming the audit log path (overrides the default)."""

DEFAULT_QUEUE_SIZE = 10_000  # allow records buffered for the background writer
DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024  # the active file is rotated past this size
_TAIL_CHUNK = 8192  # first read when looking for the last record of a file
_MAX_RECORD_BYTES = 16 * 1024 * 1024  # a "last line" longer than this is not ours
_EXIT_FLUSH_TIMEOUT = 10.0  # seconds the atexit handler waits for pending allows
_PROMPTED = ("prompt-once", "prompt-always")

_BATCH = 1000  # the writer waits for this many allows (or _LINGER) before a write
_LINGER = 0.005  # seconds the woken writer lets a batch build up (allows may be batched)

_tls = threading.local()


class _SidecarLock:
    """An exclusive ``flock(2)`` on ``<log>.lock``, kept open between acquisitions.

    Same lock as ``filelock.FileLock`` on that path (which also uses ``flock`` on POSIX),
    so either can guard the log, but ~2 µs instead of ~270 µs per acquire measured here
    (FileLock re-opens the file every time). Re-opens if the lock file was replaced.
    Elsewhere (Windows) it delegates to ``filelock.FileLock``.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd = -1
        self._fallback = None if fcntl is not None else filelock.FileLock(
            path, mode=0o600, thread_local=False, is_singleton=False)

    def acquire(self) -> None:
        if self._fallback is not None:
            self._fallback.acquire()
            return
        while True:
            if self._fd < 0:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                st = os.stat(self._path)
            except FileNotFoundError:
                st = None
            mine = os.fstat(self._fd)
            if st is not None and (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                return
            os.close(self._fd)  # the lock file was removed or replaced: lock the new one
            self._fd = -1

    def release(self) -> None:
        if self._fallback is not None:
            self._fallback.release()
        elif self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def writing() -> bool:
    """True while the current thread is inside the audit writer.

    The enforcer's audit hook checks this first and lets such events through undecided:
    they are the writer opening, locking, rotating or deleting its own files.
    """
    return getattr(_tls, "active", False)


def default_log_path() -> str:
    """``$PROMPTLINE_AUDIT_LOG``, else ``<user state dir>/promptline/audit.jsonl``."""
    env = os.environ.get(LOG_ENV)
    if env:
        return os.path.abspath(os.path.expanduser(env))
    return os.path.join(platformdirs.user_state_dir("promptline"), "audit.jsonl")


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """How the log is written.

    ``log_allows``: write allow decisions (denies, asks, audit-mode would-be denials and
    prompted allows are always written). ``fsync``: fsync every write (power-loss safe,
    slower). ``rotate_bytes``: rotate the active file past this size (None: never).
    ``retention``: rotated files to keep (None: all). ``backpressure``: when the allow queue
    is full, ``"drop"`` the allow and count it in a ``dropped`` record, or ``"block"`` the
    caller until there is room. ``mask_fields``: request fields to mask, by name at any
    depth (``query``) or by dotted path (``args.headers.x-key``).
    """

    log_allows: bool = True
    fsync: bool = False
    rotate_bytes: int | None = DEFAULT_ROTATE_BYTES
    retention: int | None = None
    backpressure: str = "drop"
    queue_size: int = DEFAULT_QUEUE_SIZE
    mask_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.backpressure not in ("drop", "block"):
            raise ValueError(f"backpressure must be `drop` or `block`, not `{self.backpressure}`")
        if self.queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if self.rotate_bytes is not None and self.rotate_bytes < 1:
            raise ValueError("rotate_bytes must be positive or None")
        if self.retention is not None and self.retention < 0:
            raise ValueError("retention must be 0 or more, or None")
        if not isinstance(self.mask_fields, tuple):
            object.__setattr__(self, "mask_fields", tuple(self.mask_fields))


def _text(value: object) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    v = getattr(value, "value", None)  # str enums from policy
    return v if type(v) is str else str(plain(value))


_enc_str = json.encoder.encode_basestring  # JSON string literal, ensure_ascii=False (C)
_enc = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                        allow_nan=False).encode
_HOST_JSON = _enc_str(host_name())
_sha256 = hashlib.sha256


def _no_surrogates(value: object) -> object:
    """``value`` with lone surrogates (undecodable file names) escaped as text."""
    t = type(value)
    if t is str:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if t is dict:
        return {_no_surrogates(k): _no_surrogates(v) for k, v in value.items()}
    if t is list:
        return [_no_surrogates(v) for v in value]
    return value


def _chain(items: list, seq: int, prev: str) -> tuple[list[str], bytes, int, str]:
    """Give each item its seq and prev; return (lines, bytes to append, last seq, last hash).

    An item is a dict (serialized here) or a (head, middle, tail) triple of canonical JSON
    pieces around the ``prev`` value and the ``seq`` number.
    """
    lines = []
    encoded = []
    for item in items:
        seq += 1
        if type(item) is tuple:
            line = f"{item[0]}{prev}{item[1]}{seq}{item[2]}"
        else:
            item["seq"] = seq
            item["prev"] = prev
            line = canonical(item)
        try:
            raw = line.encode()
        except UnicodeEncodeError:
            line = canonical(_no_surrogates(json.loads(line)))
            raw = line.encode()
        prev = _sha256(raw).hexdigest()
        lines.append(line)
        encoded.append(raw)
    encoded.append(b"")
    return lines, b"\n".join(encoded), seq, prev


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_tail(fd: int, size: int, path: str) -> tuple[bytes | None, bytes]:
    """(last whole line or None, bytes after the last newline) of the file open as ``fd``."""
    n = min(size, _TAIL_CHUNK)
    while True:
        data = os.pread(fd, n, size - n)
        j = data.rfind(b"\n")
        if j >= 0:
            k = data.rfind(b"\n", 0, j)
            if k >= 0 or n == size:
                return data[k + 1:j], data[j + 1:]
        elif n == size:
            return None, data
        if n >= _MAX_RECORD_BYTES:
            raise AuditError(f"`{path}` is not a PromptLine audit log (its last line is longer "
                             f"than any record): move it aside or choose another log path")
        n = min(size, n * 4)


def _parse_record(line: bytes) -> dict | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if check_record(rec) is None else None


def _flush_at_exit(ref: weakref.ref) -> None:
    log = ref()
    if log is not None:
        try:
            log.flush(timeout=_EXIT_FLUSH_TIMEOUT)
        except Exception:  # noqa: BLE001  (nothing useful to do at interpreter exit)
            pass


class AuditLog:
    """An append-only, hash-chained JSON Lines audit log.

    ``path`` None writes to ``sinks`` only (the chain is then kept in memory). ``sinks``
    receive every record after it is in the file, outside the lock (see ``_sinks``).
    Safe for several threads and several processes sharing one ``path``.
    """

    def __init__(self, path: str | os.PathLike | None, settings: AuditSettings | None = None,
                 *, sinks: tuple | list = ()) -> None:
        self._path = None if path is None else os.path.abspath(os.fspath(path))
        self._settings = settings or AuditSettings()
        self._redactor = Redactor(self._settings.mask_fields)
        self._sinks = tuple(sinks)
        self._start_lock = threading.Lock()
        self._init_runtime()

    def _init_runtime(self) -> None:
        """State that belongs to one process (re-made in a forked child)."""
        self._pid = os.getpid()
        self._wlock = threading.Lock()
        self._flock = _SidecarLock(self._path + ".lock") if self._path else None
        self._flushing = 0
        self._fd = -1
        self._fd_id: tuple[int, int] | None = None
        self._tail: tuple[int, int, int, int, str] | None = None  # dev, ino, size, seq, hash
        self._mem = (0, GENESIS)
        self._cv = threading.Condition(threading.Lock())
        self._queue: collections.deque = collections.deque()
        self._enqueued = 0
        self._done = 0
        self._dropped_pending = 0
        self._busy = 0  # batches taken from the queue and not yet written
        self._idle = True
        self._closing = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._counters = {"written": 0, "dropped": 0, "errors": 0}
        self.last_error: BaseException | None = None

    @property
    def path(self) -> str | None:
        return self._path

    @property
    def settings(self) -> AuditSettings:
        return self._settings

    def counters(self) -> dict[str, int]:
        """Records written, allows dropped by back-pressure, records lost to write errors,
        and allows still queued."""
        with self._cv:
            return dict(self._counters, queued=len(self._queue))

    # -- public API -----------------------------------------------------------------------

    def decision(self, plugin_id: str, plugin_version: str, action: str, resource: str,
                 decision: dict, request: dict | None = None, message: str = "") -> int | None:
        """Record one decision (``decision`` is ``policy.Decision.to_dict()``).

        Deny, ask and audit-mode would-be denials are durable when this returns, and their
        seq is returned; allows are queued (None). Raises AuditError when a durable record
        cannot be written: the caller must then refuse the guarded call.
        """
        if type(decision) is not dict:
            decision = decision.to_dict()
        verdict = _text(decision.get("verdict"))
        decided_by = _text(decision.get("decided_by"))
        would_deny = bool(decision.get("would_deny", False))
        durable = verdict != "allow" or would_deny
        if not durable and not self._settings.log_allows and decided_by not in _PROMPTED:
            return None
        red = self._redactor.text
        E = _enc_str
        rules = []
        first_id = first_origin = "null"
        for r in decision.get("rules") or ():
            if type(r) is not dict:
                r = r.to_dict()
            rid, origin = E(_text(r.get("id"))), E(_text(r.get("origin")))
            if not rules:
                first_id, first_origin = rid, origin
            rules.append(f'{{"effect":{E(_text(r.get("effect")))},"id":{rid},'
                         f'"layer":{E(_text(r.get("layer")))},'
                         f'"message":{E(red(_text(r.get("message"))))},'
                         f'"mode":{E(_text(r.get("mode") or "enforce"))},"origin":{origin}}}')
        if self._pid != os.getpid():
            self._after_fork()
        action = _text(action)
        errors = ",".join([E(red(_text(e))) for e in decision.get("errors") or ()])
        request_json = ""
        if request is not None:
            request_json = ('"request":' + _enc(self._redactor.payload(plain(request), action))
                            + ",")
        # Canonical JSON written field by field (keys in sorted order) so the hot path
        # avoids a dict and json.dumps; the writer splices in prev and seq. A test checks
        # that the result equals canonical(json.loads(line)).
        head = (f'{{"action":{E(action)},"decided_by":{E(decided_by)},"decision":{E(verdict)},'
                f'"errors":[{errors}],"hint":{E(red(_text(decision.get("hint"))))},'
                f'"host":{_HOST_JSON},"kind":"decision","message":{E(red(_text(message)))},'
                f'"pid":{self._pid},"plugin":{{"id":{E(_text(plugin_id))},'
                f'"version":{E(_text(plugin_version))}}},'
                f'"policy_version":{E(_text(decision.get("policy_version")))},"prev":"')
        middle = (f'",{request_json}"resource":{E(red(_text(resource)))},"rule":{first_id},'
                  f'"rule_origin":{first_origin},"rules":[{",".join(rules)}],"seq":')
        tail = (f',"time":"{utc_now()}","v":{SCHEMA_VERSION},'
                f'"would_deny":{"true" if would_deny else "false"}}}')
        item = (head, middle, tail)
        if durable:
            return self._write_now(item)
        self._enqueue(item)
        return None

    def lifecycle(self, plugin_id: str, plugin_version: str, event: str,
                  detail: str = "") -> int | None:
        """Record a plugin lifecycle event (one of ``LIFECYCLE_EVENTS``); durable."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"unknown lifecycle event `{event}` — use one of "
                             f"{', '.join(LIFECYCLE_EVENTS)}")
        return self._write_now(self._base("lifecycle", {
            "plugin": {"id": _text(plugin_id), "version": _text(plugin_version)},
            "event": event, "detail": self._redactor.text(_text(detail))}))

    def policy_reload(self, ok: bool, version: str, error: str = "") -> int | None:
        """Record a policy reload: the new version in force, or the error that kept the old."""
        return self._write_now(self._base("policy_reload", {
            "ok": bool(ok), "policy_version": _text(version),
            "error": self._redactor.text(_text(error))}))

    def start(self) -> None:
        """Start the background writer now (it otherwise starts with the first queued allow).

        The enforcer calls this at install time, outside any plugin's context.
        """
        if self._pid != os.getpid():
            self._after_fork()
        self._ensure_thread()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every allow queued before this call is written; False on timeout."""
        if self._pid != os.getpid():
            self._after_fork()
            return True
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            self._drain_here()
            return True
        with self._cv:
            target = self._enqueued
            self._flushing += 1
            self._cv.notify_all()
            try:
                return self._cv.wait_for(
                    lambda: (self._done >= target and not self._dropped_pending
                             and not self._busy) or not thread.is_alive(), timeout)
            finally:
                self._flushing -= 1

    def close(self) -> None:
        """Flush, stop the background writer, close the file and the sinks."""
        if self._closed:
            return
        self.flush()
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_EXIT_FLUSH_TIMEOUT)
        self._drain_here()
        with self._wlock:
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._flock is not None:
                self._flock.close()
        for sink in self._sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001  (a broken sink must not break close)
                self.last_error = exc
        self._thread = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- record plumbing ------------------------------------------------------------------

    def _base(self, kind: str, fields: dict) -> dict:
        if self._pid != os.getpid():
            self._after_fork()
        body = {"v": SCHEMA_VERSION, "time": utc_now(), "pid": self._pid, "host": host_name(),
                "kind": kind}
        body.update(fields)
        return body

    def _write_now(self, item: dict | tuple) -> int | None:
        if writing():
            # Re-entered from inside our own write (an audit hook that did not check
            # writing()): queue it rather than deadlock; it is never dropped.
            self._enqueue(item, force=True)
            return None
        # Allows still queued happened before this record: write them first, in one append,
        # so a process's records keep the order of its calls.
        with self._cv:
            batch, dropped = self._take()
        try:
            items = batch + self._dropped_records(dropped) + [item]
            lines, seq = self._append(items)
        finally:
            if batch or dropped:
                with self._cv:
                    self._done += len(batch)
                    self._busy -= 1
                    self._cv.notify_all()
        self._emit(lines)
        return seq

    def _enqueue(self, body: dict, force: bool = False) -> None:
        if self._closed:
            self._emit(self._append([body])[0])
            return
        force = force or writing()
        cv = self._cv
        with cv:
            q = self._queue
            if len(q) >= self._settings.queue_size and not force:
                if self._settings.backpressure == "drop":
                    self._dropped_pending += 1
                    self._counters["dropped"] += 1
                    cv.notify_all()
                    return
                while len(self._queue) >= self._settings.queue_size and not self._closing:
                    cv.notify_all()
                    cv.wait()
                q = self._queue
            q.append(body)
            self._enqueued += 1
            if self._idle:
                cv.notify_all()
        if self._thread is None:
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            old = getattr(_tls, "active", False)
            _tls.active = True  # thread creation raises audit events: they are ours
            try:
                t = threading.Thread(target=self._run, name="promptline-audit-writer",
                                     daemon=True)
                t.start()
                self._thread = t
                atexit.register(_flush_at_exit, weakref.ref(self))
            finally:
                _tls.active = old

    def _take(self) -> tuple[list, int]:
        """Under ``_cv``: take the queued records and the pending drop count."""
        batch = self._queue
        if batch:
            self._queue = collections.deque()
        dropped = self._dropped_pending
        self._dropped_pending = 0
        if batch or dropped:
            self._busy += 1  # the taker decrements it once written
        self._cv.notify_all()  # producers waiting for room
        return list(batch), dropped

    def _run(self) -> None:
        _tls.active = True
        cv = self._cv
        while True:
            with cv:
                while not self._queue and not self._dropped_pending and not self._closing:
                    self._idle = True
                    cv.wait()
                self._idle = False
                if (len(self._queue) < min(_BATCH, self._settings.queue_size)
                        and not self._flushing and not self._closing):
                    cv.wait(_LINGER)  # let a batch build up; flush() and close() cut it short
                batch, dropped = self._take()
                closing = self._closing
            self._write_batch(batch, dropped)
            if closing:
                with cv:
                    if not self._queue and not self._dropped_pending:
                        return

    def _drain_here(self) -> None:
        """Write whatever is queued from the calling thread (no writer thread running)."""
        with self._cv:
            batch, dropped = self._take()
        if batch or dropped:
            old = getattr(_tls, "active", False)
            _tls.active = True
            try:
                self._write_batch(batch, dropped)
            finally:
                _tls.active = old

    def _dropped_records(self, dropped: int) -> list[dict]:
        if not dropped:
            return []
        return [self._base("dropped", {
            "count": dropped,
            "message": f"{dropped} allow record(s) dropped: the audit writer fell behind "
                       f"(backpressure=drop)"})]

    def _write_batch(self, batch: list, dropped: int) -> None:
        """Write what ``_take`` returned (which counted it busy)."""
        if not batch and not dropped:
            return
        bodies = batch + self._dropped_records(dropped)
        try:
            if bodies:
                self._emit(self._append(bodies)[0])
        except Exception as exc:  # noqa: BLE001  (counted and kept; flush must not hang)
            with self._cv:
                self._counters["errors"] += len(bodies)
            self.last_error = exc
        with self._cv:
            self._done += len(batch)
            self._busy -= 1
            self._cv.notify_all()

    def _emit(self, lines: list[str]) -> None:
        if not self._sinks:
            return
        pairs = [(line, json.loads(line)) for line in lines]
        for sink in self._sinks:
            for line, rec in pairs:
                try:
                    sink.emit(line, rec)
                except Exception as exc:  # noqa: BLE001  (sinks are best effort)
                    self.last_error = exc
                    with self._cv:
                        self._counters["errors"] += 1

    def _after_fork(self) -> None:
        """In a forked child: drop the parent's queue, thread, locks and descriptor."""
        fds = [self._fd, self._flock._fd if self._flock is not None else -1]
        self._start_lock = threading.Lock()
        self._init_runtime()
        for fd in fds:  # the parent's descriptors (closing ours never unlocks the parent's)
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    # -- the append itself ----------------------------------------------------------------

    def _append(self, items: list) -> tuple[list[str], int]:
        """Chain and append ``items``; return the lines written and the last seq."""
        old = getattr(_tls, "active", False)
        _tls.active = True
        try:
            with self._wlock:
                if self._path is None:
                    seq, prev = self._mem
                    lines, data, seq, prev = _chain(items, seq, prev)
                    self._mem = (seq, prev)
                    with self._cv:
                        self._counters["written"] += len(lines)
                    return lines, seq
                try:
                    self._flock.acquire()
                except Exception as exc:
                    raise AuditError(f"cannot lock audit log `{self._path}.lock`: {exc}") from exc
                try:
                    return self._append_locked(items)
                except OSError as exc:
                    self._tail = None
                    raise AuditError(f"cannot write audit log `{self._path}`: "
                                     f"{exc.strerror or exc}") from exc
                finally:
                    self._flock.release()
        finally:
            _tls.active = old

    def _append_locked(self, items: list) -> tuple[list[str], int]:
        fd = self._open()
        st = os.fstat(fd)
        size = st.st_size
        extra: list[str] = []
        prefix = b""
        t = self._tail
        if t is not None and t[0] == st.st_dev and t[1] == st.st_ino and t[2] == size:
            seq, prev = t[3], t[4]
        else:
            seq, prev, prefix, extra = self._chain_state(fd, size)
        lines, data, seq, prev = _chain(items, seq, prev)
        if prefix:
            data = prefix + data
        _write_all(fd, data)
        if self._settings.fsync:
            os.fsync(fd)
        size += len(data)
        self._tail = (st.st_dev, st.st_ino, size, seq, prev)
        with self._cv:
            self._counters["written"] += len(lines) + len(extra)
        rotate = self._settings.rotate_bytes
        if rotate is not None and size >= rotate:
            self._rotate()
        return extra + lines, seq

    def _open(self) -> int:
        path = self._path
        if self._fd >= 0:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_dev, st.st_ino) == self._fd_id:
                return self._fd
            os.close(self._fd)  # rotated or removed by another process
            self._fd = -1
            self._tail = None
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        st = os.fstat(fd)
        self._fd, self._fd_id = fd, (st.st_dev, st.st_ino)
        return fd

    def _not_ours(self, path: str, why: str) -> AuditError:
        return AuditError(f"`{path}` is not a PromptLine audit log ({why} in its last line): "
                          f"move it aside or choose another log path")

    def _chain_state(self, fd: int, size: int) -> tuple[int, str, bytes, list]:
        """(last seq, last hash, bytes to write first, records those bytes hold)."""
        if size == 0:
            seq, prev = self._rotated_tail()
            return seq, prev, b"", []
        last, frag = _read_tail(fd, size, self._path)
        if last is not None:
            rec = _parse_record(last)
            if rec is None:
                raise self._not_ours(self._path, "no audit record")
            seq, prev = rec["seq"], line_hash(last)
        else:
            seq, prev = self._rotated_tail()
        if not frag:
            return seq, prev, b"", []
        rec = _parse_record(frag)
        if rec is not None and rec["seq"] == seq + 1 and rec["prev"] == prev:
            # a whole record whose newline was not written: just end the line
            return rec["seq"], line_hash(frag), b"\n", []
        # a torn record: end the line and say so in the chain
        body = self._base("recovered", {
            "torn_bytes": len(frag), "torn_sha256": hashlib.sha256(frag).hexdigest(),
            "message": "the previous line is a record torn by a writer that died mid-write"})
        lines, data, seq, prev = _chain([body], seq, prev)
        return seq, prev, b"\n" + data, lines

    def _rotated_tail(self) -> tuple[int, str]:
        files = rotated_files(self._path)
        if not files:
            return 0, GENESIS
        newest = files[-1][1]
        fd = os.open(newest, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            last, _frag = _read_tail(fd, size, newest) if size else (None, b"")
        finally:
            os.close(fd)
        rec = _parse_record(last) if last is not None else None
        if rec is None:
            raise self._not_ours(newest, "no audit record")
        return rec["seq"], line_hash(last)

    def _rotate(self) -> None:
        files = rotated_files(self._path)
        number = files[-1][0] + 1 if files else 1
        os.rename(self._path, rotated_name(self._path, number))
        os.close(self._fd)
        self._fd, self._fd_id, self._tail = -1, None, None
        keep = self._settings.retention
        if keep is not None:
            files = rotated_files(self._path)
            for _n, old in files[:max(0, len(files) - keep)]:
                try:
                    os.remove(old)
                except FileNotFoundError:
                    pass
