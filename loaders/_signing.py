"""Plugin signatures: ed25519 over a canonical digest of the whole plugin tree.

The tree digest covers every regular file under the plugin directory (relative POSIX path
and SHA-256, sorted by path), except ``plugin.sig`` at the top and the interpreter caches
in :data:`IGNORED_DIRS`. Symlinks and special files anywhere in the tree are refused, so
nothing outside the tree can be pulled in. The tree is read once, through directory file
descriptors opened with ``O_NOFOLLOW``; :func:`verify_plugin` returns those very bytes
(:class:`VerifiedPlugin.files`) so the loader runs exactly what was verified, with no
window to swap a file between the check and the load.

``plugin.sig`` is JSON::

    {"format": "promptline-signature/v1", "key": "ed25519:<base64>", "key_id": "<16 hex>",
     "digest": "sha256:<hex>", "files": {"<path>": "<sha256 hex>", ...},
     "signature": "<base64 of ed25519(SIGNED_PREFIX + digest)>"}

The signature covers the digest, which is computed from ``files``; the file list lets a
refusal say exactly which file was added, removed or changed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from promptline.policy import raw_key_id

from ._errors import SignatureError

SIGNATURE_FILE = "plugin.sig"
MANIFEST_FILE = "plugin.yaml"
SIGNATURE_FORMAT = "promptline-signature/v1"
TREE_FORMAT = b"promptline-tree/v1\n"
SIGNED_PREFIX = b"promptline-plugin-signature/v1\x00"   # domain separation for the signed message
KEY_PREFIX = "ed25519:"

IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".git", ".hg", ".svn"})  # never signed, never loaded
"""Interpreter and test caches that running a plugin's own tests creates; never signed,
never part of a snapshot, so never loaded."""

MAX_FILES = 10_000                   # files in one plugin tree
MAX_TREE_BYTES = 256 * 1024 * 1024   # total bytes held in memory for one plugin snapshot
MAX_DEPTH = 32                       # directory nesting
MAX_SIG_BYTES = 4 * 1024 * 1024      # plugin.sig (a JSON list of files and digests)


# ---------------------------------------------------------------------------------------
# Keys


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    """First 16 hex digits of sha256 over the raw 32-byte public key."""
    raw = public_key if isinstance(public_key, bytes) else _raw_public(public_key)
    return raw_key_id(raw)


def format_public_key(public_key: Ed25519PublicKey) -> str:
    """``ed25519:<base64 raw public key>``."""
    return KEY_PREFIX + base64.b64encode(_raw_public(public_key)).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Parse ``ed25519:<base64>``; any other prefix, bad base64 or wrong length is an error
    (a key's type is never guessed)."""
    if not isinstance(text, str) or not text.startswith(KEY_PREFIX):
        raise SignatureError(f"key `{_clip(str(text), 40)}` is not an ed25519 key", reason="bad-key",
                             expected="ed25519:<base64>", found=_clip(str(text), 40),
                             fix="write it as `ed25519:<base64 of the 32-byte public key>`")
    body = text[len(KEY_PREFIX):].strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SignatureError(f"key `{_clip(text, 40)}` does not hold a 32-byte ed25519 public key",
                             reason="bad-key", expected="32 bytes", found=f"{len(raw)} bytes",
                             fix="copy the key again from `promptline keys list`")
    return Ed25519PublicKey.from_public_bytes(raw)


def generate_key(private_key_path: str | os.PathLike) -> str:
    """Create an ed25519 key pair: the private key as PKCS8 PEM with mode 0600 at
    ``private_key_path`` (never overwritten), the public key next to it as ``<path>.pub``.
    Returns the public key as ``ed25519:<base64>``."""
    path = Path(private_key_path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise SignatureError(f"key file `{path}` already exists", reason="bad-key",
                             fix="choose another name or delete the old key first") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(path, 0o600)
    public = format_public_key(key.public_key())
    pub_path = path.with_name(path.name + ".pub")
    pub_path.write_text(public + "\n", encoding="ascii")
    return public


def load_private_key(private_key_path: str | os.PathLike) -> Ed25519PrivateKey:
    """Load a PKCS8 PEM ed25519 private key; refuse keys readable by group or others."""
    path = Path(private_key_path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise SignatureError(f"private key `{path}` not found", reason="bad-key",
                             fix="create one with `promptline keys generate`") from None
    except OSError as exc:
        raise SignatureError(f"cannot read private key `{path}`: {exc.strerror}", reason="bad-key",
                             fix="check the path and its permissions") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if os.name == "posix" and st.st_mode & 0o077:
            raise SignatureError(f"private key `{path}` is readable by others "
                                 f"(mode {stat.S_IMODE(st.st_mode):04o})", reason="bad-key",
                                 expected="0600", found=f"{stat.S_IMODE(st.st_mode):04o}",
                                 fix=f"run `chmod 600 {path}`")
        data = fh.read(64 * 1024)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"`{path}` is not an unencrypted PEM private key", reason="bad-key",
                             fix="create one with `promptline keys generate`") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"`{path}` is not an ed25519 key", reason="bad-key",
                             expected="ed25519", found=type(key).__name__.removesuffix("PrivateKey").lower(),
                             fix="create one with `promptline keys generate`")
    return key


