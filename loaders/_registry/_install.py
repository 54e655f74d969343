"""Install, update and remove plugins in a plugin directory.

Every install and update goes through one path::

    stage      fetch into a private temporary directory (the plugin dir is not touched)
    verify     index entry signature, archive SHA-256, tree signature against the policy's
               trusted keys; manifest id/version/tree digest against what the index said;
               `requires` against this PromptLine
    show       the capabilities asked for, and the policy's verdict on one representative
               request per capability (as if the plugin were approved)
    approve    see "The --yes rule" below
    install    write exactly the verified bytes into <plugins dir>/.promptline-staging-XXXX
               (same filesystem), then rename it to
               <plugins dir>/<id> (an update swaps the old tree out with two renames and
               puts it back if anything fails); record the source in
               <plugins dir>/.promptline-registry.json; store the approval

Any failure deletes the staging directory and restores what was there: nothing is left
behind. Dot-entries are skipped by discovery, so a staging directory is never loaded.
The plugin dir is the user's (:func:`default_plugins_dir`) unless one is given; commits
and removals hold an ``flock`` on the directory itself (no lock file), and removing the
last plugin deletes the record: ``remove`` leaves nothing behind.

Unsigned index entries: asked before a byte is fetched
------------------------------------------------------
An index entry carries its own signature over the archive's SHA-256, so the registry
knows before downloading whether a key the policy trusts vouches for the archive. When
none does (no signature, or a key not in ``trusted_keys``) and ``require_signature`` is
off, nothing is downloaded, checked or unpacked until the user said yes to what the
entry says it is (:class:`UnsignedEntry`: id, version, index, archive, sha256, declared
capabilities): ``confirm_unsigned`` asks (the CLI, at a terminal), ``allow_unsigned``
answers yes in advance (``--allow-unsigned``); with neither the install is refused with
reason ``unsigned`` and nothing was written anywhere. This holds for every entry fetched
from an index: the plugin, its dependencies, and updates. An entry a trusted key signed
is fetched without a question.

The --yes rule
--------------
Approval is needed when the approvals store says so for this exact manifest and code
(``ApprovalStore.status``: a new plugin, or a change not vouched for by the same publisher,
with the policy's pre-approved publisher keys and ``approve: declared | policy-only``
counting as approved), and, on an update, whenever the capabilities grow while the policy
says ``approve: review`` (the difference is shown). When approval is needed, ``--yes``
answers for the user only if someone vouched for the code: it comes from a local directory
(the user's own code) or it is signed by a key the policy trusts. Unsigned code (or code
signed by an untrusted key) fetched from a git repository, an index or an archive needs a
person at a terminal: ``--yes`` is refused with reason ``yes-refused``, unless the user
accepted unsigned code explicitly (``allow_unsigned``, ``--allow-unsigned``). With
``require_signature: true`` such code never gets this far: verification refuses it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import ipaddress
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptline.enforcer import write_atomic
from promptline.policy import DEFAULT_PORTS, Manifest, PolicyError, Request, load_policy_set, parse_net

from .._approval import (
    ApprovalStatus,
    ApprovalStore,
    ApprovalSubject,
    CapabilityDiff,
    capability_diff,
    capability_lines,
)
from .._discovery import current_version, manifest_from_tree, org_publishers, read_manifest, user_plugin_dir
from .._errors import SignatureError
from .._signing import MANIFEST_FILE, SIGNATURE_FILE, VerifiedPlugin, materialize, verify_plugin
from ._archive import extract_archive
from ._deps import Need, resolve
from ._errors import RegistryError
from ._index import DEFAULT_INDEX, INDEX_ENV, Index, IndexEntry, check_plugin_id
from ._sources import Source, fetch_git, parse_source
from ._versions import SemVer, requires_ok

STATE_FILE = ".promptline-registry.json"
STATE_FORMAT = "promptline-installed/v1"
STAGING_PREFIX = ".promptline-staging-"
LOCK_TIMEOUT = 30.0                 # seconds to wait for another promptline installing here
LOCK_POLL = 0.05
MAX_STATE_BYTES = 4 * 1024 * 1024   # the installed-plugins record


def default_plugins_dir() -> Path:
    """Where plugins are installed: the user's plugin directory (``plugins/`` in the user
    config dir), which the loader searches unless ``$PROMPTLINE_PLUGIN_PATH`` replaces the
    search path. A directory on ``$PROMPTLINE_PLUGIN_PATH`` (say a checkout's examples/) is
    searched, never installed into, unless named explicitly (``--into``)."""
    return user_plugin_dir()


def default_index() -> str:
    return os.environ.get(INDEX_ENV) or DEFAULT_INDEX


# ---------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class CapabilityCheck:
    """One capability line and the policy's verdict on a representative request for it."""

    capability: str
    action: str
    resource: str
    verdict: str          # allow | deny | ask
    reason: str


@dataclass(frozen=True)
class UnsignedEntry:
    """An index entry no trusted key vouches for, waiting for the user's yes before its
    archive is downloaded (see "Unsigned index entries" in the module docs)."""

    entry: IndexEntry
    index: str
    why: str                 # "not signed" | "signed by key `k`, which the policy does not trust"

    def lines(self) -> list[str]:
        """What the index says it is (untrusted text: escape it before printing)."""
        e = self.entry
        caps = ", ".join(e.capabilities) if e.capabilities else "none"
        return [f"plugin `{e.id}` {e.version} from index {self.index} is {self.why}",
                f"  archive:      {e.archive} ({e.size} bytes)",
                f"  sha256:       {e.sha256}",
                f"  capabilities: {caps} (as the index declares them; checked against its manifest once unpacked)"]


@dataclass(frozen=True)
class Installed:
    """A plugin installed by the registry."""

    id: str
    version: str
    path: Path
    source: Source | None = None
    digest: str = ""
    key_id: str | None = None
    installed_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "source": self.source.to_json() if self.source else None,
                "digest": self.digest, "key_id": self.key_id, "installed_at": self.installed_at}


