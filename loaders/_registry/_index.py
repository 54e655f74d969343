"""The registry index: a static tree anyone can host (a web server, a bucket, a directory).

    <index>/index.json
    <index>/archives/<id>/<id>-<version>.tar.gz
    <index>/archives/<id>/<id>-<version>.tar.gz.sha256     (sha256sum format, for people)

``index.json``::

    {"format": "promptline-index/v1",
     "plugins": {"<id>": {"name": ..., "description": ..., "versions": {"<version>": {
         "id": "<id>", "version": "<version>", "archive": "archives/<id>/<id>-<version>.tar.gz",
         "sha256": "<hex of the archive>", "size": <bytes>, "digest": "sha256:<plugin tree digest>",
         "requires": "<PEP 440>", "capabilities": ["network: ...", ...],
         "key": "ed25519:<b64>" | null, "key_id": "<16 hex>" | null,
         "dependencies": {"<plugin id>": "<PEP 440>"},      (signed when not empty)
         "signature": "<b64 of ed25519(ENTRY_PREFIX + canonical JSON of the signed fields)>" | null,
         "published_at": "<ISO time>"}}}},
     "reviews": {"<id>": [<review>, ...]}}                 (see ``_reviews``; optional)

The index is untrusted: everything it says is checked against what is downloaded (the
archive's SHA-256, the tree digest and signature, the manifest's id and version), and an
archive name may not leave the index tree. The entry's own signature binds the id,
version, archive hash and tree digest to a publisher key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from promptline.policy import key_ids

from .._errors import SignatureError
from .._http import FetchError, http_get
from .._json import loads as loads_untrusted
from .._signing import key_id as _key_id
from .._signing import parse_public_key
from ._archive import MAX_ARCHIVE_BYTES
from ._errors import RegistryError
from ._versions import SemVer, is_semver, parse_requires, requires_ok, spec_admits, version_spec

INDEX_FORMAT = "promptline-index/v1"
INDEX_FILE = "index.json"
INDEX_ENV = "PROMPTLINE_INDEX"
DEFAULT_INDEX = "https://plugins.promptline.dev/"
ENTRY_PREFIX = b"promptline-index-entry/v1\x00"       # domain separation for entry signatures
SIGNED_FIELDS = ("id", "version", "archive", "sha256", "size", "digest", "requires", "capabilities")
MAX_INDEX_BYTES = 16 * 1024 * 1024     # index.json; thousands of plugins and versions
FETCH_DEADLINE = 120.0                 # seconds for one whole download, connect to last byte
PLUGIN_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\Z")
ARCHIVE_NAME = re.compile(r"^[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*\Z")
HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class IndexEntry:
    """One published version of one plugin, as the index describes it."""

    id: str
    version: str
    archive: str
    sha256: str
    size: int
    digest: str
    requires: str = ""
    capabilities: tuple[str, ...] = ()
    name: str = ""
    description: str = ""
    key: str | None = None
    key_id: str | None = None
    signature: str | None = None
    published_at: str = ""
    dependencies: tuple[tuple[str, str], ...] = ()     # (plugin id, PEP 440 specifier), sorted

    def signed_message(self) -> bytes:
        doc: dict[str, Any] = {k: getattr(self, k) for k in SIGNED_FIELDS}
        doc["capabilities"] = list(self.capabilities)
        if self.dependencies:           # entries without dependencies keep their v1 signatures
            doc["dependencies"] = dict(self.dependencies)
        return ENTRY_PREFIX + json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "archive": self.archive, "sha256": self.sha256,
                "size": self.size, "digest": self.digest, "requires": self.requires,
                "capabilities": list(self.capabilities), "name": self.name,
                "description": self.description, "key": self.key, "key_id": self.key_id,
                "signature": self.signature, "published_at": self.published_at,
                "dependencies": dict(self.dependencies)}

    def verify(self, trusted_keys: tuple[str, ...] | list[str], *, require_signature: bool) -> str | None:
        """Check the entry's signature; return the signer's key id when it is trusted.

        A signature that does not verify is refused always; an unsigned entry, or one
        signed by an untrusted key, is refused when ``require_signature``."""
        where = f"index entry `{self.id}` {self.version}"
        if not self.signature:
            if require_signature:
                raise RegistryError(f"{where} is not signed", reason="signature", plugin=self.id,
                                    fix="the policy requires signed plugins: ask the publisher to publish with --key")
            return None
        try:
            public = parse_public_key(self.key or "")
            raw = base64.b64decode(self.signature, validate=True)
        except (SignatureError, binascii.Error, ValueError):
            raise RegistryError(f"{where} has a malformed key or signature", reason="signature",
                                plugin=self.id, fix="do not install it; tell the index's maintainer") from None
        kid = _key_id(public)
        if self.key_id not in (None, kid):
            raise RegistryError(f"{where} names key `{self.key_id}` but carries key `{kid}`", reason="signature",
                                plugin=self.id, fix="do not install it; tell the index's maintainer")
        try:
            public.verify(raw, self.signed_message())
        except InvalidSignature:
            raise RegistryError(f"{where}: signature is not valid for key `{kid}` (the entry was altered)",
                                reason="signature", plugin=self.id,
                                fix="do not install it; tell the index's maintainer") from None
        trusted = key_ids(trusted_keys)
        if kid not in trusted:
            if require_signature:
                raise RegistryError(f"{where} is signed by key `{kid}`, which is not trusted", reason="signature",
                                    plugin=self.id,
                                    fix=f"add `{self.key}` to `trusted_keys` in a policy if you trust this publisher")
            return None
        return kid


@dataclass(frozen=True)
class Index:
    """A parsed index and where it came from (a URL or a directory)."""

    location: str
    plugins: dict[str, dict[str, IndexEntry]] = field(default_factory=dict)

    @classmethod
    def open(cls, location: str | os.PathLike) -> Index:
        """Read ``index.json`` from an http(s)/file URL or a directory (or the file itself)."""
        base = index_base(location)
        data = _read(_join(base, INDEX_FILE), MAX_INDEX_BYTES, what="index")
        return cls(base, parse_index(data, base))

    @property
    def is_remote(self) -> bool:
        return self.location.startswith(("http://", "https://"))

    def versions(self, plugin_id: str) -> list[IndexEntry]:
        """Every version of ``plugin_id``, newest first."""
        found = self.plugins.get(plugin_id)
        if not found:
            raise RegistryError(f"plugin `{plugin_id}` is not in the index {self.location}", reason="not-found",
                                plugin=plugin_id, fix="check the name with `promptline plugin search`")
        return sorted(found.values(), key=lambda e: SemVer(e.version), reverse=True)

    def resolve(self, plugin_id: str, wanted: str | None = None, *, current: str) -> IndexEntry:
        """The newest version matching ``wanted`` whose ``requires`` admits PromptLine
        ``current``. Pre-releases only when ``wanted`` names one."""
        spec = version_spec(wanted)
        matching = [e for e in self.versions(plugin_id) if spec_admits(spec, e.version)
                    and (not SemVer(e.version).prerelease or wanted)]
        if not matching:
            raise RegistryError(f"no version of `{plugin_id}` matches `{wanted}` in the index", reason="not-found",
                                plugin=plugin_id, fix="list the versions with `promptline plugin search "
                                                      f"{plugin_id}`")
        fitting = [e for e in matching if requires_ok(e.requires, current)]
        if not fitting:
            newest = matching[0]
            raise RegistryError(f"no version of `{plugin_id}` works with promptline {current} (the newest, "
                                f"{newest.version}, requires `{newest.requires}`)", reason="incompatible",
                                plugin=plugin_id, fix="upgrade promptline")
        return fitting[0]

    def search(self, query: str = "") -> list[IndexEntry]:
        """The newest version of every plugin whose id, name or description holds ``query``."""
        q = query.lower()
        out = []
        for pid in sorted(self.plugins):
            newest = self.versions(pid)[0]
            if not q or q in pid or q in newest.name.lower() or q in newest.description.lower():
                out.append(newest)
        return out

    def download(self, entry: IndexEntry, dest: str | os.PathLike) -> Path:
        """Fetch ``entry``'s archive to ``dest`` and check its size and SHA-256."""
        data = _read(_join(self.location, entry.archive), min(MAX_ARCHIVE_BYTES, max(entry.size, 0)) or
                     MAX_ARCHIVE_BYTES, what="archive", plugin=entry.id)
        got = hashlib.sha256(data).hexdigest()
        if got != entry.sha256:
            raise RegistryError(f"archive `{entry.archive}` does not match the index: expected sha256 "
                                f"{entry.sha256}, found {got}", reason="checksum", plugin=entry.id,
                                fix="do not install it; the archive was changed or damaged on its way")
        path = Path(dest)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return path