# ---------------------------------------------------------------------------------------
# The tree


@dataclass(frozen=True)
class PluginTree:
    """An in-memory snapshot of a plugin directory: ``files`` maps each relative POSIX
    path to its bytes; ``digest`` is the canonical tree digest (``sha256:<hex>``)."""

    root: Path
    files: Mapping[str, bytes]
    hashes: Mapping[str, str]
    digest: str
    signature_bytes: bytes | None = field(default=None, repr=False)

    @property
    def manifest_digest(self) -> str | None:
        """sha256 of plugin.yaml's bytes, or None when the tree has none."""
        data = self.files.get(MANIFEST_FILE)
        return None if data is None else "sha256:" + hashlib.sha256(data).hexdigest()

    @property
    def code_digest(self) -> str:
        return self.digest


@dataclass(frozen=True)
class VerifiedPlugin(PluginTree):
    """A snapshot whose signature checked out (``signed``) or, where signatures are not
    required, an unsigned snapshot (``signed`` false, ``key_id`` None)."""

    signed: bool = False
    key_id: str | None = None
    public_key: str | None = None
    note: str = ""
    untrusted_key_id: str | None = None   # signed, validly, by a key the policy does not trust

    @property
    def state(self) -> str:
        """``trusted`` (signed by a trusted key), ``untrusted-key`` (validly signed by another
        key) or ``unsigned`` — three states, reported alike by the audit log and the CLI."""
        if self.signed:
            return "trusted"
        return "untrusted-key" if self.untrusted_key_id else "unsigned"

    def describe(self) -> str:
        """One phrase for messages and audit records."""
        if self.signed:
            return f"signed by trusted key {self.key_id}"
        if self.untrusted_key_id:
            return f"signed by untrusted key {self.untrusted_key_id}"
        return "unsigned"


def tree_digest(hashes: Mapping[str, str]) -> str:
    """Canonical digest of a {relpath: sha256 hex} listing."""
    h = hashlib.sha256(TREE_FORMAT)
    for rel in sorted(hashes, key=lambda p: p.encode("utf-8")):
        h.update(rel.encode("utf-8") + b"\x00" + hashes[rel].encode("ascii") + b"\n")
    return "sha256:" + h.hexdigest()


def read_tree(root: str | os.PathLike, *, plugin: str | None = None) -> PluginTree:
    """Read the whole plugin tree into memory; refuse symlinks, special files and odd names."""
    root_path = Path(os.path.realpath(os.fspath(root)))
    files: dict[str, bytes] = {}
    sig: list[bytes] = []
    total = [0]
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(root_path, flags)
    except OSError as exc:
        raise SignatureError(f"cannot open plugin directory `{root_path}`: {exc.strerror}",
                             reason="unreadable", plugin=plugin, path=str(root_path),
                             fix="check the path") from None
    try:
        _walk(fd, "", 0, files, sig, total, root_path, plugin)
    finally:
        os.close(fd)
    hashes = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    return PluginTree(root=root_path, files=MappingProxyType(files), hashes=MappingProxyType(hashes),
                      digest=tree_digest(hashes), signature_bytes=sig[0] if sig else None)


