"""Hot reload: watchdog observers on policy files, the grants file and plugin directories.

Bursts of events (editors write a temp file and rename it over; some truncate, then write)
are debounced: a reload runs once the files have been quiet for ``DEBOUNCE_S``. The new
PolicySet is compiled aside and swapped in with one reference assignment; a file that fails
to load keeps the old policy in force (the error goes to the log and the audit log).
This module is the only importer of watchdog.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from ._swap import rebuild_and_swap

DEBOUNCE_S = 0.05        # quiet time after the last event before reloading
QUIET_CHECKS = 1         # debounce periods with no event and no size/mtime change

log = logging.getLogger("promptline.reload")


class ReloadTarget(Protocol):
    """What a Watcher watches and reloads: a PluginManager, or a bare Enforcer's stand-in."""

    policy_files: Sequence[str]
    grants: str | None
    search_path: Any
    last_reload_error: str

    def reload_policy(self) -> bool: ...

    def reload_plugins(self) -> Any: ...


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher, kind: str, files: frozenset[str] | None) -> None:
        self.watcher = watcher
        self.kind = kind
        self.files = files   # None: any file under the directory counts

    def on_any_event(self, event) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [getattr(event, "src_path", ""), getattr(event, "dest_path", "")]
        for p in paths:
            if not p:
                continue
            p = os.fsdecode(p)
            if self.files is None or os.path.abspath(p) in self.files:
                if "__pycache__" in p:
                    continue
                self.watcher.poke(self.kind)
                return


class Watcher:
    """Watches a PluginManager's policy files, grants and plugin dirs; reloads on change."""

    def __init__(self, manager: ReloadTarget, *, debounce: float = DEBOUNCE_S) -> None:
        self.manager = manager
        self.debounce = debounce
        self._observer = Observer()
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="promptline-reload", daemon=True)
        self.reloads = {"policy": 0, "plugins": 0}

    def _watch_targets(self) -> list[tuple[str, str, frozenset[str] | None]]:
        m = self.manager
        targets: dict[tuple[str, str], set[str] | None] = {}
        files = [os.path.abspath(p) for p in m.policy_files if not os.path.isdir(p)]
        if m.grants:
            files.append(os.path.abspath(m.grants))
        for f in files:
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

    def start(self) -> None:
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
            self._pending.add(kind)
            self._cond.notify_all()

    def _snapshot(self) -> tuple:
        out = []
        for p in self.manager.policy_files + ([self.manager.grants] if self.manager.grants else []):
            try:
                st = os.stat(p)
                out.append((p, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((p, None, None))
        return tuple(out)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
            # debounce: wait until no new event arrived for a whole period and the files are still
            quiet = 0
            last = self._snapshot()
            while quiet < QUIET_CHECKS:
                with self._cond:
                    before = set(self._pending)
                    self._cond.wait(self.debounce)
                    if self._stop:
                        return
                    grew = self._pending != before
                now = self._snapshot()
                quiet = 0 if grew or now != last else quiet + 1
                last = now
            with self._cond:
                kinds, self._pending = self._pending, set()
            # reload outside any lock of ours (callbacks never run under a held lock)
            try:
                if "plugins" in kinds:
                    self.manager.reload_plugins()
                    self.reloads["plugins"] += 1
                if "policy" in kinds:
                    ok = self.manager.reload_policy()
                    self.reloads["policy"] += 1
                    if not ok:
                        log.warning("policy reload failed, the previous policy stays: %s",
                                    self.manager.last_reload_error)
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                log.exception("reload failed; the previous state stays")


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

    def reload_policy(self) -> bool:
        from promptline.policy import load_policy_set
        self.last_reload_error = rebuild_and_swap(
            lambda: load_policy_set(self.policy_files, self.manifests, **self.load_kwargs), self.enforcer.use,
            audit_log=self.audit_log, current=self.enforcer.policy_set)
        return not self.last_reload_error


def watch_policy(enforcer, policy_files, manifests=(), *, audit_log=None, **load_kwargs) -> Watcher:
    """Keep ``enforcer`` on the current policy: reload ``policy_files`` (and ``manifests``)
    whenever they change, keeping the old policy when a file is broken. Returns the started
    Watcher (``.stop()`` it; ``.manager.last_reload_error`` says why the last reload failed)."""
    watcher = Watcher(_PolicyOnly(enforcer, policy_files, manifests, load_kwargs, audit_log))
    watcher.start()
    return watcher
