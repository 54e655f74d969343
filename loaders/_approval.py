"""Approvals: the user's consent to a plugin's declared capabilities (docs/design.md §4).

An approval is pinned to the manifest digest and the code digest of what the user saw, and
records the capabilities as flat lines (``network: https://api.example.com``). Status:

- ``approved``: the digests match an approval, or an org pre-approved the publisher key
  that verifiably signed the plugin, or the policy's ``approve`` setting does not ask;
- ``needs-approval``: never approved (a new directory, a new entry point);
- ``changed``: the plugin differs from what was approved. An update that asks for more
  (any capability line added, or a weaker sandbox) needs approval again and the status
  carries the difference. An update that asks for nothing more is accepted only when it
  is signed by the same publisher key as the approved version (status ``approved`` with
  ``via="update"``); unsigned code that changed needs approval again, since nothing else
  tells a publisher's update from local tampering.

The store is a YAML file (default ``<user config dir>/promptline/approvals.yaml``, or
``$PROMPTLINE_APPROVALS``), written atomically under a file lock with mode 0600. A file that
cannot be read is an error, never "nothing approved, nothing refused" guesswork.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from filelock import FileLock, Timeout

from promptline.enforcer import write_atomic
from promptline.policy import key_ids

from ._errors import ApprovalRequired, ApprovalStoreError

APPROVALS_ENV = "PROMPTLINE_APPROVALS"
STORE_VERSION = 1
LOCK_TIMEOUT = 10.0            # seconds to wait for another promptline writing approvals
MAX_STORE_BYTES = 4 * 1024 * 1024   # the approvals file; far beyond thousands of plugins
SANDBOX_RANK = {"none": 0, "process": 1, "container": 2, "wasm": 1}

State = Literal["approved", "needs-approval", "changed"]


def default_approvals_path() -> Path:
    env = os.environ.get(APPROVALS_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs
    return Path(platformdirs.user_config_dir("promptline")) / "approvals.yaml"


# ---------------------------------------------------------------------------------------
# Values


def capability_lines(capabilities: Any, sandbox: str | None = None) -> frozenset[str]:
    """Flatten a manifest's capabilities (model or mapping) into ``kind: value`` lines."""
    if hasattr(capabilities, "model_dump"):
        capabilities = capabilities.model_dump()
    caps: Mapping[str, Any] = capabilities or {}
    lines: set[str] = set()
    for kind in ("network", "environment", "process"):
        lines.update(f"{kind}: {v}" for v in caps.get(kind) or ())
    fs = caps.get("filesystem") or {}
    for mode in ("read", "write"):
        lines.update(f"filesystem.{mode}: {v}" for v in fs.get(mode) or ())
    if caps.get("native"):
        lines.add("native: true")
    if sandbox is not None:
        lines.add(f"sandbox: {sandbox}")
    return frozenset(lines)


@dataclass(frozen=True)
class ApprovalSubject:
    """What is being approved. ``publisher_key_id`` must come from a verified signature
    (VerifiedPlugin.key_id), never from the manifest's own ``publisher`` field."""

    plugin_id: str
    version: str
    manifest_digest: str
    code_digest: str
    capabilities: frozenset[str]
    publisher_key_id: str | None = None

    @classmethod
    def from_manifest(cls, manifest: Any, *, manifest_digest: str, code_digest: str,
                      publisher_key_id: str | None = None) -> ApprovalSubject:
        return cls(manifest.id, manifest.version, manifest_digest, code_digest,
                   capability_lines(manifest.capabilities, manifest.sandbox), publisher_key_id)

    @classmethod
    def from_verified(cls, manifest: Any, verified: Any) -> ApprovalSubject:
        """From a Manifest and a loaders._signing.PluginTree/VerifiedPlugin snapshot."""
        return cls.from_manifest(manifest, manifest_digest=verified.manifest_digest,
                                 code_digest=verified.code_digest,
                                 publisher_key_id=getattr(verified, "key_id", None))


@dataclass(frozen=True)
class Approval:
    """One stored approval."""

    plugin_id: str
    version: str
    manifest_digest: str
    code_digest: str
    capabilities: frozenset[str]
    publisher_key_id: str | None = None
    approved_at: str = ""

    def to_yaml(self) -> dict[str, Any]:
        return {"version": self.version, "manifest_digest": self.manifest_digest,
                "code_digest": self.code_digest, "publisher_key_id": self.publisher_key_id,
                "capabilities": sorted(self.capabilities), "approved_at": self.approved_at}