@dataclass
class InstallPlan:
    """A verified plugin waiting in staging for approval. ``commit`` installs it,
    ``discard`` (or leaving the ``with`` block) deletes the staging directory."""

    registry: Registry
    source: Source
    manifest: Manifest
    verified: VerifiedPlugin
    staging: Path
    checks: list[CapabilityCheck]
    status: ApprovalStatus
    subject: ApprovalSubject
    entry: IndexEntry | None = None
    previous: Installed | None = None
    diff: CapabilityDiff | None = None
    review: bool = True                      # the policy's `approve` is `review`
    _done: bool = field(default=False, repr=False)

    @property
    def plugin_id(self) -> str:
        return self.manifest.id

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def signed(self) -> bool:
        """Signed by a key the policy trusts."""
        return self.verified.signed

    @property
    def capabilities(self) -> list[str]:
        return sorted(self.subject.capabilities)

    @property
    def approval_needed(self) -> bool:
        grows = self.diff is not None and self.diff.grows and self.review
        return not self.status.ok or grows

    @property
    def yes_refusal(self) -> str | None:
        """Why ``--yes`` may not approve this plugin, or None when it may (see module docs)."""
        if not self.approval_needed or self.source.local or self.signed or self.registry.allow_unsigned:
            return None
        return (f"`--yes` cannot approve code no trusted key signed ({self.verified.note or 'unsigned'}) from "
                f"{self.source.describe()}: the policy asks a person to review what it may do")

    def __enter__(self) -> InstallPlan:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.discard()

    def discard(self) -> None:
        self._done = True
        _rmtree(self.staging)

    def commit(self, *, approved: bool = False) -> Installed:
        """Install the verified bytes. ``approved``: the user (or a permitted ``--yes``)
        approved; required when :attr:`approval_needed`."""
        if self._done:
            raise RegistryError("this install plan was already used", reason="io", plugin=self.plugin_id)
        try:
            if self.approval_needed and not approved:
                raise RegistryError(f"{self.version} was not approved, so nothing was installed",
                                    reason="not-approved", plugin=self.plugin_id,
                                    fix="run the command again at a terminal and approve it")
            return self.registry._commit(self)
        finally:
            self.discard()


@dataclass
class InstallSet:
    """A plugin and the dependencies it brings, each verified and waiting in staging:
    one question, then :meth:`commit` installs all of them or none (dependencies first)."""

    registry: Registry
    plans: list[InstallPlan]
    _done: bool = field(default=False, repr=False)

    @property
    def root(self) -> InstallPlan:
        return self.plans[-1]

    @property
    def approval_needed(self) -> bool:
        return any(p.approval_needed for p in self.plans)

    def __enter__(self) -> InstallSet:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.discard()

    def discard(self) -> None:
        self._done = True
        for plan in self.plans:
            plan.discard()

    def commit(self, *, approved: bool = False) -> list[Installed]:
        """Install every plan atomically; ``approved`` answers for all that need it."""
        if self._done:
            raise RegistryError("this install set was already used", reason="io", plugin=self.root.plugin_id)
        try:
            for plan in self.plans:
                if plan.approval_needed and not approved:
                    raise RegistryError(f"{plan.version} was not approved, so nothing was installed",
                                        reason="not-approved", plugin=plan.plugin_id,
                                        fix="run the command again at a terminal and approve it")
            return self.registry._commit_many(self.plans)
        finally:
            self.discard()


# ---------------------------------------------------------------------------------------
# The registry


