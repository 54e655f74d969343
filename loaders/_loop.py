"""The event loop an in-process plugin's coroutines run on: host business, not the plugin's.

``asyncio.run`` inside a plugin's guard makes the plugin create the loop — a self-pipe
(socketpair), and in the main thread a SIGINT handler — which the guard rightly refuses.
So, as the sandboxed child does, the host owns one loop per plugin: created and run by a
host thread, outside any guard; each plugin coroutine runs on it as a task that enters the
plugin's guard itself. One loop per plugin keeps loop-bound state (clients, locks, queues
made in ``initialize``) valid for every later call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from promptline.sdk import maybe_await

T = TypeVar("T")


class _DaemonThreads(concurrent.futures.ThreadPoolExecutor):
    """``asyncio.to_thread`` for plugin code: one daemon thread per job, so a synchronous
    tool hung past its timeout never holds the host's exit (pool threads are joined)."""

    def submit(self, fn, /, *args, **kwargs):
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                fut.set_exception(exc)

        threading.Thread(target=run, name=f"{self._thread_name_prefix}-job", daemon=True).start()
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


class PluginLoop:
    """One plugin's event loop on a host daemon thread; :meth:`run` awaits a plugin hook
    (sync or async) on it under ``guard``."""

    def __init__(self, name: str, guard: Callable[[], AbstractContextManager[Any]]) -> None:
        self.guard = guard
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(_DaemonThreads(thread_name_prefix=f"plugin-{name}"))
        self._thread = threading.Thread(target=self._serve, name=f"plugin-{name}-loop", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, hook: Callable[[], T | Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Start ``hook()`` (and await what it returns) as a task running as the plugin."""
        async def guarded() -> T:
            with self.guard():
                return await maybe_await(hook())
        return asyncio.run_coroutine_threadsafe(guarded(), self.loop)

    def run(self, hook: Callable[[], T | Awaitable[T]], timeout: float | None) -> T:
        """``submit`` and wait; TimeoutError (the task is cancelled) after ``timeout`` seconds."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("a plugin hook cannot wait for its own loop")
        fut = self.submit(hook)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"did not answer within {timeout:g} s") from None

    def close(self, timeout: float = 2.0) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()