def _walk(dir_fd: int, prefix: str, depth: int, files: dict[str, bytes], sig: list[bytes],
          total: list[int], root: Path, plugin: str | None) -> None:
    if depth > MAX_DEPTH:
        raise SignatureError(f"directory `{prefix}` is nested deeper than {MAX_DEPTH} levels",
                             reason="too-large", plugin=plugin, path=prefix)
    with os.scandir(dir_fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        name = entry.name
        rel = f"{prefix}{name}"
        _check_name(name, rel, plugin)
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            target = _readlink(dir_fd, name)
            raise SignatureError(f"`{rel}` is a symlink (to `{_clip(target, 80)}`); plugin trees "
                                 "may hold only regular files and directories", reason="symlink",
                                 plugin=plugin, path=rel, expected="regular file", found="symlink",
                                 fix="replace the link with a copy of the file")
        if stat.S_ISDIR(st.st_mode):
            if name in IGNORED_DIRS:
                continue
            sub = os.open(name, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0),
                          dir_fd=dir_fd)
            try:
                _check_same(sub, st, rel, plugin)
                _walk(sub, rel + "/", depth + 1, files, sig, total, root, plugin)
            finally:
                os.close(sub)
            continue
        if not stat.S_ISREG(st.st_mode):
            raise SignatureError(f"`{rel}` is a special file ({_kind(st.st_mode)})", reason="special-file",
                                 plugin=plugin, path=rel, expected="regular file", found=_kind(st.st_mode),
                                 fix="remove it from the plugin directory")
        if rel == SIGNATURE_FILE:
            sig.append(_read_file(dir_fd, name, rel, st, plugin, MAX_SIG_BYTES))
            continue
        if len(files) >= MAX_FILES:
            raise SignatureError(f"plugin tree holds more than {MAX_FILES} files", reason="too-large",
                                 plugin=plugin, fix="remove files the plugin does not need")
        data = _read_file(dir_fd, name, rel, st, plugin, MAX_TREE_BYTES - total[0])
        total[0] += len(data)
        files[rel] = data


def _read_file(dir_fd: int, name: str, rel: str, st: os.stat_result, plugin: str | None,
               limit: int) -> bytes:
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0),
                     dir_fd=dir_fd)
    except OSError as exc:
        raise SignatureError(f"cannot read `{rel}`: {exc.strerror}", reason="unreadable", plugin=plugin,
                             path=rel, fix="check the file's permissions") from None
    with os.fdopen(fd, "rb") as fh:
        _check_same(fh.fileno(), st, rel, plugin)
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise SignatureError(f"plugin tree is larger than {MAX_TREE_BYTES} bytes (at `{rel}`)",
                             reason="too-large", plugin=plugin, path=rel,
                             fix="remove files the plugin does not need")
    return data


def _check_same(fd: int, before: os.stat_result, rel: str, plugin: str | None) -> None:
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino) or \
            stat.S_IFMT(now.st_mode) != stat.S_IFMT(before.st_mode):
        raise SignatureError(f"`{rel}` changed while it was being read", reason="unreadable",
                             plugin=plugin, path=rel, fix="retry once nothing is writing the plugin")


def _check_name(name: str, rel: str, plugin: str | None) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise SignatureError(f"file name `{rel.encode('utf-8', 'backslashreplace').decode()}` is not "
                             "valid UTF-8", reason="bad-name", plugin=plugin,
                             fix="rename the file") from None
    if any(ord(c) < 32 or ord(c) == 127 for c in name) or "\\" in name:
        raise SignatureError(f"file name `{rel!r}` contains a control character or backslash",
                             reason="bad-name", plugin=plugin, path=rel, fix="rename the file")


def _readlink(dir_fd: int, name: str) -> str:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return "?"


def _kind(mode: int) -> str:
    for test, label in ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                        (stat.S_ISBLK, "block device")):
        if test(mode):
            return label
    return "unknown type"


# ---------------------------------------------------------------------------------------
# Signing and verifying


