"""Org policy bundles: build, sign, read and verify (pure: bytes in, bytes out, no network).

A bundle is a gzip'ed tar, deterministic byte for byte, holding::

    bundle.json        {"format": "promptline-bundle/v1", "revision": 42,
                        "files": {"policies/org.yaml": "<sha256>", "keys/ci.pub": "<sha256>"}}
    policies/*.yaml    org policy files
    keys/*.pub         trusted publisher keys (``ed25519:<base64>``, one per file)
    bundle.sig         {"format": "promptline-bundle-signature/v1", "key": "ed25519:...",
                        "key_id": "...", "manifest_sha256": "...", "signature": "<base64>"}

The signature covers the SHA-256 of ``bundle.json``; ``bundle.json`` covers every other file.
Reading refuses anything but those names as regular files (no links, no directories, no
``..``, no duplicates), and bounds the compressed size, the expanded size and the member count.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .._errors import SignatureError
from .._signing import format_public_key, key_id, parse_public_key

FORMAT = "promptline-bundle/v1"
SIG_FORMAT = "promptline-bundle-signature/v1"
MANIFEST = "bundle.json"
SIGNATURE = "bundle.sig"
SIGNED_PREFIX = b"promptline-bundle-signature/v1\x00"   # domain separation from plugin signatures
MAX_BUNDLE_BYTES = 8 << 20       # compressed, as downloaded
MAX_EXPANDED_BYTES = 32 << 20    # the tar inside
MAX_MEMBERS = 512
MEMBER = re.compile(r"^(?:policies/[A-Za-z0-9][A-Za-z0-9._-]{0,100}\.ya?ml|keys/[A-Za-z0-9][A-Za-z0-9._-]{0,100}\.pub)$")


class BundleError(SignatureError):
    """A bundle is malformed, tampered, signed by an untrusted key, or not newer (``reason``):
    ``malformed``, ``unsafe-member``, ``too-large``, ``file-changed``, ``file-added``,
    ``file-removed``, ``unsigned``, ``untrusted-key``, ``bad-signature``, ``rollback``, ``bad-policy``."""

    code = "bundle"


@dataclass(frozen=True)
class Bundle:
    """A verified (or, from :func:`read_bundle`, merely well-formed) bundle."""

    revision: int
    digest: str                                  # sha256 of bundle.json: the bundle's identity
    files: Mapping[str, bytes] = field(repr=False)   # policies/* and keys/*, exactly as signed
    key_id: str | None = None                     # who signed it (None: unsigned)

    @property
    def policy_names(self) -> list[str]:
        return sorted(n for n in self.files if n.startswith("policies/"))

    @property
    def trusted_keys(self) -> list[str]:
        return [self.files[n].decode("ascii").strip() for n in sorted(self.files) if n.startswith("keys/")]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- build and sign ---------------------------------------------------------------------


def collect(src: str | os.PathLike) -> dict[str, bytes]:
    """The bundle members of directory ``src``: its ``*.yaml``/``*.yml`` policy files (not
    ``*.test.yaml``) and ``keys/*.pub``. Symlinks and odd names are refused, never followed."""
    root = Path(src)
    if not root.is_dir():
        raise BundleError(f"`{root}` is not a directory", reason="malformed",
                          fix="pass the directory that holds the org policy files")
    files: dict[str, bytes] = {}
    for entry, prefix in [(p, "policies/") for p in sorted(root.iterdir()) if p.suffix in (".yaml", ".yml")] + \
            [(p, "keys/") for p in sorted((root / "keys").glob("*.pub")) if (root / "keys").is_dir()]:
        if entry.name.endswith((".test.yaml", ".test.yml")):
            continue
        name = prefix + entry.name
        st = os.lstat(entry)
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"`{entry}` is not a regular file (symlinks are never bundled)", reason="unsafe-member",
                              fix="copy the file into the directory")
        if not MEMBER.match(name):
            raise BundleError(f"`{entry}` has a name a bundle cannot hold", reason="unsafe-member",
                              fix="use letters, digits, `.`, `_` and `-` only")
        files[name] = entry.read_bytes()
    if not any(n.startswith("policies/") for n in files):
        raise BundleError(f"`{root}` holds no policy file (*.yaml)", reason="malformed",
                          fix="put the org policy files in it")
    for name in files:
        if name.startswith("keys/"):
            try:
                parse_public_key(files[name].decode("ascii", "replace").strip())
            except SignatureError as exc:
                raise BundleError(f"{root / name[5:]}: {exc}", reason="malformed", fix="one `ed25519:...` key per file") \
                    from None
    return files


def manifest_bytes(revision: int, files: Mapping[str, bytes]) -> bytes:
    return (json.dumps({"format": FORMAT, "revision": revision,
                        "files": {n: _sha(files[n]) for n in sorted(files)}}, indent=2, sort_keys=True) + "\n").encode()


def pack(members: Mapping[str, bytes]) -> bytes:
    """A deterministic gzip'ed tar of ``members`` (sorted, mtime 0, root-owned, 0644)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members, key=lambda n: (n != MANIFEST, n != SIGNATURE, n)):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(members[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


def build_bundle(src: str | os.PathLike, revision: int) -> bytes:
    """An unsigned bundle of directory ``src`` at ``revision`` (a positive integer)."""
    if type(revision) is not int or revision < 1:
        raise BundleError(f"revision `{revision}` must be a positive integer", reason="malformed",
                          fix="pass --revision N, larger than the last published one")
    files = collect(src)
    return pack({MANIFEST: manifest_bytes(revision, files), **files})


def sign_bundle(data: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """``data`` (a well-formed bundle) re-packed with a ``bundle.sig`` by ``private_key``."""
    members = _members(data)
    manifest = members[MANIFEST]
    _check_files(_parse_manifest(manifest), members)
    digest = _sha(manifest)
    sig = {"format": SIG_FORMAT, "key": format_public_key(private_key.public_key()),
           "key_id": key_id(private_key.public_key()), "manifest_sha256": digest,
           "signature": base64.b64encode(private_key.sign(SIGNED_PREFIX + bytes.fromhex(digest))).decode()}
    members[SIGNATURE] = (json.dumps(sig, indent=2, sort_keys=True) + "\n").encode()
    return pack(members)


# -- read and verify --------------------------------------------------------------------


def read_bundle(data: bytes) -> Bundle:
    """Parse and check the digests of ``data`` without checking who signed it."""
    members = _members(data)
    manifest = members[MANIFEST]
    revision = _check_files(_parse_manifest(manifest), members)
    return Bundle(revision, _sha(manifest), {n: b for n, b in members.items() if n not in (MANIFEST, SIGNATURE)})


def verify_bundle(data: bytes, trusted_keys: Iterable[str]) -> Bundle:
    """The bundle in ``data`` if every file matches its digest and ``bundle.sig`` is a valid
    signature by one of ``trusted_keys``; BundleError otherwise."""
    members = _members(data)
    manifest = members[MANIFEST]
    revision = _check_files(_parse_manifest(manifest), members)
    raw_sig = members.get(SIGNATURE)
    if raw_sig is None:
        raise BundleError("the bundle is not signed", reason="unsigned",
                          fix="sign it with `promptline policy bundle sign BUNDLE --key KEY`")
    try:
        sig = json.loads(raw_sig)
        if type(sig) is not dict or sig.get("format") != SIG_FORMAT:
            raise ValueError("not a bundle signature")
        signer = parse_public_key(sig["key"])
        signature = base64.b64decode(sig["signature"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error, SignatureError) as exc:
        raise BundleError(f"`{SIGNATURE}` is malformed ({_clip(str(exc))})", reason="malformed",
                          fix="sign the bundle again") from None
    trusted = {key_id(parse_public_key(k)): k for k in trusted_keys}
    kid = key_id(signer)
    if kid not in trusted:
        raise BundleError(f"the bundle is signed by key {kid}, which this host does not trust", reason="untrusted-key",
                          expected=" or ".join(sorted(trusted)) or "a configured key", found=kid,
                          fix="set `bundle.public_key` to the org's bundle key, or sign with that key")
    digest = _sha(manifest)
    try:
        parse_public_key(trusted[kid]).verify(signature, SIGNED_PREFIX + bytes.fromhex(digest))
    except InvalidSignature:
        raise BundleError("the bundle's signature does not match its manifest (tampered)", reason="bad-signature",
                          fix="download the bundle again; if it persists, the server holds a tampered bundle") from None
    return Bundle(revision, digest, {n: b for n, b in members.items() if n not in (MANIFEST, SIGNATURE)}, kid)


def _members(data: bytes) -> dict[str, bytes]:
    if not isinstance(data, bytes | bytearray) or len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"a bundle is at most {MAX_BUNDLE_BYTES} bytes", reason="too-large",
                          fix="bundle fewer or smaller files")
    try:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = d.decompress(bytes(data), MAX_EXPANDED_BYTES + 1)
        if len(raw) > MAX_EXPANDED_BYTES:
            raise BundleError(f"the bundle expands beyond {MAX_EXPANDED_BYTES} bytes", reason="too-large",
                              fix="bundle fewer or smaller files")
        if not d.eof:
            raise BundleError("the bundle is truncated (gzip stream ends early)", reason="malformed",
                              fix="download it again")
    except zlib.error as exc:
        raise BundleError(f"not a gzip'ed bundle ({exc})", reason="malformed",
                          fix="build it with `promptline policy bundle build`") from None
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for n, info in enumerate(tar):
                if n >= MAX_MEMBERS:
                    raise BundleError(f"the bundle has more than {MAX_MEMBERS} members", reason="too-large",
                                      fix="bundle fewer files")
                name = info.name
                if name not in (MANIFEST, SIGNATURE) and not MEMBER.match(name):
                    raise BundleError(f"the bundle holds `{_clip(name)}`, a name no bundle may hold",
                                      reason="unsafe-member", fix="rebuild it with `promptline policy bundle build`")
                if not info.isreg():
                    raise BundleError(f"`{_clip(name)}` in the bundle is not a regular file", reason="unsafe-member",
                                      fix="rebuild it with `promptline policy bundle build`")
                if name in members:
                    raise BundleError(f"`{name}` appears twice in the bundle", reason="unsafe-member",
                                      fix="rebuild it with `promptline policy bundle build`")
                fh = tar.extractfile(info)
                members[name] = fh.read() if fh is not None else b""
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"the bundle is not a readable tar ({_clip(str(exc))})", reason="malformed",
                          fix="download it again, or rebuild it") from None
    if MANIFEST not in members:
        raise BundleError(f"the bundle has no `{MANIFEST}`", reason="malformed",
                          fix="build it with `promptline policy bundle build`")
    return members


def _parse_manifest(data: bytes) -> dict:
    try:
        m = json.loads(data)
    except ValueError as exc:
        raise BundleError(f"`{MANIFEST}` is not JSON ({_clip(str(exc))})", reason="malformed",
                          fix="rebuild the bundle") from None
    if type(m) is not dict or m.get("format") != FORMAT:
        raise BundleError(f"`{MANIFEST}` is not a {FORMAT} manifest", reason="malformed", fix="rebuild the bundle")
    rev, files = m.get("revision"), m.get("files")
    if type(rev) is not int or rev < 1:
        raise BundleError(f"`{MANIFEST}`: revision must be a positive integer", reason="malformed",
                          fix="rebuild the bundle with --revision N")
    if type(files) is not dict or not all(type(k) is str and type(v) is str for k, v in files.items()):
        raise BundleError(f"`{MANIFEST}`: files must map names to SHA-256 digests", reason="malformed",
                          fix="rebuild the bundle")
    return m


def _check_files(manifest: dict, members: Mapping[str, bytes]) -> int:
    listed: dict[str, str] = manifest["files"]
    present = {n for n in members if n not in (MANIFEST, SIGNATURE)}
    for name in sorted(set(listed) - present):
        raise BundleError(f"`{_clip(name)}` is listed in the manifest but missing", reason="file-removed",
                          fix="rebuild the bundle")
    for name in sorted(present - set(listed)):
        raise BundleError(f"`{name}` is in the bundle but not in its manifest", reason="file-added",
                          fix="rebuild the bundle")
    for name in sorted(present):
        if _sha(members[name]) != listed[name]:
            raise BundleError(f"`{name}` does not match its digest in the manifest (tampered)", reason="file-changed",
                              expected=listed[name][:16], found=_sha(members[name])[:16],
                              fix="download the bundle again, or rebuild it")
    if not any(n.startswith("policies/") for n in present):
        raise BundleError("the bundle holds no policy file", reason="malformed",
                          fix="rebuild it from a directory with the org policy files")
    return manifest["revision"]


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
