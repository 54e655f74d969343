"""Publish a plugin into an index tree (see ``_index`` for the layout).

What is published is the author's directory without ``.git``/``.hg``/``.svn`` (and the
caches ``read_tree`` skips), copied aside. With a key, :func:`publish` signs that copy and
the index entry (the author's directory is not modified). Without one, it publishes an
already-signed tree (its ``plugin.sig`` must match the files), or an unsigned tree only
when asked to (``unsigned=True``), since a policy with ``require_signature`` refuses it.

Versions are immutable: publishing a version already in the index with different content
is refused; publishing the very same archive again changes nothing. The archive (and its
``.sha256``) is written first, then ``index.json`` is replaced atomically under a lock, so
a reader never sees an entry whose archive is missing.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from filelock import FileLock, Timeout

from promptline.enforcer import write_atomic
from promptline.policy import PolicyError

from .._approval import capability_lines
from .._discovery import manifest_from_tree
from .._errors import SignatureError
from .._signing import (
    SIGNATURE_FILE,
    PluginTree,
    format_public_key,
    load_private_key,
    materialize,
    read_tree,
    sign_plugin,
    tree_digest,
    verify_plugin,
)
from ._archive import MAX_ARCHIVE_BYTES, build_archive
from ._errors import RegistryError
from ._index import INDEX_FILE, INDEX_FORMAT, IndexEntry, _read, index_base, parse_index

INDEX_LOCK = ".index.lock"
VCS_DIRS = frozenset({".git", ".hg", ".svn"})     # never published (a clone would not have them)
LOCK_TIMEOUT = 30.0          # seconds to wait for another publish into the same index


def publish(plugin_dir: str | os.PathLike, index_dir: str | os.PathLike, *,
            key: str | os.PathLike | None = None, unsigned: bool = False) -> IndexEntry:
    """Add ``plugin_dir`` to the index tree at ``index_dir`` (created if missing); return the entry."""
    if str(index_dir).startswith(("http://", "https://")):
        raise RegistryError("publish writes into a directory, not a URL", reason="bad-source",
                            fix="publish into a local copy of the index tree and upload that")
    base = Path(index_base(index_dir))
    try:
        private = load_private_key(key) if key is not None else None
    except SignatureError as exc:
        raise RegistryError(exc.message, reason="signature", fix=exc.fix) from None
    with tempfile.TemporaryDirectory(prefix=".promptline-publish-") as tmp:
        snapshot, manifest = _snapshot(Path(plugin_dir), Path(tmp) / "plugin", key, unsigned)
    archive = build_archive(snapshot.files, snapshot.signature_bytes)
    if len(archive) > MAX_ARCHIVE_BYTES:
        raise RegistryError(f"the archive is {len(archive)} bytes, over the limit of {MAX_ARCHIVE_BYTES}",
                            reason="too-large", plugin=manifest.id, fix="remove files the plugin does not need")
    sha = hashlib.sha256(archive).hexdigest()
    rel = f"archives/{manifest.id}/{manifest.id}-{manifest.version}.tar.gz"
    entry = IndexEntry(
        id=manifest.id, version=manifest.version, archive=rel, sha256=sha, size=len(archive),
        digest=snapshot.digest, requires=manifest.requires,
        capabilities=tuple(sorted(capability_lines(manifest.capabilities, manifest.sandbox))),
        name=manifest.name, description=manifest.description,
        key=snapshot.public_key, key_id=snapshot.key_id,
        dependencies=tuple(sorted(manifest.dependencies.items())),
        published_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    if private is not None:
        if format_public_key(private.public_key()) != snapshot.public_key:  # pragma: no cover - same key
            raise RegistryError("the key changed while publishing", reason="signature", plugin=manifest.id)
        entry = replace(entry, signature=base64.b64encode(private.sign(entry.signed_message())).decode("ascii"))
    base.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(base / INDEX_LOCK), timeout=LOCK_TIMEOUT)
    try:
        lock.acquire()
    except Timeout:
        raise RegistryError(f"index `{base}` is locked by another publish", reason="io",
                            fix="retry when it has finished") from None
    try:
        index_path = base / INDEX_FILE
        if index_path.exists():
            raw = _read(str(index_path), 64 * 1024 * 1024, what="index")
            parse_index(raw, str(base))          # refuse to extend a broken index
            doc = json.loads(raw.decode("utf-8"))
        else:
            doc = {"format": INDEX_FORMAT, "plugins": {}}
        info = doc["plugins"].setdefault(manifest.id, {"versions": {}})
        old = info["versions"].get(manifest.version)
        if old is not None:
            if old.get("sha256") == sha:
                return entry if old.get("signature") is None else replace(entry, signature=old["signature"],
                                                                          published_at=old.get("published_at", ""))
            raise RegistryError(f"version {manifest.version} is already in the index with different content",
                                reason="exists", plugin=manifest.id,
                                fix="versions are immutable: bump `version` in plugin.yaml and publish again")
        target = base / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, archive)
        write_atomic(target.with_name(target.name + ".sha256"), f"{sha}  {target.name}\n".encode())
        info["versions"][manifest.version] = entry.to_json()
        info["name"] = manifest.name
        info["description"] = manifest.description
        info["latest"] = max(info["versions"], key=_semver_key)
        write_atomic(index_path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    finally:
        lock.release()
    return entry


def _snapshot(plugin_dir: Path, copy: Path, key, unsigned: bool):
    """The tree to publish: ``plugin_dir`` without VCS directories, copied aside and signed
    there with ``key`` (the author's directory is not modified), or its own ``plugin.sig``
    checked against its files. Returns (snapshot, manifest)."""
    try:
        tree = read_tree(plugin_dir)
        files = {rel: data for rel, data in tree.files.items() if rel.split("/", 1)[0] not in VCS_DIRS}
        hashes = {rel: tree.hashes[rel] for rel in files}
        materialize(PluginTree(tree.root, files, hashes, tree_digest(hashes)), copy)
        if key is not None:
            signed = sign_plugin(copy, key)
            snapshot = verify_plugin(copy, [signed.public_key or ""], require_signature=True)
        elif tree.signature_bytes is not None:
            (copy / SIGNATURE_FILE).write_bytes(tree.signature_bytes)
            own = json.loads(tree.signature_bytes.decode("utf-8")).get("key", "")
            snapshot = verify_plugin(copy, [own], require_signature=True)
        elif unsigned:
            snapshot = verify_plugin(copy, [], require_signature=False)
        else:
            raise RegistryError(f"`{plugin_dir}` is not signed", reason="signature",
                                fix="publish with --key KEY (or --unsigned, which policies requiring "
                                    "signatures refuse)")
        return snapshot, manifest_from_tree(snapshot, origin=str(plugin_dir / "plugin.yaml"))
    except SignatureError as exc:
        raise RegistryError(exc.message, reason="signature", plugin=exc.plugin, fix=exc.fix) from None
    except (UnicodeDecodeError, ValueError, AttributeError):
        raise RegistryError(f"`{plugin_dir}/plugin.sig` is malformed", reason="signature",
                            fix="sign it again with `promptline plugin sign` or publish with --key") from None
    except PolicyError as exc:
        raise RegistryError(f"the manifest is invalid: {exc}", reason="bad-manifest",
                            fix="fix plugin.yaml before publishing") from None


def _semver_key(version: str):
    from ._versions import SemVer
    return SemVer(version)


__all__ = ["publish"]
