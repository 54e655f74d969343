"""The batch queue: allow records waiting for the background writer thread.

Bounded. When full, ``backpressure="drop"`` counts the record instead of queueing it (the
count reaches the chain as a ``dropped`` record, in order, with the next write) and
``"block"`` makes the producer wait for room. One daemon thread takes the queue in batches
(``BATCH`` records or ``LINGER`` seconds, whichever first) and hands each batch to
``write(batch, dropped)``.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from ._flag import mark_thread, own_writes, writing

BATCH = 1000  # the writer waits for this many records (or LINGER) before a write
LINGER = 0.005  # seconds the woken writer lets a batch build up


class BatchQueue:
    """Records queued for ``write``; safe for any number of producer threads."""

    def __init__(self, write: Callable[[list, int], None], size: int, backpressure: str) -> None:
        self._write = write
        self._size = size
        self._block = backpressure == "block"
        self._start_lock = threading.Lock()
        self._cv = threading.Condition(threading.Lock())
        self._queue: collections.deque = collections.deque()
        self._enqueued = 0
        self._done = 0
        self._dropped_pending = 0
        self._busy = 0  # batches taken from the queue and not yet written
        self._idle = True
        self._flushing = 0
        self._closing = False
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def put(self, item: object, force: bool = False) -> None:
        """Queue ``item`` (``force``: even past the bound; never dropped)."""
        force = force or writing()
        cv = self._cv
        with cv:
            q = self._queue
            if len(q) >= self._size and not force:
                if not self._block:
                    self._dropped_pending += 1
                    self.dropped += 1
                    cv.notify_all()
                    return
                while len(self._queue) >= self._size and not self._closing:
                    cv.notify_all()
                    cv.wait()
                q = self._queue
            q.append(item)
            self._enqueued += 1
            if self._idle:
                cv.notify_all()
        if self._thread is None:
            self.start()

    def take(self) -> tuple[list, int]:
        """Take every queued record and the pending drop count. A non-empty take must be
        followed by ``taken_done(len(batch))`` once written (or failed)."""
        with self._cv:
            return self._take()

    def taken_done(self, n: int) -> None:
        with self._cv:
            self._done += n
            self._busy -= 1
            self._cv.notify_all()

    def size(self) -> int:
        with self._cv:
            return len(self._queue)

    def start(self) -> None:
        """Start the writer thread (once)."""
        with self._start_lock:
            if self._thread is not None:
                return
            with own_writes():  # thread creation raises audit events: they are ours
                t = threading.Thread(target=self._run, name="promptline-audit-writer",
                                     daemon=True)
                t.start()
            self._thread = t

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record queued before this call is written; False on timeout."""
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            self.drain_here()
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

    def close(self, timeout: float) -> None:
        """Stop the thread after it wrote what is queued, then write any rest here."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.drain_here()
        self._thread = None

    def drain_here(self) -> None:
        """Write whatever is queued from the calling thread."""
        batch, dropped = self.take()
        if batch or dropped:
            with own_writes():
                self._write_taken(batch, dropped)

    # -- the thread ---------------------------------------------------------------------

    def _take(self) -> tuple[list, int]:
        batch = self._queue
        if batch:
            self._queue = collections.deque()
        dropped = self._dropped_pending
        self._dropped_pending = 0
        if batch or dropped:
            self._busy += 1
        self._cv.notify_all()  # producers waiting for room
        return list(batch), dropped

    def _write_taken(self, batch: list, dropped: int) -> None:
        try:
            self._write(batch, dropped)
        finally:
            self.taken_done(len(batch))

    def _run(self) -> None:
        mark_thread()
        cv = self._cv
        while True:
            with cv:
                while not self._queue and not self._dropped_pending and not self._closing:
                    self._idle = True
                    cv.wait()
                self._idle = False
                if (len(self._queue) < min(BATCH, self._size)
                        and not self._flushing and not self._closing):
                    cv.wait(LINGER)  # let a batch build up; flush() and close() cut it short
                batch, dropped = self._take()
                closing = self._closing
            if batch or dropped:
                self._write_taken(batch, dropped)
            if closing:
                with cv:
                    if not self._queue and not self._dropped_pending:
                        return