def sign_plugin(root: str | os.PathLike, private_key_path: str | os.PathLike) -> VerifiedPlugin:
    """Sign the plugin tree at ``root`` with the key at ``private_key_path``; write
    ``plugin.sig`` (atomically) and return the signed snapshot."""
    key = load_private_key(private_key_path)
    tree = read_tree(root)
    if MANIFEST_FILE not in tree.files:
        raise SignatureError(f"`{tree.root}` has no {MANIFEST_FILE}", reason="malformed",
                             path=MANIFEST_FILE, fix="sign the plugin's directory, the one holding plugin.yaml")
    public = key.public_key()
    signature = key.sign(SIGNED_PREFIX + tree.digest.encode("ascii"))
    doc = {
        "format": SIGNATURE_FORMAT,
        "key": format_public_key(public),
        "key_id": key_id(public),
        "digest": tree.digest,
        "files": dict(sorted(tree.hashes.items())),
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    text = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    tmp = tree.root / f".{SIGNATURE_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, tree.root / SIGNATURE_FILE)
    return VerifiedPlugin(root=tree.root, files=tree.files, hashes=tree.hashes, digest=tree.digest,
                          signature_bytes=text, signed=True, key_id=doc["key_id"], public_key=doc["key"])


def verify_plugin(root: str | os.PathLike, trusted_keys: Iterable[str], *,
                  require_signature: bool = True, plugin: str | None = None) -> VerifiedPlugin:
    """Read the plugin tree once and check its signature against ``trusted_keys``.

    Returns the verified snapshot; raise SignatureError naming what was expected and what
    was found. With ``require_signature=False`` an unsigned plugin, or one signed by a key
    that is not trusted, comes back with ``signed=False``; a signature that does not match
    the files (tampering) is refused either way.
    """
    trusted = _trusted(trusted_keys)
    plugin = plugin or os.path.realpath(os.fspath(root))
    tree = read_tree(root, plugin=plugin)
    if tree.signature_bytes is None:
        if require_signature:
            raise SignatureError(f"`{tree.root}` is not signed: `{SIGNATURE_FILE}` not found",
                                 reason="unsigned", plugin=plugin, path=SIGNATURE_FILE,
                                 expected="a signature by a trusted key", found="none",
                                 fix=f"sign it with `promptline plugin sign {tree.root} --key KEY`")
        return _unsigned(tree, "not signed")
    doc = _parse_signature(tree.signature_bytes, plugin)
    public = parse_public_key(doc["key"])
    kid = key_id(public)
    if doc.get("key_id") not in (None, kid):
        raise SignatureError(f"`{SIGNATURE_FILE}` names key id `{doc.get('key_id')}` but carries key `{kid}`",
                             reason="malformed", plugin=plugin, path=SIGNATURE_FILE,
                             expected=kid, found=str(doc.get("key_id")), fix="sign the plugin again")
    signed_hashes: dict[str, str] = doc["files"]
    digest = tree_digest(signed_hashes)
    if digest != doc["digest"]:
        raise SignatureError(f"`{SIGNATURE_FILE}` file list does not match its digest", reason="bad-signature",
                             plugin=plugin, path=SIGNATURE_FILE, expected=doc["digest"], found=digest,
                             fix="sign the plugin again")
    try:
        public.verify(doc["signature"], SIGNED_PREFIX + digest.encode("ascii"))
    except InvalidSignature:
        raise SignatureError(f"signature in `{SIGNATURE_FILE}` is not valid for key `{kid}`",
                             reason="bad-signature", plugin=plugin, path=SIGNATURE_FILE,
                             expected=f"a signature by `{kid}`", found="an invalid signature",
                             fix="the plugin was altered after signing: reinstall it or sign it again") from None
    _compare(signed_hashes, tree.hashes, plugin)
    if tree.digest != digest:  # unreachable after _compare; kept as a second lock
        raise SignatureError("tree digest mismatch", reason="bad-signature", plugin=plugin,
                             expected=digest, found=tree.digest)
    if kid not in trusted:
        if require_signature:
            expected = ", ".join(f"`{k}`" for k in sorted(trusted)) or "none configured"
            raise SignatureError(f"signed by key `{kid}`, which is not trusted", reason="untrusted-key",
                                 plugin=plugin, expected=f"one of {expected}", found=kid,
                                 fix=f"add `{doc['key']}` to `trusted_keys` in the org policy if you trust "
                                     "this publisher")
        return _unsigned(tree, f"signed by untrusted key `{kid}`", untrusted_key_id=kid)
    return VerifiedPlugin(root=tree.root, files=tree.files, hashes=tree.hashes, digest=tree.digest,
                          signature_bytes=tree.signature_bytes, signed=True, key_id=kid,
                          public_key=doc["key"])


def materialize(tree: PluginTree, dest: str | os.PathLike, *, executable: Iterable[str] = ()) -> Path:
    """Write the snapshot's bytes into a new private directory ``dest`` (mode 0700, files
    0600; the relative paths in ``executable`` 0700), for sandboxes that need files on disk
    (a process plugin's working copy, a wasm preopen). What runs there is exactly what was
    verified, whatever happens to the original directory later. File modes are not part of
    the signature, so the caller names the executables (e.g. from the verified manifest)."""
    root = Path(dest)
    root.mkdir(mode=0o700)
    run = set(executable)
    for rel, data in sorted(tree.files.items()):
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts):  # read_tree never yields these; stay safe
            raise SignatureError(f"refusing to write `{rel}` outside the snapshot", reason="bad-name", path=rel)
        target = root.joinpath(*parts)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     0o700 if rel in run else 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return root


