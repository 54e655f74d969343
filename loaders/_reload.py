"""Hot reload: watchdog observers on policy files, the grants file and plugin directories.

A policy is swapped in only when its files are known complete (DESIGN.md §9):

- no watched file is open for writing: after a write (``modified``) the file is complete
  only once it is closed (``closed``, inotify's close-write) or replaced by a rename
  (``moved``). A writer that pauses inside one ``open()`` is waited for (up to
  ``OPEN_WAIT_S``, for writers that never close, e.g. ``truncate(1)``);
- the files are settled: no event and the same size, mtime, ctime and inode over the quiet
  window (``QUIET_CHECKS`` periods of ``DEBOUNCE_S``; ``POLL_QUIET_CHECKS`` where the
  observer reports no close events);
- the end marker: a file whose text holds the line ``END_MARKER`` is complete only when that
  line is its last, and once a file was applied with the marker, a version without it is
  never applied. This is for editors and tools that write in place in several opens;
- ``mode="manual"``: changes are applied only by ``Watcher.apply()``.

The new PolicySet is compiled aside; after compiling, the watcher checks that no event
arrived and nothing changed while it compiled (else it compiles again), then swaps it in
with one reference assignment. A file that fails to load keeps the old policy in force
(the error goes to the log, ``last_reload_error`` and the audit log).
This module is the only importer of watchdog.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from ._swap import STALE, rebuild_and_swap

DEBOUNCE_S = 0.05        # quiet time after the last event before reloading
QUIET_CHECKS = 1         # debounce periods with no event and no size/mtime change
POLL_QUIET_CHECKS = 6    # the same where the observer reports no close-write events
OPEN_WAIT_S = 30.0       # a file written and never closed is taken as settled after this
END_MARKER = "# promptline: end"
"""A policy file's last line, when its writer wants partial versions never applied."""
_MAX_MARKER_READ = 1 << 20   # policy files are at most 1 MiB (the loader refuses larger)
_WAIT_LOG_S = 5.0            # how often "still waiting" is logged

log = logging.getLogger("promptline.reload")


class ReloadTarget(Protocol):
    """What a Watcher watches and reloads: a PluginManager, or a bare Enforcer's stand-in."""

    policy_files: Sequence[str]
    grants: str | None
    search_path: Any
    last_reload_error: str

    def reload_policy(self, settled: Callable[[], bool] | None = None) -> bool: ...

    def reload_plugins(self) -> Any: ...


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher, kind: str, files: frozenset[str] | None) -> None:
        self.watcher = watcher
        self.kind = kind
        self.files = files   # None: any file under the directory counts

    def on_any_event(self, event) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write"):
            return
        for attr in ("src_path", "dest_path"):
            p = getattr(event, attr, "")
            if not p:
                continue
            p = os.path.abspath(os.fsdecode(p))
            if self.files is not None and p not in self.files:
                continue
            if "__pycache__" in p:
                continue
            if self.kind == "policy":
                self.watcher.policy_event(p, kind, dest=attr == "dest_path")
            else:
                self.watcher.plugin_event(p, kind, dest=attr == "dest_path")


def _closes_reported(observer: Any) -> bool:
    """Whether this observer reports close-write (inotify does; polling and others do not)."""
    return "inotify" in type(observer).__module__.lower()