# ---------------------------------------------------------------------------------------
# Parsing


def parse_index(data: bytes, where: str) -> dict[str, dict[str, IndexEntry]]:
    def bad(what: str) -> RegistryError:
        return RegistryError(f"index `{where}` is malformed: {what}", reason="bad-index",
                             fix="tell the index's maintainer; nothing was installed")

    try:
        doc = loads_untrusted(data)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
        raise bad(f"expected format `{INDEX_FORMAT}`, found `{_clip(doc.get('format') if isinstance(doc, dict) else doc)}`")
    plugins = doc.get("plugins")
    if not isinstance(plugins, dict):
        raise bad("`plugins` is not a mapping")
    out: dict[str, dict[str, IndexEntry]] = {}
    for pid, info in plugins.items():
        if not isinstance(pid, str) or not PLUGIN_ID.match(pid):
            raise bad(f"plugin id `{_clip(pid)}` is not a valid id")
        versions = info.get("versions") if isinstance(info, dict) else None
        if not isinstance(versions, dict):
            raise bad(f"plugin `{pid}` has no `versions` mapping")
        out[pid] = {}
        for ver, e in versions.items():
            out[pid][ver] = _entry(pid, ver, e, info, bad)
    return out


def _entry(pid: str, ver: Any, e: Any, info: dict, bad) -> IndexEntry:
    if not isinstance(ver, str) or not is_semver(ver):
        raise bad(f"plugin `{pid}` lists version `{_clip(ver)}`, which is not semantic versioning")
    if not isinstance(e, dict):
        raise bad(f"`{pid}` {ver} is not a mapping")
    if e.get("id", pid) != pid or e.get("version", ver) != ver:
        raise bad(f"`{pid}` {ver} names itself `{_clip(e.get('id'))}` {_clip(e.get('version'))}")
    archive, sha, size, digest = e.get("archive"), e.get("sha256"), e.get("size", 0), e.get("digest")
    if not isinstance(archive, str) or not safe_archive_name(archive):
        raise bad(f"`{pid}` {ver} has an unsafe archive name `{_clip(archive)}`")
    if not isinstance(sha, str) or not HEX64.match(sha):
        raise bad(f"`{pid}` {ver} has no valid sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad(f"`{pid}` {ver} has an invalid size")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise bad(f"`{pid}` {ver} has no tree digest")
    caps = e.get("capabilities") or []
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise bad(f"`{pid}` {ver} has malformed capabilities")
    deps = e.get("dependencies") or {}
    if not isinstance(deps, dict) or not all(isinstance(k, str) and PLUGIN_ID.match(k) and isinstance(v, str)
                                             for k, v in deps.items()):
        raise bad(f"`{pid}` {ver} has malformed dependencies")
    for dep, spec in deps.items():
        try:
            if spec:
                parse_requires(spec)
        except ValueError:
            raise bad(f"`{pid}` {ver} depends on `{dep}` `{_clip(spec)}`, which is not a version range") from None
    texts = {}
    for k in ("requires", "name", "description", "key", "key_id", "signature", "published_at"):
        v = e.get(k, info.get(k) if k in ("name", "description") else None)
        if v is not None and not isinstance(v, str):
            raise bad(f"`{pid}` {ver} field `{k}` is not text")
        texts[k] = v
    return IndexEntry(pid, ver, archive, sha, size, digest, texts["requires"] or "", tuple(caps),
                      texts["name"] or "", texts["description"] or "", texts["key"], texts["key_id"],
                      texts["signature"], texts["published_at"] or "",
                      tuple(sorted(deps.items())))


def check_plugin_id(text: Any) -> str:
    """``text`` when it is a plugin id (what the registry turns into a directory name), else
    RegistryError: one clear line whatever it holds (100,000 characters, NUL, bidi...)."""
    if isinstance(text, str) and PLUGIN_ID.match(text):
        return text
    raise RegistryError(f"`{_clip(text)}` is not a plugin id", reason="bad-source",
                        fix="a plugin id is 1-64 lowercase letters, digits and `-` (see `promptline plugin list`)")


def safe_archive_name(name: str) -> bool:
    """A relative POSIX path inside the index tree: no scheme, no ``..``, no leading ``/``."""
    return bool(ARCHIVE_NAME.match(name)) and all(p not in ("", ".", "..") for p in name.split("/"))


# ---------------------------------------------------------------------------------------
# Reading


def index_base(location: str | os.PathLike) -> str:
    """The index tree's root: an ``http(s)://`` URL ending in ``/``, or an absolute directory."""
    text = os.fspath(location)
    if text.startswith(("http://", "https://")):
        parsed = urllib.parse.urlsplit(text)
        path = parsed.path
        if path.endswith("/" + INDEX_FILE):
            path = path[: -len(INDEX_FILE)]
        if not path.endswith("/"):
            path += "/"
        return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))
    if text.startswith("file://"):
        text = urllib.parse.unquote(urllib.parse.urlsplit(text).path)
    elif "://" in text:
        raise RegistryError(f"index `{_clip(text)}` is not an http(s) URL, a file URL or a directory",
                            reason="bad-source", fix="give an https:// URL or a directory")
    path = Path(text).expanduser()
    if path.name == INDEX_FILE:
        path = path.parent
    return str(path.resolve())


