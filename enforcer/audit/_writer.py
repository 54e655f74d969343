"""AuditLog: the writer, made of three rooms.

- ``_build.RecordBuilder`` says what a record holds (redacted);
- ``_chainfile.ChainedFile`` gives records their place in the chain, under the file lock,
  with rotation and recovery after a crash;
- ``_queue.BatchQueue`` holds allow records for the background writer thread.

Deny and ask decisions, audit-mode would-be denials, lifecycle events and policy reloads
are written synchronously: when the call returns, the record is in the file (``write(2)``
done, so it survives the process being killed; ``fsync=True`` also survives power loss).
Allow decisions are queued and written in batches; ``flush()`` waits for them and an
``atexit`` handler flushes at exit. Audit hooks: see ``writing()``.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import weakref
from dataclasses import dataclass

import platformdirs

from ._build import RecordBuilder
from ._chainfile import ChainedFile
from ._flag import writing
from ._queue import BatchQueue
from ._redact import Redactor

LOG_ENV = "PROMPTLINE_AUDIT_LOG"
"""Environment variable naming the audit log path (overrides the default)."""

DEFAULT_QUEUE_SIZE = 10_000  # allow records buffered for the background writer
DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024  # the active file is rotated past this size
_EXIT_FLUSH_TIMEOUT = 10.0  # seconds the atexit handler waits for pending allows


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
        self._init_runtime()

    def _init_runtime(self) -> None:
        """State that belongs to one process (re-made in a forked child)."""
        s = self._settings
        self._pid = os.getpid()
        self._wlock = threading.Lock()  # serializes appends within this process
        self._builder = RecordBuilder(self._redactor, s.log_allows)
        self._file = ChainedFile(self._path, self._builder, fsync=s.fsync,
                                 rotate_bytes=s.rotate_bytes, retention=s.retention)
        self._queue = BatchQueue(self._write_batch, s.queue_size, s.backpressure)
        self._errors = 0
        self._closed = False
        self._exit_hook = False
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
        return {"written": self._file.written, "dropped": self._queue.dropped,
                "errors": self._errors, "queued": self._queue.size()}

    # -- public API -----------------------------------------------------------------------

    def decision(self, plugin_id: str, plugin_version: str, action: str, resource: str,
                 decision: dict, request: dict | None = None, message: str = "", *,
                 extra: dict | None = None) -> int | None:
        """Record one decision (``decision`` is ``policy.Decision.to_dict()``).

        Deny, ask and audit-mode would-be denials are durable when this returns, and their
        seq is returned; allows are queued (None). Raises AuditError when a durable record
        cannot be written: the caller must then refuse the guarded call. ``extra`` adds
        fields to the record (e.g. ``reported_by``).
        """
        if self._pid != os.getpid():
            self._after_fork()
        item, durable = self._builder.decision(plugin_id, plugin_version, action, resource,
                                               decision, request, message, extra)
        if item is None:
            return None
        if durable:
            return self._write_now(item)
        self._enqueue(item)
        return None

    def lifecycle(self, plugin_id: str, plugin_version: str, event: str,
                  detail: str = "") -> int | None:
        """Record a plugin lifecycle event (one of ``LIFECYCLE_EVENTS``); durable."""
        if self._pid != os.getpid():
            self._after_fork()
        return self._write_now(self._builder.lifecycle(plugin_id, plugin_version, event,
                                                       detail))

    def policy_reload(self, ok: bool, version: str, error: str = "") -> int | None:
        """Record a policy reload: the new version in force, or the error that kept the old."""
        if self._pid != os.getpid():
            self._after_fork()
        return self._write_now(self._builder.policy_reload(ok, version, error))

    def plugin_reload(self, plugin_id: str, plugin_version: str, ok: bool,
                      error: str = "") -> int | None:
        """Record a plugin update under watch: ``plugin_version`` now serving (``ok``), or
        the error that kept the old instance serving; durable."""
        if self._pid != os.getpid():
            self._after_fork()
        return self._write_now(self._builder.plugin_reload(plugin_id, plugin_version, ok, error))

    def dropped(self, count: int, message: str) -> int | None:
        """Record that ``count`` records were not written (say what and why); durable."""
        if self._pid != os.getpid():
            self._after_fork()
        return self._write_now(self._builder.dropped(count, message))

    def start(self) -> None:
        """Start the background writer now (it otherwise starts with the first queued allow).

        The enforcer calls this at install time, outside any plugin's context.
        """
        if self._pid != os.getpid():
            self._after_fork()
        self._queue.start()
        self._register_exit_flush()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every allow queued before this call is written; False on timeout."""
        if self._pid != os.getpid():
            self._after_fork()
            return True
        return self._queue.flush(timeout)

    def close(self) -> None:
        """Flush, stop the background writer, close the file and the sinks."""
        if self._closed:
            return
        self.flush()
        self._queue.close(_EXIT_FLUSH_TIMEOUT)
        with self._wlock:
            self._closed = True
            self._file.close()
        for sink in self._sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001  (a broken sink must not break close)
                self.last_error = exc

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------

    def _append(self, items: list) -> tuple[list[str], int]:
        with self._wlock:
            return self._file.append(items)

    def _write_now(self, item: dict | tuple) -> int | None:
        if writing():
            # Re-entered from inside our own write (an audit hook that did not check
            # writing()): queue it rather than deadlock; it is never dropped.
            self._enqueue(item, force=True)
            return None
        # Allows still queued happened before this record: write them first, in one append,
        # so a process's records keep the order of its calls.
        batch, dropped = self._queue.take()
        try:
            lines, seq = self._append(batch + self._dropped_records(dropped) + [item])
        finally:
            if batch or dropped:
                self._queue.taken_done(len(batch))
        self._emit(lines)
        return seq

    def _enqueue(self, item: dict | tuple, force: bool = False) -> None:
        if self._closed:
            self._emit(self._append([item])[0])
            return
        self._queue.put(item, force)
        self._register_exit_flush()

    def _register_exit_flush(self) -> None:
        if not self._exit_hook:
            self._exit_hook = True
            atexit.register(_flush_at_exit, weakref.ref(self))

    def _dropped_records(self, dropped: int) -> list[dict]:
        if not dropped:
            return []
        return [self._builder.dropped(dropped, f"{dropped} allow record(s) dropped: the audit "
                                               f"writer fell behind (backpressure=drop)")]

    def _write_batch(self, batch: list, dropped: int) -> None:
        """The queue's writer: append a batch (and the drop count) in one write."""
        bodies = batch + self._dropped_records(dropped)
        try:
            self._emit(self._append(bodies)[0])
        except Exception as exc:  # noqa: BLE001  (counted and kept; flush must not hang)
            self._errors += len(bodies)
            self.last_error = exc

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
                    self._errors += 1

    def _after_fork(self) -> None:
        """In a forked child: drop the parent's queue, thread, locks and descriptor."""
        fds = self._file.descriptors()
        self._init_runtime()
        for fd in fds:  # the parent's descriptors (closing ours never unlocks the parent's)
            try:
                os.close(fd)
            except OSError:
                pass
