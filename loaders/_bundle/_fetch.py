"""A host's org bundle: pull it over HTTP(S), verify it, swap it in, remember the last good one.

    bundle:                                   # config file, or ManagerConfig(bundle=...)
      url: https://policy.example.com/org.bundle
      public_key: ed25519:...                 # the key the org signs bundles with
      poll: 60                                # seconds between polls

Every poll sends ``If-None-Match`` with the last ETag (a 304 costs nothing). A new bundle is
verified (signature by ``public_key``, every file's digest), must have a higher revision than
the one in force (a rollback is refused), is written aside under ``cache_dir/revisions/`` and
compiled with the host's other policy files through :func:`rebuild_and_swap`, the one
rebuild-then-swap of hot reload. Only then does it become ``cache_dir/last-good.bundle``, which
a host that cannot reach the server starts from. Every activation and every failure is in the
audit log (``policy_reload``), and in ``cache_dir/state.json`` for ``promptline policy show``.
On any failure the running policy stays.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from promptline.enforcer import write_atomic

from .._errors import LoaderError
from .._signing import parse_public_key
from ._format import MAX_BUNDLE_BYTES, Bundle, BundleError, verify_bundle

log = logging.getLogger("promptline.bundle")

LAST_GOOD = "last-good.bundle"
STATE = "state.json"
KEYS_POLICY = "bundle-trusted-keys.yaml"


@dataclass(frozen=True)
class BundleConfig:
    """Where a host's org bundle comes from. ``url`` http(s) address; ``public_key`` the
    ``ed25519:...`` key bundles must be signed with; ``poll`` seconds between polls (0: never by
    itself, only on :meth:`BundleUpdater.poll_once`); ``cache_dir`` where the last good bundle and
    the state are kept; ``timeout`` seconds for one download."""

    url: str
    public_key: str
    poll: float = 60.0
    cache_dir: str | os.PathLike | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise LoaderError(f"bundle url `{str(self.url)[:80]}` is not an http(s) URL",
                              fix="set `bundle.url` to https://host/path/org.bundle")
        parse_public_key(self.public_key)
        for name in ("poll", "timeout"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0 or (name == "timeout" and v == 0):
                raise LoaderError(f"bundle `{name}` must be a positive number of seconds, not `{v}`",
                                  fix=f"set `bundle.{name}` to e.g. 60")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], origin: str = "config") -> BundleConfig:
        """From a config file's ``bundle:`` mapping (unknown keys are refused)."""
        if not isinstance(data, Mapping):
            raise LoaderError(f"{origin}: `bundle` must be a mapping", fix="write `bundle: {url: ..., public_key: ...}`")
        known = {f.name for f in fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise LoaderError(f"{origin}: unknown bundle setting `{extra[0]}`", fix=f"use {', '.join(sorted(known))}")
        missing = [k for k in ("url", "public_key") if k not in data]
        if missing:
            raise LoaderError(f"{origin}: bundle setting `{missing[0]}` is missing",
                              fix="set both `url` and `public_key`")
        return cls(**dict(data))

    def cache_path(self) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir)
        import hashlib

        import platformdirs
        return Path(platformdirs.user_state_dir("promptline")) / "bundle" / hashlib.sha256(self.url.encode()).hexdigest()[:12]