def _unsigned(tree: PluginTree, note: str, untrusted_key_id: str | None = None) -> VerifiedPlugin:
    return VerifiedPlugin(root=tree.root, files=tree.files, hashes=tree.hashes, digest=tree.digest,
                          signature_bytes=tree.signature_bytes, signed=False, key_id=None,
                          public_key=None, note=note, untrusted_key_id=untrusted_key_id)


def _trusted(keys: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    if isinstance(keys, str):
        keys = [keys]
    return {key_id(k): k for k in (parse_public_key(text) for text in keys)}


def _compare(signed: Mapping[str, str], actual: Mapping[str, str], plugin: str | None) -> None:
    """Refuse the first difference between the signed listing and the files on disk."""
    removed = {signed[r]: r for r in sorted(set(signed) - set(actual), reverse=True)}
    for rel in sorted(set(actual) - set(signed)):
        if actual[rel] in removed:
            old = removed[actual[rel]]
            raise SignatureError(f"file `{old}` was renamed to `{rel}` after signing", reason="file-renamed",
                                 plugin=plugin, path=rel, expected=f"`{old}`", found=f"`{rel}`",
                                 fix="reinstall the plugin")
    for rel in sorted(set(signed) | set(actual)):
        if rel not in actual:
            raise SignatureError(f"file `{rel}` was removed after signing", reason="file-removed",
                                 plugin=plugin, path=rel, expected=f"sha256 {signed[rel][:16]}…",
                                 found="no file", fix="reinstall the plugin")
        if rel not in signed:
            raise SignatureError(f"file `{rel}` was added after signing", reason="file-added", plugin=plugin,
                                 path=rel, expected="no file", found=f"sha256 {actual[rel][:16]}…",
                                 fix="remove it or sign the plugin again")
        if signed[rel] != actual[rel]:
            raise SignatureError(f"file `{rel}` changed after signing", reason="file-changed", plugin=plugin,
                                 path=rel, expected=f"sha256 {signed[rel][:16]}…",
                                 found=f"sha256 {actual[rel][:16]}…", fix="reinstall the plugin")


def _parse_signature(data: bytes, plugin: str | None) -> dict[str, Any]:
    def bad(what: str) -> SignatureError:
        return SignatureError(f"`{SIGNATURE_FILE}` is malformed: {what}", reason="malformed", plugin=plugin,
                              path=SIGNATURE_FILE, fix="sign the plugin again")
    from ._json import loads
    try:
        doc = loads(data)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if not isinstance(doc, dict):
        raise bad("not a JSON object")
    if doc.get("format") != SIGNATURE_FORMAT:
        raise SignatureError(f"`{SIGNATURE_FILE}` has format `{_clip(str(doc.get('format')), 40)}`",
                             reason="malformed", plugin=plugin, path=SIGNATURE_FILE,
                             expected=SIGNATURE_FORMAT, found=str(doc.get("format")),
                             fix="sign the plugin again with this PromptLine")
    for key in ("key", "digest", "signature"):
        if not isinstance(doc.get(key), str):
            raise bad(f"`{key}` is missing")
    files = doc.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)
            for k, v in files.items()):
        raise bad("`files` must map paths to sha256 hex digests")
    try:
        doc["signature"] = base64.b64decode(doc["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise bad("`signature` is not base64") from None
    if len(doc["signature"]) != 64:
        raise bad("`signature` is not 64 bytes")
    return doc


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["PluginTree", "VerifiedPlugin", "read_tree", "tree_digest", "sign_plugin", "verify_plugin", "materialize",
           "generate_key", "load_private_key", "parse_public_key", "format_public_key", "key_id",
           "SIGNATURE_FILE", "MANIFEST_FILE", "IGNORED_DIRS"]