@dataclass(frozen=True)
class CapabilityDiff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def grows(self) -> bool:
        """True when the new capabilities ask for anything more (a weaker sandbox counts)."""
        for line in self.added:
            if not line.startswith("sandbox: "):
                return True
            new = line.removeprefix("sandbox: ")
            old = [r.removeprefix("sandbox: ") for r in self.removed if r.startswith("sandbox: ")]
            if not old or SANDBOX_RANK.get(new, 0) < min(SANDBOX_RANK.get(o, 0) for o in old):
                return True
        return False

    @property
    def empty(self) -> bool:
        return not self.added and not self.removed

    def lines(self) -> list[str]:
        return [f"+ {a}" for a in self.added] + [f"- {r}" for r in self.removed]

    def render(self) -> str:
        return "\n".join(self.lines()) or "(no capability changes)"


def capability_diff(old: Iterable[str], new: Iterable[str]) -> CapabilityDiff:
    old, new = set(old), set(new)
    return CapabilityDiff(tuple(sorted(new - old)), tuple(sorted(old - new)))


@dataclass(frozen=True)
class ApprovalStatus:
    plugin_id: str
    state: State
    via: str | None = None            # user | update | org-publisher | policy
    diff: CapabilityDiff | None = None
    reason: str = ""
    approved: Approval | None = None  # the stored approval this was compared with
    subject: ApprovalSubject | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.state == "approved"

    def explain(self) -> str:
        """Several lines for a person: the state, why, and what changed."""
        head = f"plugin `{self.plugin_id}`: {self.state}" + (f" ({self.reason})" if self.reason else "")
        body: list[str] = []
        if self.diff is not None and not self.diff.empty:
            body = ["  " + line for line in self.diff.lines()]
        elif self.state == "needs-approval" and self.subject is not None:
            body = ["  + " + line for line in sorted(self.subject.capabilities)]
        if not self.ok:
            body.append(f"  approve with: promptline plugin approve {self.plugin_id}")
        return "\n".join([head, *body])

    def require(self) -> None:
        """Raise ApprovalRequired (with how to approve) unless approved; the refusal a
        non-interactive host gives."""
        if self.ok:
            return
        if self.state == "changed" and self.diff is not None and self.diff.grows:
            what = "asks for more than you approved: " + ", ".join(f"`{a}`" for a in self.diff.added)
        elif self.state == "changed":
            what = f"changed since you approved it ({self.reason})"
        else:
            caps = sorted(self.subject.capabilities) if self.subject else []
            what = "is not approved yet" + (f"; it asks for {', '.join(f'`{c}`' for c in caps)}" if caps else "")
        raise ApprovalRequired(what, plugin=self.plugin_id, status=self,
                               fix=f"review it with `promptline plugin info {self.plugin_id}` and run "
                                   f"`promptline plugin approve {self.plugin_id}`")


# ---------------------------------------------------------------------------------------
# The store