class Registry:
    """Install, update and remove plugins in ``plugins_dir`` under the given policy.

    ``policy_files``: the policy (trusted keys, require_signature, approve mode, rules for
    the verdicts shown); ``approvals``: an ApprovalStore or its path; ``audit_log``: an
    ``enforcer.audit.AuditLog`` (or anything with ``lifecycle``); ``index``: the default
    index location; ``version``: the PromptLine version ``requires`` is checked against.
    ``allow_unsigned``: the user accepts code no trusted key signed (index entries are
    fetched without asking, and ``--yes`` may approve such code); ``confirm_unsigned``:
    asked with an :class:`UnsignedEntry` before one is fetched (True: go ahead).
    """

    def __init__(self, plugins_dir: str | os.PathLike | None = None, *,
                 policy_files: list[str] | tuple[str, ...] = (),
                 approvals: ApprovalStore | str | os.PathLike | None = None,
                 audit_log: Any = None, index: str | None = None, version: str | None = None,
                 backend: str | None = None, allow_unsigned: bool = False,
                 confirm_unsigned: Callable[[UnsignedEntry], bool] | None = None) -> None:
        self.plugins_dir = Path(plugins_dir).expanduser().absolute() if plugins_dir else default_plugins_dir()
        self.policy_files = [os.fspath(p) for p in policy_files]
        self.approvals = approvals if isinstance(approvals, ApprovalStore) else ApprovalStore(approvals)
        self.audit_log = audit_log
        self.index = index or default_index()
        self.version = version or current_version()
        self.backend = backend
        self.allow_unsigned = allow_unsigned
        self.confirm_unsigned = confirm_unsigned

    # -- reading ---------------------------------------------------------------------

    def settings(self):
        try:
            return load_policy_set(self.policy_files, backend=self.backend).settings
        except PolicyError as exc:
            raise RegistryError(f"the policy does not load: {exc}", reason="bad-policy",
                                fix="fix the policy first; it decides which keys are trusted") from None

    def open_index(self, location: str | None = None) -> Index:
        return Index.open(location or self.index)

    def search(self, query: str = "", *, index: str | None = None) -> list[IndexEntry]:
        return self.open_index(index).search(query)

    def installed(self) -> dict[str, Installed]:
        """Plugins the registry installed here, by id (from the record)."""
        out = {}
        for pid, rec in self._read_state().items():
            try:
                src = Source.from_json(rec.get("source")) if rec.get("source") else None
            except RegistryError:
                src = None
            out[pid] = Installed(pid, str(rec.get("version", "")), self.plugins_dir / pid, src,
                                 str(rec.get("digest", "")), rec.get("key_id"), str(rec.get("installed_at", "")))
        return out

    def current(self, plugin_id: str) -> Installed | None:
        """The installed plugin ``plugin_id`` in this plugin dir (from its manifest), or None."""
        target = self.plugins_dir / check_plugin_id(plugin_id)
        if not (target / MANIFEST_FILE).is_file():
            return None
        try:
            manifest = read_manifest(target / MANIFEST_FILE)
        except PolicyError as exc:
            raise RegistryError(f"installed manifest is invalid: {exc}", reason="bad-manifest", plugin=plugin_id,
                                fix=f"remove it with `promptline plugin remove {plugin_id}`") from None
        rec = self.installed().get(plugin_id)
        return Installed(plugin_id, manifest.version, target, rec.source if rec else None,
                         rec.digest if rec else "", rec.key_id if rec else None, rec.installed_at if rec else "")

    # -- install / update ------------------------------------------------------------

    def prepare_install(self, source: str | Source, *, ref: str | None = None, index: str | None = None,
                        force: bool = False) -> InstallPlan:
        """Fetch, verify and check ``source``; return a plan waiting for approval.
        ``force`` reinstalls over an installed plugin of the same id (any version)."""
        src = source if isinstance(source, Source) else parse_source(source, index=index or self.index, ref=ref)
        plan = self._prepare(src)
        try:
            previous = self.current(plan.plugin_id)
            if previous is not None and not force:
                raise RegistryError(f"{previous.version} is already installed in `{previous.path}`",
                                    reason="already-installed", plugin=plan.plugin_id,
                                    fix=f"use `promptline plugin update {plan.plugin_id}`, or --force to reinstall")
            if previous is not None:
                self._attach_previous(plan, previous)
            return plan
        except BaseException:
            plan.discard()
            raise

    def prepare_update(self, plugin_id: str, *, wanted: str | None = None, index: str | None = None,
                       source: str | None = None, ref: str | None = None,
                       force: bool = False) -> InstallPlan | None:
        """Fetch the newest version (or ``wanted``) from where ``plugin_id`` came from, or
        from ``source``. None when it is up to date. Downgrades need ``force``."""
        previous = self.current(plugin_id)
        if previous is None:
            raise RegistryError(f"plugin is not installed in `{self.plugins_dir}`", reason="not-installed",
                                plugin=plugin_id, fix=f"install it with `promptline plugin install {plugin_id}`")
        if source is not None:
            src = parse_source(source, index=index or self.index, ref=ref)
        elif previous.source is None:
            raise RegistryError("it was not installed by `promptline plugin install`, so its source is unknown",
                                reason="bad-source", plugin=plugin_id,
                                fix=f"give one: `promptline plugin update {plugin_id} --from SOURCE`")
        else:
            src = previous.source
            if src.kind == "index":
                src = Source("index", index or src.location, plugin_id=plugin_id, wanted=wanted)
            elif src.kind == "git" and (ref or wanted):
                src = Source("git", src.location, ref=ref or wanted)
        plan = self._prepare(src, plugin_id=plugin_id)
        try:
            if plan.plugin_id != plugin_id:
                raise RegistryError(f"the source now holds plugin `{plan.plugin_id}`, not `{plugin_id}`",
                                    reason="index-mismatch", plugin=plugin_id,
                                    fix="install it under its own name instead")
            old, new = SemVer(previous.version), SemVer(plan.version)
            if new == old and (force or plan.verified.digest == _tree_digest(previous.path)):
                if not force:
                    plan.discard()
                    return None
            elif new == old:
                raise RegistryError(f"{plan.version} from {src.describe()} differs from the installed "
                                    f"{previous.version} with the same version number", reason="downgrade",
                                    plugin=plugin_id, fix="ask the publisher to bump the version, or use --force")
            elif new < old and not force:
                raise RegistryError(f"{plan.version} is older than the installed {previous.version}; "
                                    "refusing to downgrade", reason="downgrade", plugin=plugin_id,
                                    fix="use --force to downgrade on purpose")
            self._attach_previous(plan, previous)
            return plan
        except BaseException:
            plan.discard()
            raise

    def install(self, source: str | Source, *, yes: bool = False,
                confirm: Callable[[InstallPlan], bool] | None = None, **kw: Any) -> Installed:
        """prepare_install + :func:`decide_approval` + commit."""
        with self.prepare_install(source, **kw) as plan:
            return plan.commit(approved=decide_approval(plan, yes=yes, confirm=confirm))

    def update(self, plugin_id: str, *, yes: bool = False,
               confirm: Callable[[InstallPlan], bool] | None = None, **kw: Any) -> Installed | None:
        """prepare_update + :func:`decide_approval` + commit; None when up to date."""
        plan = self.prepare_update(plugin_id, **kw)
        if plan is None:
            return None
        with plan:
            return plan.commit(approved=decide_approval(plan, yes=yes, confirm=confirm))

    # -- dependency sets (see _deps) ----------------------------------------------------

    def installed_manifests(self) -> dict[str, Manifest]:
        """Every plugin in the plugin directory with a valid manifest, by id."""
        out: dict[str, Manifest] = {}
        if not self.plugins_dir.is_dir():
            return out
        for child in sorted(self.plugins_dir.iterdir()):
            if child.name.startswith(".") or not (child / MANIFEST_FILE).is_file():
                continue
            with contextlib.suppress(PolicyError):
                m = read_manifest(child / MANIFEST_FILE)
                if m.id == child.name:
                    out[m.id] = m
        return out

    def dependents(self, plugin_id: str) -> list[str]:
        """Installed plugins that need ``plugin_id``, directly or through others (outermost last)."""
        manifests = self.installed_manifests()
        out: list[str] = []
        frontier = [plugin_id]
        while frontier:
            pid = frontier.pop()
            for other, m in sorted(manifests.items()):
                if pid in m.dependencies and other not in out and other != plugin_id:
                    out.append(other)
                    frontier.append(other)
        return out

    def prepare_install_set(self, source: str | Source, *, ref: str | None = None, index: str | None = None,
                            force: bool = False) -> InstallSet:
        """``prepare_install`` plus the dependencies the plugin needs, resolved from the index."""
        root = self.prepare_install(source, ref=ref, index=index, force=force)
        return self._with_dependencies(root, index)

    def prepare_update_set(self, plugin_id: str, *, wanted: str | None = None, index: str | None = None,
                           source: str | None = None, ref: str | None = None,
                           force: bool = False) -> InstallSet | None:
        """``prepare_update`` that keeps the set consistent: the version chosen is the newest
        the installed dependents admit, and new or newer dependencies come along."""
        previous = self.current(plugin_id)
        if previous is not None and source is None and previous.source is not None \
                and previous.source.kind == "index" and self.dependents(plugin_id):
            idx = self.open_index(index or previous.source.location or None)
            picks = resolve(idx, [Need(plugin_id, wanted or "", ("update",))], current=self.version,
                            installed=self._installed_deps(), changing=frozenset({plugin_id}))
            mine = [p for p in picks if p.plugin == plugin_id]
            if mine and not wanted:
                wanted = mine[0].version
            elif not mine and not wanted:
                return None
        plan = self.prepare_update(plugin_id, wanted=wanted, index=index, source=source, ref=ref, force=force)
        if plan is None:
            return None
        return self._with_dependencies(plan, index or (plan.source.location if plan.source.kind == "index"
                                                       else None))

    def install_set(self, source: str | Source, *, yes: bool = False,
                    confirm: Callable[[InstallSet], bool] | None = None, **kw: Any) -> list[Installed]:
        """prepare_install_set + :func:`decide_set_approval` + commit."""
        with self.prepare_install_set(source, **kw) as plans:
            return plans.commit(approved=decide_set_approval(plans, yes=yes, confirm=confirm))

    def update_set(self, plugin_id: str, *, yes: bool = False,
                   confirm: Callable[[InstallSet], bool] | None = None, **kw: Any) -> list[Installed]:
        """prepare_update_set + :func:`decide_set_approval` + commit; [] when up to date."""
        plans = self.prepare_update_set(plugin_id, **kw)
        if plans is None:
            return []
        with plans:
            return plans.commit(approved=decide_set_approval(plans, yes=yes, confirm=confirm))

    def _installed_deps(self) -> dict[str, tuple[str, dict[str, str]]]:
        return {pid: (m.version, dict(m.dependencies)) for pid, m in self.installed_manifests().items()}

    def _with_dependencies(self, root: InstallPlan, index: str | None) -> InstallSet:
        plans = [root]
        try:
            installed = self._installed_deps()
            fixed = {root.plugin_id: (root.version, dict(root.manifest.dependencies))}
            needs_index = bool(root.manifest.dependencies) or any(
                root.plugin_id in deps for _, deps in installed.values())
            idx = self.open_index(index) if root.manifest.dependencies else None
            if needs_index:
                picks = resolve(idx, [], current=self.version, installed=installed, fixed=fixed,
                                changing=frozenset({root.plugin_id}))
            else:
                picks = []
            deps: list[InstallPlan] = []
            for pick in picks:
                assert idx is not None and pick.entry is not None
                src = Source("index", idx.location, plugin_id=pick.plugin, wanted=pick.version)
                plan = self._prepare(src)
                deps.append(plan)
                previous = self.current(pick.plugin)
                if previous is not None:
                    self._attach_previous(plan, previous)
            return InstallSet(self, [*deps, root])
        except BaseException:
            for plan in plans:
                plan.discard()
            if "deps" in locals():
                for plan in deps:
                    plan.discard()
            raise

    # -- remove ----------------------------------------------------------------------

    def remove_with_dependents(self, plugin_id: str, **kw: Any) -> list[Installed]:
        """Remove the plugins that need ``plugin_id`` (outermost first), then it."""
        if self.current(plugin_id) is None:
            self.remove(plugin_id, **kw)          # raises not-installed
        return [self.remove(pid, **kw) for pid in [*reversed(self.dependents(plugin_id)), plugin_id]]

    def remove(self, plugin_id: str, *, manager: Any = None, keep_approval: bool = False) -> Installed:
        """Shut the plugin down (when ``manager`` runs it), delete its directory, forget
        its record and approval, and write an ``unloaded`` audit record (detail ``removed``).
        A plugin that installed plugins depend on is refused (see :meth:`remove_with_dependents`)."""
        current = self.current(plugin_id)
        if current is None:
            raise RegistryError(f"plugin is not installed in `{self.plugins_dir}`", reason="not-installed",
                                plugin=plugin_id, fix="see where it lives with `promptline plugin info "
                                                      f"{plugin_id}`; only installed plugins can be removed")
        needed_by = self.dependents(plugin_id)
        if needed_by:
            raise RegistryError(f"needed by {', '.join(f'`{p}`' for p in needed_by)}", reason="needed",
                                plugin=plugin_id, fix="remove those first, or pass --with-dependents to remove "
                                                      "them too")
        if manager is not None:
            manager.unload(plugin_id)
        with self._locked():
            trash = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.plugins_dir))
            os.rename(current.path, trash / "old")
            try:
                state = self._read_state()
                state.pop(plugin_id, None)
                self._write_state(state)
            except BaseException:
                os.rename(trash / "old", current.path)
                _rmtree(trash)
                raise
            _rmtree(trash)
        if not keep_approval:
            self.approvals.revoke(plugin_id)
        self._audit(plugin_id, current.version, "unloaded", "removed")
        return current

    # -- internals -------------------------------------------------------------------

    def _prepare(self, src: Source, *, plugin_id: str | None = None) -> InstallPlan:
        settings = self.settings()
        entry = idx = None
        if src.kind == "index":     # what can be checked before a byte is fetched, is
            idx = self.open_index(src.location or None)
            src = Source("index", idx.location, plugin_id=src.plugin_id, wanted=src.wanted)
            entry = idx.resolve(src.plugin_id or "", src.wanted, current=self.version)
            if entry.verify(settings.trusted_keys, require_signature=settings.require_signature) is None:
                self._consent_unsigned(UnsignedEntry(entry, idx.location, _unsigned_why(entry)))
        staging = self._new_staging()
        try:
            label = plugin_id or src.plugin_id or src.location
            if src.kind == "path":
                root = Path(src.location)
            elif src.kind == "archive":
                root = extract_archive(src.location, staging / "unpacked", plugin=label)
            elif src.kind == "git":
                root = fetch_git(src.location, src.ref, staging / "git", plugin=label)
            else:
                assert idx is not None and entry is not None
                archive = idx.download(entry, staging / "download.tar.gz")
                root = extract_archive(archive, staging / "unpacked", plugin=label)
            try:
                verified = verify_plugin(root, settings.trusted_keys,
                                         require_signature=settings.require_signature, plugin=label)
                manifest = manifest_from_tree(verified, origin=f"{src.describe()}: {MANIFEST_FILE}")
            except SignatureError as exc:
                raise RegistryError(exc.message, reason="signature", plugin=exc.plugin, fix=exc.fix) from None
            except PolicyError as exc:
                raise RegistryError(f"its manifest is invalid: {exc}", reason="bad-manifest", plugin=label,
                                    fix="ask the publisher to fix plugin.yaml") from None
            if entry is not None:
                _check_entry(entry, manifest, verified)
            if not requires_ok(manifest.requires, self.version):
                raise RegistryError(f"{manifest.version} requires promptline `{manifest.requires}`, this is "
                                    f"{self.version}", reason="incompatible", plugin=manifest.id,
                                    fix="pick a version made for this promptline, or upgrade promptline")
            subject = ApprovalSubject.from_verified(manifest, verified)
            status = self.approvals.status(subject, preapproved_publishers=org_publishers(settings),
                                           mode=settings.approve)
            checks = capability_checks(self, manifest, verified)
            return InstallPlan(self, src, manifest, verified, staging, checks, status, subject, entry,
                               review=settings.approve == "review")
        except BaseException:
            _rmtree(staging)
            raise

    def _consent_unsigned(self, unsigned: UnsignedEntry) -> None:
        """Return when the user accepts fetching ``unsigned``; raise RegistryError (reason
        ``unsigned``) otherwise. Nothing has been written yet."""
        if self.allow_unsigned:
            return
        e = unsigned.entry
        what = f"{e.version} from index {unsigned.index} is {unsigned.why}"
        if self.confirm_unsigned is None:
            raise RegistryError(f"{what}, and there is no terminal to ask, so nothing was downloaded",
                                reason="unsigned", plugin=e.id, details=tuple(unsigned.lines()),
                                fix="run it at a terminal to review it, or pass --allow-unsigned to accept code "
                                    "no trusted key signed (--yes alone does not)")
        try:
            ok = self.confirm_unsigned(unsigned) is True
        except Exception:  # noqa: BLE001 - a failing prompt means no
            ok = False
        if not ok:
            raise RegistryError(f"{what}; you declined, so nothing was downloaded", reason="unsigned",
                                plugin=e.id, fix="ask the publisher to sign it with a key your policy trusts")

    def _attach_previous(self, plan: InstallPlan, previous: Installed) -> None:
        plan.previous = previous
        try:
            old = read_manifest(previous.path / MANIFEST_FILE)
            plan.diff = capability_diff(capability_lines(old.capabilities, old.sandbox), plan.subject.capabilities)
        except PolicyError:
            plan.diff = capability_diff((), plan.subject.capabilities)

    def _commit(self, plan: InstallPlan) -> Installed:
        return self._commit_many([plan])[0]

    def _commit_many(self, plans: list[InstallPlan]) -> list[Installed]:
        """Install every plan or none: each verified tree is written beside the plugin dir's
        entries, then all are renamed in (old trees set aside), the record and approvals
        are written once; any failure renames everything back."""
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        records = []
        with self._locked():
            final = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.plugins_dir))
            try:
                for i, plan in enumerate(plans):
                    executable = ()
                    if plan.manifest.entry.command and plan.manifest.entry.command[0] in plan.verified.files:
                        executable = (plan.manifest.entry.command[0],)
                    tree = final / f"new-{i}"
                    materialize(plan.verified, tree, executable=executable)
                    if plan.verified.signature_bytes is not None:
                        _write_new(tree / SIGNATURE_FILE, plan.verified.signature_bytes)
                    records.append(Installed(plan.plugin_id, plan.version, self.plugins_dir / plan.plugin_id,
                                             plan.source, plan.verified.digest, plan.verified.key_id, now))
                self._swap_in_all(plans, final, records)
            finally:
                _rmtree(final)
        for plan in plans:
            self._audit(plan.plugin_id, plan.version, "verified",
                        f"signed by {plan.verified.key_id}" if plan.signed else plan.verified.note or "unsigned")
            if plan.approval_needed:
                self._audit(plan.plugin_id, plan.version, "approved",
                            f"installed from {plan.source.describe()}; capabilities: "
                            + (", ".join(plan.capabilities) or "none"))
        return records

    def _swap_in_all(self, plans: list[InstallPlan], final: Path, records: list[Installed]) -> None:
        old_state = self._read_state()
        old_approvals = {p.plugin_id: self.approvals.get(p.plugin_id) for p in plans}
        undo: list[Callable[[], None]] = []
        try:
            for i, plan in enumerate(plans):
                target, tree, old = self.plugins_dir / plan.plugin_id, final / f"new-{i}", final / f"old-{i}"
                if plan.previous is None:
                    if target.exists():
                        raise RegistryError(f"`{target}` appeared while installing", reason="already-installed",
                                            plugin=plan.plugin_id, fix="run the command again")
                else:
                    os.rename(target, old)
                    undo.append(lambda t=target, o=old: os.rename(o, t))
                os.rename(tree, target)
                undo.append(lambda t=target, n=tree: os.rename(t, n))
            state = dict(old_state)
            for rec in records:
                state[rec.id] = rec.to_json()
            state_file = self.plugins_dir / STATE_FILE
            had_state = state_file.exists()
            self._write_state(state)
            undo.append(lambda: self._write_state(old_state) if had_state else state_file.unlink(missing_ok=True))
            for plan in plans:
                if plan.approval_needed:
                    undo.append(lambda pid=plan.plugin_id: _restore_approval(self.approvals, pid, old_approvals[pid]))
                    self.approvals.approve(plan.subject)
        except BaseException:
            for step in reversed(undo):
                step()
            raise

    def _audit(self, pid: str, version: str, event: str, detail: str) -> None:
        if self.audit_log is not None:
            self.audit_log.lifecycle(pid, version, event, detail)

    def _new_staging(self) -> Path:
        # Fetching and checking happen in a private temporary directory; the plugin dir is
        # touched only by the commit (a staging dir there, then one rename).
        return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX))

    def _ensure_dir(self) -> None:
        if not self.plugins_dir.is_dir():
            self.plugins_dir.mkdir(parents=True, mode=0o700)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold an exclusive ``flock`` on the plugin directory itself: no lock file to
        leave behind, and every promptline (any user) installing here waits for it."""
        self._ensure_dir()
        fd = os.open(self.plugins_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RegistryError(f"plugin directory `{self.plugins_dir}` is locked by another promptline",
                                            reason="io", fix="retry when the other install has finished") from None
                    time.sleep(LOCK_POLL)
            yield
        finally:
            os.close(fd)      # releases the lock

    def _read_state(self) -> dict[str, dict[str, Any]]:
        path = self.plugins_dir / STATE_FILE
        try:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            doc = None
        if len(raw) > MAX_STATE_BYTES or not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT or \
                not isinstance(doc.get("plugins"), dict):
            raise RegistryError(f"`{path}` is malformed", reason="io",
                                fix="delete it; installed plugins stay, but `update` will need --from SOURCE")
        return {k: v for k, v in doc["plugins"].items() if isinstance(v, dict)}

    def _write_state(self, state: dict[str, dict[str, Any]]) -> None:
        """Write the record; an empty record is deleted (nothing left behind)."""
        path = self.plugins_dir / STATE_FILE
        if not state:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        doc = {"format": STATE_FORMAT, "plugins": {k: state[k] for k in sorted(state)}}
        write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))


def decide_approval(plan: InstallPlan, *, yes: bool = False,
                    confirm: Callable[[InstallPlan], bool] | None = None) -> bool:
    """Apply the --yes rule (module docstring): True when the plan may be committed."""
    if not plan.approval_needed:
        return True
    if yes:
        if plan.yes_refusal:
            raise RegistryError(plan.yes_refusal, reason="yes-refused", plugin=plan.plugin_id,
                                fix="run it at a terminal without --yes and review it, or ask the publisher "
                                    "to sign it with a key your policy trusts")
        return True
    if confirm is None:
        raise RegistryError(f"{plan.version} needs your approval and there is no terminal to ask",
                            reason="not-approved", plugin=plan.plugin_id,
                            fix="run it at a terminal, or with --yes where the policy allows it")
    try:
        return confirm(plan) is True
    except Exception:  # noqa: BLE001 - a failing prompt means no approval
        return False


def decide_set_approval(plans: InstallSet, *, yes: bool = False,
                        confirm: Callable[[InstallSet], bool] | None = None) -> bool:
    """The --yes rule over a whole set, asked once: True when every plan may be committed."""
    needing = [p for p in plans.plans if p.approval_needed]
    if not needing:
        return True
    if yes:
        for plan in needing:
            decide_approval(plan, yes=True)
        return True
    if confirm is None:
        raise RegistryError(f"{', '.join(f'{p.plugin_id} {p.version}' for p in needing)} need your approval and "
                            "there is no terminal to ask", reason="not-approved", plugin=plans.root.plugin_id,
                            fix="run it at a terminal, or with --yes where the policy allows it")
    try:
        return confirm(plans) is True
    except Exception:  # noqa: BLE001 - a failing prompt means no approval
        return False


# ---------------------------------------------------------------------------------------
# Capabilities and the policy's verdict


def capability_checks(registry: Registry, manifest: Manifest, verified: VerifiedPlugin) -> list[CapabilityCheck]:
    """The policy's verdict on one representative request per capability the plugin asks
    for, computed as if the plugin were installed and approved."""
    pid = manifest.id
    text = verified.files[MANIFEST_FILE].decode("utf-8")
    target = registry.plugins_dir / pid
    try:
        ps = load_policy_set(registry.policy_files, [(str(target / MANIFEST_FILE), text)],
                             backend=registry.backend,
                             protected_paths=[(str(registry.plugins_dir), "the plugin directory")],
                             plugin_facts={pid: {"signed": verified.signed, "publisher": verified.key_id or ""}})
    except PolicyError as exc:
        raise RegistryError(f"the policy does not load with this plugin: {exc}", reason="bad-policy",
                            plugin=pid, fix="fix the policy or the manifest") from None
    out = [_check(ps, "load the plugin", Request("plugin.load", pid))]
    caps = manifest.capabilities
    for entry in caps.network:
        out.append(_check(ps, f"network: {entry}", _net_request(pid, entry)))
    for mode in ("read", "write"):
        for p in getattr(caps.filesystem, mode):
            out.append(_check(ps, f"filesystem.{mode}: {p}", Request(f"fs.{mode}", pid, path=_plain_path(p))))
    for name in caps.environment:
        out.append(_check(ps, f"environment: {name}", Request("env.read", pid, name=name.replace("*", "EXAMPLE"))))
    for prog in caps.process:
        out.append(_check(ps, f"process: {prog}", Request("process.exec", pid, path=prog, argv=(prog,))))
    if caps.native:
        out.append(_check(ps, "native: true", Request("native.load", pid, name="libexample.so")))
    return out


def _check(ps: Any, capability: str, request: Request) -> CapabilityCheck:
    d = ps.decide(request, use_cache=False)
    if d.rules and all(r.id.startswith("manifest:") for r in d.rules):
        reason = "granted by its manifest"
    elif d.rules:
        r = d.rules[0]
        reason = f"rule `{r.id}`" + (f": {r.message}" if r.message else "") + f" ({r.origin})"
    else:
        reason = d.reason()
    return CapabilityCheck(capability, request.action, request.resource, d.verdict.value, reason)


def _net_request(pid: str, entry: str) -> Request:
    spec = parse_net(entry)
    port = spec.port or DEFAULT_PORTS.get(spec.scheme) or 443
    if spec.cidr:
        if spec.cidr == "private":
            host = "127.0.0.1"
        else:
            net = ipaddress.ip_network(spec.cidr)
            host = str(next(iter(net.hosts()), net.network_address))
    elif spec.host == "*":
        host = "example.com"
    elif spec.host.startswith("*."):
        host = "sub." + spec.host[2:]
    else:
        host = spec.host
    return Request("net.connect", pid, host=host, port=port, scheme=spec.scheme)


def _plain_path(pattern: str) -> str:
    """A concrete path inside a granted path or glob (``~/notes/**`` -> ``~/notes/x``)."""
    head = pattern
    for i, c in enumerate(pattern):
        if c in "*?[":
            head = pattern[:i]
            break
    if head != pattern:
        return head.rstrip("/") + "/example"
    return pattern


# ---------------------------------------------------------------------------------------
# Helpers


def _check_entry(entry: IndexEntry, manifest: Manifest, verified: VerifiedPlugin) -> None:
    """The index must describe exactly what was downloaded."""
    def lie(what: str, said: str, found: str) -> RegistryError:
        return RegistryError(f"the index lies about {what}: it says `{said}`, the archive holds `{found}`",
                             reason="index-mismatch", plugin=entry.id,
                             fix="do not install it; tell the index's maintainer")
    if manifest.id != entry.id:
        raise lie("the plugin id", entry.id, manifest.id)
    if manifest.version != entry.version:
        raise lie(f"the version of `{entry.id}`", entry.version, manifest.version)
    if verified.digest != entry.digest:
        raise lie(f"the content of `{entry.id}` {entry.version}", entry.digest, verified.digest)
    if entry.key_id and verified.key_id and entry.key_id != verified.key_id:
        raise lie(f"the publisher key of `{entry.id}` {entry.version}", entry.key_id, verified.key_id)
    declared = sorted(capability_lines(manifest.capabilities, manifest.sandbox))
    if sorted(entry.capabilities) != declared:   # the capabilities shown before an unsigned fetch
        raise lie(f"the capabilities of `{entry.id}` {entry.version}", ", ".join(sorted(entry.capabilities)) or "none",
                  ", ".join(declared) or "none")
    if entry.requires != manifest.requires:
        raise lie(f"what `{entry.id}` {entry.version} requires", entry.requires, manifest.requires)
    if dict(entry.dependencies) != manifest.dependencies:
        raise lie(f"the dependencies of `{entry.id}` {entry.version}", json.dumps(dict(entry.dependencies)),
                  json.dumps(manifest.dependencies))


def _unsigned_why(entry: IndexEntry) -> str:
    if not entry.signature:
        return "not signed"
    return f"signed by key `{entry.key_id or 'unnamed'}`, which the policy does not trust"


def _tree_digest(path: Path) -> str:
    from .._signing import read_tree
    try:
        return read_tree(path).digest
    except SignatureError:
        return ""


def _restore_approval(store: ApprovalStore, plugin_id: str, old: Any) -> None:
    """Put back the approval ``plugin_id`` had before a failed commit (None: none)."""
    if old is None:
        store.revoke(plugin_id)
        return
    with store._locked():
        entries = store._read()
        entries[plugin_id] = old
        store._write(entries)


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _rmtree(path: Path) -> None:
    def onerror(func, p, exc_info):  # make read-only dirs removable, then retry once
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
    if path.exists() or path.is_symlink():
        shutil.rmtree(path, onerror=onerror)


__all__ = ["Registry", "InstallPlan", "UnsignedEntry", "InstallSet", "decide_set_approval", "Installed", "CapabilityCheck", "decide_approval", "capability_checks",
           "default_plugins_dir", "default_index", "STATE_FILE"]