def read_state(cache_dir: str | os.PathLike) -> dict:
    """What a host last did with its bundle (``promptline policy show``); {} if never."""
    try:
        data = json.loads((Path(cache_dir) / STATE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class BundleUpdater:
    """Keeps ``manager`` (a PluginManager) on the newest good bundle from ``config``."""

    def __init__(self, manager: Any, config: BundleConfig) -> None:
        self.manager = manager
        self.config = config
        self.cache = config.cache_path()
        self.state: dict[str, Any] = read_state(self.cache)
        self.current: Bundle | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- start and poll ----------------------------------------------------------------

    def load_cached(self) -> list[str]:
        """Policy files of the last good bundle on disk, re-verified (offline start); [] if none."""
        path = self.cache / LAST_GOOD
        if not path.exists():
            return []
        try:
            bundle = verify_bundle(path.read_bytes(), [self.config.public_key])
            files = self._write_aside(bundle)
        except (BundleError, OSError) as exc:
            self._failed(f"the cached bundle `{path}` is refused: {exc}")
            return []
        self.current = bundle
        return files

    def start(self) -> None:
        """Poll now and then every ``poll`` seconds, in a background thread (not if ``poll`` is 0)."""
        if self._thread is None and self.config.poll:
            self._thread = threading.Thread(target=self._run, name="promptline-bundle", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.config.timeout + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the poller must survive anything
                log.exception("bundle poll failed")
            if self._stop.wait(self.config.poll):
                return

    def poll_once(self) -> str:
        """Fetch, verify and activate once: "activated", "unchanged" or "failed: why"."""
        with self._lock:
            self.state["last_fetch"] = _now()
            try:
                data, etag = self._download()
            except _NotModified:
                self._save_state()
                return "unchanged"
            except (OSError, http.client.HTTPException, BundleError, ValueError) as exc:
                return self._failed(f"cannot fetch the bundle from {self.config.url}: {_why(exc)}")
            try:
                bundle = verify_bundle(data, [self.config.public_key])
            except BundleError as exc:
                return self._failed(f"bundle from {self.config.url} refused: {exc}")
            cur = self.current
            if cur is not None and bundle.digest == cur.digest:
                self.state["etag"] = etag
                self._save_state()
                return "unchanged"
            if cur is not None and bundle.revision <= cur.revision:
                return self._failed(f"bundle from {self.config.url} refused: revision {bundle.revision} is not newer "
                                    f"than revision {cur.revision} in force (rollback) — publish a higher --revision")
            try:
                files = self._write_aside(bundle)
            except OSError as exc:
                return self._failed(f"cannot write bundle revision {bundle.revision} to `{self.cache}`: {_why(exc)}")
            error = self.manager.use_bundle_files(files, note=f"bundle revision {bundle.revision}")
            if error:
                return self._failed(f"bundle revision {bundle.revision} refused: its policy does not compile: {error}",
                                    audited=True)
            write_atomic(self.cache / LAST_GOOD, data)
            self.current = bundle
            if files:
                self._prune(keep=Path(files[0]).parent)
            self.state.update(etag=etag, revision=bundle.revision, digest=bundle.digest, key_id=bundle.key_id,
                              activated=_now(), policy_version=getattr(self.manager.policy_set, "version", ""),
                              last_error="", url=self.config.url)
            self._save_state()
            log.info("bundle revision %s activated", bundle.revision)
            return "activated"

    # -- helpers -----------------------------------------------------------------------

    def _download(self) -> tuple[bytes, str]:
        """The bundle's bytes and ETag, within ``timeout`` seconds wall-clock (connect to
        last byte; a trickling server is cut off) over same-origin redirects only."""
        from .._http import FetchError, http_fetch
        headers = {"User-Agent": "promptline-bundle/1"}
        if self.state.get("etag") and self.current is not None:
            headers["If-None-Match"] = str(self.state["etag"])
        try:
            data, got = http_fetch(self.config.url, limit=MAX_BUNDLE_BYTES, deadline_s=self.config.timeout,
                                   headers=headers)
        except FetchError as exc:
            if exc.status == 304:
                raise _NotModified() from None
            if exc.kind == "too-large":
                raise BundleError(f"a bundle is at most {MAX_BUNDLE_BYTES} bytes ({exc})", reason="too-large",
                                  fix="bundle fewer or smaller files") from None
            raise OSError(str(exc)) from None
        return data, got.get("ETag") or ""

    def _write_aside(self, bundle: Bundle) -> list[str]:
        """The bundle's policy files (and a policy file of its trusted keys) under
        ``cache/revisions/<rev>-<digest>/``, written before anything is compiled."""
        target = self.cache / "revisions" / f"{bundle.revision}-{bundle.digest[:12]}"
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.cache, 0o700)
        out = []
        for name in bundle.policy_names:
            path = target / name.removeprefix("policies/")
            write_atomic(path, bundle.files[name])
            out.append(str(path))
        if bundle.trusted_keys:
            path = target / KEYS_POLICY
            body = ("apiVersion: promptline/v1\nkind: Policy\nlayer: org\n"
                    f"description: trusted keys of bundle revision {bundle.revision}\n"
                    "settings:\n  trusted_keys:\n" + "".join(f"    - \"{k}\"\n" for k in bundle.trusted_keys)
                    + "rules: []\n")
            write_atomic(path, body.encode())
            out.append(str(path))
        return out

    def _prune(self, keep: Path) -> None:
        """Remove the files of revisions no longer in force."""
        import shutil
        for d in (self.cache / "revisions").iterdir():
            if d != keep and d.is_dir() and not d.is_symlink():
                shutil.rmtree(d, ignore_errors=True)

    def _failed(self, why: str, *, audited: bool = False) -> str:
        self.state["last_error"] = why
        self.state["last_error_time"] = _now()
        self._save_state()
        log.warning("%s", why)
        audit = getattr(self.manager, "audit_log", None)
        if audit is not None and not audited:
            with contextlib.suppress(Exception):
                audit.policy_reload(False, getattr(self.manager.policy_set, "version", "") or "", why)
        return f"failed: {why}"

    def _save_state(self) -> None:
        with contextlib.suppress(OSError):
            self.cache.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(self.cache / STATE, (json.dumps(self.state, indent=2, sort_keys=True) + "\n").encode())


class _NotModified(Exception):
    pass


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def config_from_file(path: str | os.PathLike | None = None) -> BundleConfig | None:
    """The ``bundle:`` section of the config file (default ``$PROMPTLINE_CONFIG`` or the user
    config dir), or None when there is none. A bad section is a LoaderError naming file:line."""
    from promptline.policy import PolicyError, load_yaml, read_text

    from .._discovery import default_config_path
    cfg = Path(path).expanduser() if path else default_config_path()
    if not cfg.exists():
        return None
    try:
        located = load_yaml(read_text(cfg), str(cfg))
    except PolicyError as exc:
        raise LoaderError(str(exc)) from None
    data = located.data
    if not isinstance(data, dict) or data.get("bundle") is None:
        return None
    line, _ = located.where(("bundle",))
    return BundleConfig.from_mapping(data["bundle"], f"{cfg}:{line}" if line else str(cfg))