class ApprovalStore:
    """The user's approvals file."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_approvals_path()
        self._lock = FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT)

    # -- reading ---------------------------------------------------------------------

    def entries(self) -> dict[str, Approval]:
        return self._read()

    def get(self, plugin_id: str) -> Approval | None:
        return self._read().get(plugin_id)

    def status(self, subject: ApprovalSubject, *, preapproved_publishers: Iterable[str] = (),
               mode: str = "review") -> ApprovalStatus:
        """Compare ``subject`` with what the user approved.

        ``preapproved_publishers``: key ids (or ``ed25519:`` keys) an org pre-approves; they
        count only through ``subject.publisher_key_id``, i.e. a verified signature.
        ``mode`` is the policy's ``approve`` setting: ``declared`` and ``policy-only`` do not
        ask the user (the policy decides every capability).
        """
        pid = subject.plugin_id
        if mode in ("declared", "policy-only"):
            return ApprovalStatus(pid, "approved", via="policy", reason=f"policy `approve: {mode}`",
                                  subject=subject)
        if subject.publisher_key_id and subject.publisher_key_id in _key_ids(preapproved_publishers):
            return ApprovalStatus(pid, "approved", via="org-publisher",
                                  reason=f"publisher key `{subject.publisher_key_id}` pre-approved by the org",
                                  subject=subject)
        stored = self._read().get(pid)
        if stored is None:
            return ApprovalStatus(pid, "needs-approval", reason="new plugin", subject=subject)
        if (stored.manifest_digest, stored.code_digest) == (subject.manifest_digest, subject.code_digest):
            return ApprovalStatus(pid, "approved", via="user", approved=stored, subject=subject)
        diff = capability_diff(stored.capabilities, subject.capabilities)
        if diff.grows:
            return ApprovalStatus(pid, "changed", diff=diff, approved=stored, subject=subject,
                                  reason=f"{stored.version} -> {subject.version} asks for more")
        if subject.publisher_key_id and subject.publisher_key_id == stored.publisher_key_id:
            return ApprovalStatus(pid, "approved", via="update", diff=diff, approved=stored, subject=subject,
                                  reason=f"update {stored.version} -> {subject.version} by the same "
                                         f"publisher asks for nothing more")
        why = "code changed" if stored.manifest_digest == subject.manifest_digest else "manifest changed"
        if stored.publisher_key_id and subject.publisher_key_id != stored.publisher_key_id:
            why += f"; signer was `{stored.publisher_key_id}`, now `{subject.publisher_key_id or 'unsigned'}`"
        else:
            why += " and it is not signed by the approved publisher"
        return ApprovalStatus(pid, "changed", diff=diff, approved=stored, subject=subject, reason=why)

    # -- writing ---------------------------------------------------------------------

    def approve(self, subject: ApprovalSubject) -> Approval:
        """Record the user's approval of exactly this manifest, code and capability set."""
        approval = Approval(subject.plugin_id, subject.version, subject.manifest_digest,
                            subject.code_digest, frozenset(subject.capabilities), subject.publisher_key_id,
                            _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
        with self._locked():
            entries = self._read()
            entries[subject.plugin_id] = approval
            self._write(entries)
        return approval

    def revoke(self, plugin_id: str) -> bool:
        with self._locked():
            entries = self._read()
            if entries.pop(plugin_id, None) is None:
                return False
            self._write(entries)
        return True

    # -- internals -------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._lock.acquire()
        except Timeout:
            raise ApprovalStoreError(f"approvals file `{self.path}` is locked by another process",
                                     fix="retry when the other promptline has finished") from None
        try:
            yield
        finally:
            self._lock.release()

    def _read(self) -> dict[str, Approval]:
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read(MAX_STORE_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise self._bad(f"cannot be read: {exc.strerror}", "check its permissions") from None
        if len(raw) > MAX_STORE_BYTES:
            raise self._bad(f"is larger than {MAX_STORE_BYTES} bytes", "remove stale approvals")
        from promptline.policy import PolicyError, load_yaml  # depth-bounded, alias cycles refused
        try:
            doc = load_yaml(raw.decode("utf-8"), str(self.path)).data or {}
        except UnicodeDecodeError:
            raise ApprovalStoreError(f"approvals file `{self.path}` is not UTF-8 text",
                                     fix="fix or delete it, then approve plugins again") from None
        except PolicyError as exc:
            raise ApprovalStoreError(f"approvals file is not valid YAML: {exc}",
                                     fix="fix or delete it, then approve plugins again") from None
        if not isinstance(doc, dict) or doc.get("version") != STORE_VERSION or \
                not isinstance(doc.get("plugins") or {}, dict):
            raise self._bad(f"is not a version {STORE_VERSION} approvals file", "fix or delete it")
        out: dict[str, Approval] = {}
        for pid, e in (doc.get("plugins") or {}).items():
            if not isinstance(e, dict) or not all(isinstance(e.get(k), str) for k in
                                                  ("manifest_digest", "code_digest")):
                raise self._bad(f"has a malformed entry for `{pid}`", f"run `promptline plugin approve {pid}` again")
            caps = e.get("capabilities") or []
            if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
                raise self._bad(f"has malformed capabilities for `{pid}`", f"run `promptline plugin approve {pid}`")
            out[str(pid)] = Approval(str(pid), str(e.get("version", "")), e["manifest_digest"], e["code_digest"],
                                     frozenset(caps), e.get("publisher_key_id") or None,
                                     str(e.get("approved_at", "")))
        return out

    def _write(self, entries: Mapping[str, Approval]) -> None:
        doc = {"version": STORE_VERSION,
               "plugins": {pid: entries[pid].to_yaml() for pid in sorted(entries)}}
        text = ("# PromptLine plugin approvals; written by `promptline plugin approve`\n"
                + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
        write_atomic(self.path, text)

    def _bad(self, what: str, fix: str) -> ApprovalStoreError:
        return ApprovalStoreError(f"approvals file `{self.path}` {what}", fix=fix)


def _key_ids(keys: Iterable[str]) -> frozenset[str]:
    return key_ids(keys)


__all__ = ["ApprovalStore", "ApprovalSubject", "ApprovalStatus", "Approval", "CapabilityDiff",
           "capability_diff", "capability_lines", "default_approvals_path", "APPROVALS_ENV"]