def _join(base: str, rel: str) -> str:
    if base.startswith(("http://", "https://")):
        return urllib.parse.urljoin(base, urllib.parse.quote(rel))
    root = Path(base)
    target = Path(os.path.realpath(root / rel))
    if not target.is_relative_to(Path(os.path.realpath(root))):
        raise RegistryError(f"index entry `{_clip(rel)}` points outside the index directory", reason="bad-index",
                            fix="tell the index's maintainer; nothing was installed")
    return str(target)


def _read(where: str, limit: int, *, what: str, plugin: str | None = None) -> bytes:
    if where.startswith(("http://", "https://")):
        try:
            data = http_get(where, limit=limit, deadline_s=FETCH_DEADLINE,
                            headers={"User-Agent": "promptline-registry/1"})
        except FetchError as exc:
            if exc.kind == "too-large":
                raise _too_big(what, where, limit, plugin) from None
            code = "not-found" if exc.status == 404 else "fetch-failed"
            fix = {"deadline": "the server is too slow or stalls on purpose; try again later or use another "
                               "index", "redirect": "use the index's final URL, on https"}.get(
                exc.kind, "check the index URL and your network")
            raise RegistryError(f"cannot fetch {what} `{_clip(where, 120)}`: {exc}", reason=code, plugin=plugin,
                                fix=fix) from None
    else:
        try:
            with open(where, "rb") as fh:
                data = fh.read(limit + 1)
        except FileNotFoundError:
            raise RegistryError(f"{what} `{where}` not found", reason="not-found", plugin=plugin,
                                fix="check the index directory (publish creates it)") from None
        except OSError as exc:
            raise RegistryError(f"cannot read {what} `{where}`: {exc.strerror}", reason="fetch-failed",
                                plugin=plugin, fix="check its permissions") from None
    if len(data) > limit:
        raise _too_big(what, where, limit, plugin)
    return data


def _too_big(what: str, where: str, limit: int, plugin: str | None) -> RegistryError:
    return RegistryError(f"{what} `{where}` is larger than {limit} bytes", reason="too-large", plugin=plugin,
                         fix="do not install it; the index or archive is wrong or hostile")


def _clip(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["check_plugin_id", "Index", "IndexEntry", "INDEX_FORMAT", "INDEX_FILE", "INDEX_ENV", "DEFAULT_INDEX", "index_base",
           "parse_index", "safe_archive_name"]