class Watcher:
    """Watches a PluginManager's policy files, grants and plugin dirs; reloads on change.

    ``mode="auto"`` applies a policy change once the files are complete (see the module
    docstring); ``mode="manual"`` only when ``apply()`` is called. ``waiting`` says why a
    change seen is not applied yet ("" when none is waiting).
    """

    def __init__(self, manager: ReloadTarget, *, debounce: float = DEBOUNCE_S,
                 mode: str = "auto") -> None:
        if mode not in ("auto", "manual"):
            raise ValueError(f"mode must be `auto` or `manual`, not `{mode}`")
        self.manager = manager
        self.debounce = debounce
        self.mode = mode
        self._observer = Observer()
        self._closes = _closes_reported(self._observer)
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self._stop = False
        self._apply = False               # apply() asked for the next policy reload
        self._events = 0                  # every event seen (policy files and plugins)
        self._last_event = 0.0            # monotonic time of the last one
        self._open: dict[str, float] = {}  # policy file -> when a write to it was seen
        self._open_plugin: dict[str, float] = {}  # the same for files under plugin dirs
        self._marked: dict[str, bool] = {}  # policy file -> applied with END_MARKER
        self._waiting_logged = 0.0
        self.waiting = ""
        self._thread = threading.Thread(target=self._run, name="promptline-reload", daemon=True)
        self.reloads = {"policy": 0, "plugins": 0, "stale": 0}

    def _watch_targets(self) -> list[tuple[str, str, frozenset[str] | None]]:
        m = self.manager
        targets: dict[tuple[str, str], set[str] | None] = {}
        for f in self._policy_paths():
            targets.setdefault(("policy", os.path.dirname(f)), set())
            entry = targets[("policy", os.path.dirname(f))]
            if entry is not None:
                entry.add(f)
        for d in m.policy_files:
            if os.path.isdir(d):
                targets[("policy", os.path.abspath(d))] = None
        from ._discovery import plugin_search_path
        dirs = m.search_path if m.search_path is not None else plugin_search_path()
        for d in dirs:
            if os.path.isdir(d):
                targets[("plugins", os.path.abspath(os.fspath(d)))] = None
        return [(kind, d, frozenset(f) if f is not None else None) for (kind, d), f in targets.items()]

    def _policy_paths(self) -> list[str]:
        m = self.manager
        files = [os.path.abspath(p) for p in m.policy_files if not os.path.isdir(p)]
        if m.grants:
            files.append(os.path.abspath(m.grants))
        return files

    def start(self) -> None:
        for p in self._policy_paths():
            self._marked[p] = _marker_state(p) is True
        for kind, directory, files in self._watch_targets():
            if os.path.isdir(directory):
                self._observer.schedule(_Handler(self, kind, files), directory,
                                        recursive=(kind == "plugins" or files is None))
        self._observer.start()
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        try:
            self._observer.stop()
            self._observer.join(timeout=5)
        except RuntimeError:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def poke(self, kind: str) -> None:
        with self._cond:
            self._events += 1
            self._last_event = time.monotonic()
            if kind != "policy" or self.mode == "auto":
                self._pending.add(kind)
            self._cond.notify_all()

    def policy_event(self, path: str, event_type: str, dest: bool = False) -> None:
        """A watchdog event on a policy file (``dest``: the file is a rename's target)."""
        with self._cond:
            if event_type == "modified" and self._closes:
                self._open.setdefault(path, time.monotonic())
            elif event_type == "closed" or event_type == "deleted" or (
                    event_type == "moved" and dest):
                self._open.pop(path, None)
        self.poke("policy")

    def plugin_event(self, path: str, event_type: str, dest: bool = False) -> None:
        """A watchdog event under a plugin directory: plugins are rebuilt once no file
        written there is still open for writing (as for policy files)."""
        with self._cond:
            if event_type == "modified" and self._closes and not os.path.isdir(path):
                self._open_plugin.setdefault(path, time.monotonic())
            elif event_type in ("closed", "deleted", "moved"):
                self._open_plugin.pop(path, None)
        self.poke("plugins")

    def apply(self) -> None:
        """Reload the policy now, as its files are (for ``mode="manual"``, or to apply a
        file an editor keeps open); the result is in ``manager.last_reload_error``."""
        with self._cond:
            self._apply = True
            self._pending.add("policy")
            self._cond.notify_all()

    # -- the reload thread ----------------------------------------------------------------

    def _snapshot(self) -> tuple:
        out = []
        for p in list(self.manager.policy_files) + ([self.manager.grants] if self.manager.grants else []):
            try:
                st = os.stat(p)
                out.append((p, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
            except OSError:
                out.append((p, None, None, None, None))
        return tuple(out)

    def _incomplete(self) -> str:
        """Why the policy files are not known complete yet ("" when they are)."""
        now = time.monotonic()
        with self._cond:
            still_open = [p for p, t in self._open.items() if now - t < OPEN_WAIT_S]
        if still_open:
            return f"`{still_open[0]}` is still open for writing (waiting for it to be closed)"
        for p in self._policy_paths():
            state = _marker_state(p)
            if state is False:
                return (f"`{p}` has `{END_MARKER}` before its end (waiting for the rest, "
                        f"or remove the marker)")
            if state is None and self._marked.get(p):
                return (f"`{p}` was applied with `{END_MARKER}` as its last line and does "
                        f"not end with it yet (waiting; end the file with it)")
        return ""

    def _plugin_incomplete(self) -> str:
        now = time.monotonic()
        with self._cond:
            still_open = [p for p, t in self._open_plugin.items() if now - t < OPEN_WAIT_S]
        if still_open:
            return f"`{still_open[0]}` is still open for writing (waiting for it to be closed)"
        return ""

    def _settle(self) -> bool:
        """Wait until ``debounce`` passed since the last event, then for ``checks`` windows
        in a row with no event and the files unchanged; False when stopped."""
        checks = QUIET_CHECKS if self._closes else POLL_QUIET_CHECKS
        quiet = 0
        last = self._snapshot()
        mark = 0.0
        while quiet < checks:
            with self._cond:
                while not self._stop:
                    left = max(self._last_event, mark) + self.debounce - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._stop:
                    return False
            now = self._snapshot()
            quiet = quiet + 1 if now == last else 0
            last = now
            mark = time.monotonic()
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
            if not self._settle():
                return
            with self._cond:
                forced = self._apply
            if "plugins" in self._pending:
                why = self._plugin_incomplete()
                if why:
                    self._wait_for_more(why)
                    continue
            if "policy" in self._pending and not forced:
                why = self._incomplete()
                if why:
                    self._wait_for_more(why)
                    continue
            self.waiting = ""
            with self._cond:
                kinds, self._pending = self._pending, set()
                self._apply = False
                token = (self._events, self._snapshot())
            # reload outside any lock of ours (callbacks never run under a held lock)
            try:
                if "plugins" in kinds:
                    self.manager.reload_plugins()
                    self.reloads["plugins"] += 1
                if "policy" in kinds:
                    self._reload_policy(token, forced)
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                log.exception("reload failed; the previous state stays")

    def _wait_for_more(self, why: str) -> None:
        self.waiting = why
        now = time.monotonic()
        if now - self._waiting_logged > _WAIT_LOG_S:
            self._waiting_logged = now
            log.info("change not applied yet: %s", why)
        with self._cond:
            if not self._stop:
                self._cond.wait(0.5)   # the next event (a close, the rest) wakes us early

    def _reload_policy(self, token: tuple, forced: bool) -> None:
        stale = []

        def settled() -> bool:
            with self._cond:
                same = self._events == token[0] and (forced or not self._open)
            same = same and self._snapshot() == token[1]
            if not same:
                stale.append(True)
            return same

        marks = {p: _marker_state(p) is True for p in self._policy_paths()}
        ok = self.manager.reload_policy(settled=settled)
        if stale:
            self.reloads["stale"] += 1
            with self._cond:
                self._pending.add("policy")
                if forced:
                    self._apply = True
            return
        self.reloads["policy"] += 1
        if ok:
            self._marked.update(marks)
        else:
            log.warning("policy reload failed, the previous policy stays: %s",
                        self.manager.last_reload_error)


def _marker_state(path: str) -> bool | None:
    """True: the file's last non-blank line is END_MARKER; False: the marker is in the file
    but not last; None: no marker (or the file cannot be read: the loader says why)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_MARKER_READ + 1)
    except OSError:
        return None
    marker = END_MARKER.encode()
    if marker not in data:
        return None
    return data.rstrip().endswith(b"\n" + marker) or data.rstrip() == marker


class _PolicyOnly:
    """What the Watcher needs from a host that has an Enforcer but no PluginManager."""

    def __init__(self, enforcer, policy_files, manifests, load_kwargs, audit_log) -> None:
        self.enforcer = enforcer
        self.policy_files = [os.fspath(p) for p in policy_files]
        self.manifests = list(manifests)
        self.grants = load_kwargs.get("grants")
        self.search_path: list[str] = []
        self.load_kwargs = load_kwargs
        self.audit_log = audit_log
        self.last_reload_error = ""

    def reload_plugins(self) -> None:
        return None

    def reload_policy(self, settled: Callable[[], bool] | None = None) -> bool:
        from promptline.policy import load_policy_set
        why = rebuild_and_swap(
            lambda: load_policy_set(self.policy_files, self.manifests, **self.load_kwargs), self.enforcer.use,
            audit_log=self.audit_log, current=self.enforcer.policy_set, settled=settled)
        if why is not STALE:
            self.last_reload_error = why
        return not why


def watch_policy(enforcer, policy_files, manifests=(), *, audit_log=None, mode: str = "auto",
                 **load_kwargs) -> Watcher:
    """Keep ``enforcer`` on the current policy: reload ``policy_files`` (and ``manifests``)
    whenever they change and are complete, keeping the old policy when a file is broken.
    Returns the started Watcher (``.stop()`` it; ``.apply()`` applies now, and is the only
    way with ``mode="manual"``; ``.manager.last_reload_error`` says why the last reload
    failed)."""
    watcher = Watcher(_PolicyOnly(enforcer, policy_files, manifests, load_kwargs, audit_log),
                      mode=mode)
    watcher.start()
    return watcher
