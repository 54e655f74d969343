"""Plugin archives: deterministic ``.tar.gz`` files, and extraction that trusts nothing.

An archive holds a plugin tree at its top level (``plugin.yaml``, ``plugin.sig``, code).
:func:`extract_archive` writes into a fresh staging directory and refuses, before writing
the offending entry:

- absolute names, ``..`` components, backslashes, control characters, empty components;
- anything but regular files and directories: symlinks, hard links, devices, fifos;
- an entry larger than :data:`MAX_MEMBER_BYTES`, a total over :data:`MAX_TOTAL_BYTES`,
  more than :data:`MAX_MEMBERS` entries, names longer than :data:`MAX_NAME_BYTES`,
  nesting deeper than :data:`MAX_DEPTH`, a compressed file over :data:`MAX_ARCHIVE_BYTES`;
- the same name twice;
- before ``tarfile`` parses anything, :func:`prescan_archive` walks the decompressed tar
  headers on the raw bytes (each 512-byte header read with ``TarInfo.frombuf``, nothing
  else of tarfile) and refuses PAX or GNU long-name/long-link headers over
  :data:`MAX_META_BYTES` (CPython's PAX parsing is quadratic; a GNU header's claimed size
  is allocated whole), global PAX headers, PAX headers that override a member's size or
  carry GNU sparse maps, GNU sparse members, more than :data:`MAX_META_RUN` extension
  headers in a row (tarfile recurses through them), gzip ``FEXTRA`` (tarfile reads it from
  the decompressed stream), more decompressed bytes than the member and total limits allow,
  and an archive that ends before its end-of-archive block;
- the scan and the extraction together taking longer than :data:`EXTRACT_BUDGET_S`.

Files are created with ``O_EXCL | O_NOFOLLOW`` inside directories the extractor made
itself, and since no link is ever created, no entry can reach outside the staging
directory. Modes from the archive are ignored (files 0600, directories 0700).
On any refusal the caller deletes the staging directory; nothing else was touched.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
import tarfile
import time
import zlib
from collections.abc import Mapping
from pathlib import Path

from .._signing import SIGNATURE_FILE
from ._errors import RegistryError

MAX_ARCHIVE_BYTES = 64 * 1024 * 1024     # compressed archive, on disk or downloaded
MAX_MEMBER_BYTES = 64 * 1024 * 1024      # one file inside an archive
MAX_TOTAL_BYTES = 256 * 1024 * 1024      # all files of one archive (= signing's MAX_TREE_BYTES)
MAX_MEMBERS = 10_000                     # entries in one archive (= signing's MAX_FILES)
MAX_NAME_BYTES = 1024                    # one entry's path
MAX_DEPTH = 32                           # directory nesting (= signing's MAX_DEPTH)
MAX_META_BYTES = 8 * 1024                # one PAX or GNU long-name header (names are <= 1 KiB)
MAX_META_RUN = 2                         # extension headers before one member
EXTRACT_BUDGET_S = 60.0                  # seconds for scanning and extracting one archive
CHUNK = 1024 * 1024                      # bytes copied at a time while extracting
ARCHIVE_MTIME = 0                        # fixed mtime, so an archive depends on content only


def build_archive(files: Mapping[str, bytes], signature: bytes | None = None) -> bytes:
    """A deterministic tar.gz of a plugin snapshot (sorted names, fixed times and owners)."""
    entries = dict(files)
    if signature is not None:
        entries[SIGNATURE_FILE] = signature
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for rel in sorted(entries, key=lambda p: p.encode("utf-8")):
            parts = rel.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    tar.addfile(_info(d, tarfile.DIRTYPE, 0, 0o755))
            data = entries[rel]
            tar.addfile(_info(rel, tarfile.REGTYPE, len(data), 0o644), io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=ARCHIVE_MTIME, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _info(name: str, kind: bytes, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.mtime = ARCHIVE_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike, *, plugin: str | None = None) -> Path:
    """Extract ``archive`` into the new directory ``dest`` and return the plugin root in it
    (``dest`` itself, or its single top-level directory when that holds ``plugin.yaml``)."""
    path = Path(archive)
    size = path.stat().st_size
    if size > MAX_ARCHIVE_BYTES:
        raise _bad(f"archive `{path.name}` is {size} bytes, over the limit of {MAX_ARCHIVE_BYTES}",
                   "too-large", plugin)
    deadline = time.monotonic() + EXTRACT_BUDGET_S
    prescan_archive(path, plugin=plugin, deadline=deadline)
    root = Path(dest)
    root.mkdir(mode=0o700)
    seen: set[str] = set()
    total = 0
    count = 0
    try:
        tar = tarfile.open(path, mode="r|gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _bad(f"`{path.name}` is not a tar.gz archive: {exc}", "bad-archive", plugin) from None
    try:
        with tar:
            for member in tar:
                _in_time(deadline, plugin)
                count += 1
                if count > MAX_MEMBERS:
                    raise _bad(f"archive holds more than {MAX_MEMBERS} entries", "too-large", plugin)
                rel = _check_name(member.name, plugin)
                if member.issym() or member.islnk():
                    kind = "symlink" if member.issym() else "hard link"
                    raise _bad(f"archive entry `{_clip(rel)}` is a {kind} (to `{_clip(member.linkname)}`); "
                               "archives may hold only files and directories", "bad-archive", plugin)
                if not (member.isreg() or member.isdir()):
                    raise _bad(f"archive entry `{_clip(rel)}` is a {_kind(member)}; archives may hold "
                               "only files and directories", "bad-archive", plugin)
                if rel in seen:
                    raise _bad(f"archive entry `{_clip(rel)}` appears twice", "bad-archive", plugin)
                seen.add(rel)
                if member.isdir():
                    _mkdirs(root, rel)
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    raise _bad(f"archive entry `{_clip(rel)}` is {member.size} bytes, over the limit of "
                               f"{MAX_MEMBER_BYTES}", "too-large", plugin)
                total += member.size
                if total > MAX_TOTAL_BYTES:
                    raise _bad(f"archive unpacks to more than {MAX_TOTAL_BYTES} bytes", "too-large", plugin)
                src = tar.extractfile(member)
                if src is None:  # pragma: no cover - isreg() members always have data
                    raise _bad(f"archive entry `{_clip(rel)}` has no data", "bad-archive", plugin)
                _write(root, rel, src, member.size, plugin, deadline)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise _bad(f"`{path.name}` is not a valid tar.gz archive: {exc}", "bad-archive", plugin) from None
    if (root / "plugin.yaml").is_file():
        return root
    tops = list(root.iterdir())
    if len(tops) == 1 and tops[0].is_dir() and (tops[0] / "plugin.yaml").is_file():
        return tops[0]
    raise _bad(f"archive `{path.name}` has no plugin.yaml at its top", "bad-archive", plugin)


# -- the pre-scan: raw tar headers, before tarfile --------------------------------------------

_EOF_HEADER = tarfile.EOFHeaderError  # type: ignore[attr-defined]  # the end-of-archive block
_META_TYPES = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_PAX_RECORD = re.compile(rb"([1-9][0-9]{0,9}) ")
_SCAN_SLACK = MAX_MEMBERS * 4 * 512 + 1024 * 1024   # headers, padding and the end blocks


class _Inflated:
    """The decompressed bytes of a gzip file, read forward in bounded pieces."""

    def __init__(self, fh, plugin: str | None, deadline: float) -> None:
        self._fh, self._plugin, self._deadline = fh, plugin, deadline
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""     # compressed input not consumed yet
        self._out = bytearray()
        self.total = 0

    def read(self, n: int) -> bytes:
        while len(self._out) < n and not self._z.eof:
            _in_time(self._deadline, self._plugin)
            if not self._pending:
                self._pending = self._fh.read(64 * 1024)
                if not self._pending:
                    break
            piece = self._z.decompress(self._pending, max(n - len(self._out), 64 * 1024))
            self._pending = self._z.unconsumed_tail
            self.total += len(piece)
            if self.total > MAX_TOTAL_BYTES + _SCAN_SLACK:
                raise _bad(f"archive decompresses to more than {MAX_TOTAL_BYTES + _SCAN_SLACK} bytes",
                           "too-large", self._plugin)
            self._out += piece
        out = bytes(self._out[:n])
        del self._out[:n]
        return out

    def skip(self, n: int) -> bool:
        while n > 0:
            got = len(self.read(min(n, CHUNK)))
            if not got:
                return False
            n -= got
        return True


def prescan_archive(archive: str | os.PathLike, *, plugin: str | None = None,
                    deadline: float | None = None) -> int:
    """Walk the tar headers of the gzip file ``archive`` without tarfile parsing anything
    but single 512-byte headers; raise RegistryError for what tarfile would spend time or
    memory on (see the module docstring). Returns the number of members."""
    deadline = time.monotonic() + EXTRACT_BUDGET_S if deadline is None else deadline
    name = Path(archive).name
    with open(archive, "rb") as fh:
        head = fh.read(10)
        if len(head) < 10 or head[:3] != b"\x1f\x8b\x08":
            raise _bad(f"`{name}` is not a tar.gz archive (no gzip header)", "bad-archive", plugin)
        if head[3] & 0xE4:   # FEXTRA, or reserved flag bits
            raise _bad(f"`{name}` has a gzip header with extra fields, which are not allowed in plugin "
                       "archives", "bad-archive", plugin)
        fh.seek(0)
        try:
            return _scan(_Inflated(fh, plugin, deadline), name, plugin)
        except zlib.error as exc:
            raise _bad(f"`{name}` is not a valid tar.gz archive: {exc}", "bad-archive", plugin) from None


def _scan(stream: _Inflated, name: str, plugin: str | None) -> int:
    members = total = run = 0
    while True:
        buf = stream.read(tarfile.BLOCKSIZE)
        if len(buf) < tarfile.BLOCKSIZE:
            raise _bad(f"`{name}` ends before its end-of-archive block (truncated)", "bad-archive", plugin)
        try:
            info = tarfile.TarInfo.frombuf(buf, "utf-8", "surrogateescape")
        except _EOF_HEADER:
            return members
        except tarfile.HeaderError as exc:
            raise _bad(f"`{name}` has an invalid tar header after {members} entries: {exc}",
                       "bad-archive", plugin) from None
        kind, size = info.type, info.size
        if size < 0:
            raise _bad(f"`{name}` has a header with a negative size", "bad-archive", plugin)
        if kind in _META_TYPES:
            what = "PAX" if kind in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE) else "GNU long-name"
            if size > MAX_META_BYTES:
                raise _bad(f"`{name}` has a {what} header of {size} bytes, over the limit of {MAX_META_BYTES} "
                           f"(after {members} entries)", "too-large", plugin)
            run += 1
            if run > MAX_META_RUN:
                raise _bad(f"`{name}` has more than {MAX_META_RUN} extension headers in a row",
                           "bad-archive", plugin)
            data = stream.read(_blocks(size))
            if len(data) < size:
                raise _bad(f"`{name}` ends inside a {what} header (truncated)", "bad-archive", plugin)
            if what == "PAX":
                _check_pax(data[:size], name, plugin)
            continue
        if kind == tarfile.XGLTYPE:
            raise _bad(f"`{name}` has a global PAX header, which plugin archives never need", "bad-archive", plugin)
        if kind == tarfile.GNUTYPE_SPARSE:
            raise _bad(f"`{name}` has a GNU sparse entry, which plugin archives never need", "bad-archive", plugin)
        run = 0
        members += 1
        if members > MAX_MEMBERS:
            raise _bad(f"archive holds more than {MAX_MEMBERS} entries", "too-large", plugin)
        if info.isreg() or kind not in tarfile.SUPPORTED_TYPES:   # tarfile skips these members' data
            if size > MAX_MEMBER_BYTES:
                raise _bad(f"archive entry `{_clip(info.name)}` is {size} bytes, over the limit of "
                           f"{MAX_MEMBER_BYTES}", "too-large", plugin)
            total += size
            if total > MAX_TOTAL_BYTES:
                raise _bad(f"archive unpacks to more than {MAX_TOTAL_BYTES} bytes", "too-large", plugin)
            if not stream.skip(_blocks(size)):
                raise _bad(f"`{name}` ends inside entry `{_clip(info.name)}` (truncated)", "bad-archive", plugin)


def _blocks(size: int) -> int:
    """Bytes ``size`` bytes of member data take in the archive (whole 512-byte blocks)."""
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def _check_pax(data: bytes, name: str, plugin: str | None) -> None:
    """Records ``"<len> <key>=<value>\\n"`` end to end; no size override, no sparse maps."""
    pos = 0
    while pos < len(data):
        m = _PAX_RECORD.match(data, pos)
        length = int(m.group(1)) if m else 0
        record = data[pos:pos + length]
        if not m or len(record) < length or not record.endswith(b"\n") or b"=" not in record[m.end() - pos:]:
            if not data[pos:].strip(b"\0"):
                return   # NUL padding after the last record
            raise _bad(f"`{name}` has a malformed PAX header", "bad-archive", plugin)
        key = record[m.end() - pos:].split(b"=", 1)[0]
        if key == b"size" or key.startswith(b"GNU.sparse"):
            raise _bad(f"`{name}` has a PAX header setting `{_clip(key.decode('utf-8', 'replace'))}`, which "
                       "plugin archives never need", "bad-archive", plugin)
        pos += length


def _in_time(deadline: float, plugin: str | None) -> None:
    if time.monotonic() > deadline:
        raise _bad(f"unpacking the archive took longer than {EXTRACT_BUDGET_S:g} s", "too-large", plugin)


def _check_name(name: str, plugin: str | None) -> str:
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise _bad(f"archive entry name `{_clip(name)}` is longer than {MAX_NAME_BYTES} bytes", "bad-archive", plugin)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _bad(f"archive entry `{_clip(name)}` has an absolute path", "bad-archive", plugin)
    if "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise _bad(f"archive entry `{_clip(name)!r}` has a backslash or control character in its name",
                   "bad-archive", plugin)
    parts = name.split("/")
    while parts and parts[0] == ".":
        parts.pop(0)
    while parts and parts[-1] == "":   # "dir/" names a directory
        parts.pop()
    if ".." in parts:
        raise _bad(f"archive entry `{_clip(name)}` climbs out of the archive with `..`", "bad-archive", plugin)
    if not parts or any(p in ("", ".") for p in parts):
        raise _bad(f"archive entry `{_clip(name)}` has an empty or `.` path component", "bad-archive", plugin)
    if len(parts) > MAX_DEPTH:
        raise _bad(f"archive entry `{_clip(name)}` is nested deeper than {MAX_DEPTH} levels", "too-large", plugin)
    return "/".join(parts)


def _mkdirs(root: Path, rel: str) -> Path:
    cur = root
    for part in rel.split("/"):
        cur = cur / part
        try:
            os.mkdir(cur, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(cur).st_mode):
                raise _bad(f"archive entry `{_clip(rel)}` collides with a file", "bad-archive", None) from None
    return cur


def _write(root: Path, rel: str, src, size: int, plugin: str | None, deadline: float) -> None:
    parent, _, name = rel.rpartition("/")
    directory = _mkdirs(root, parent) if parent else root
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(directory / name, flags, 0o600)
    except FileExistsError:
        raise _bad(f"archive entry `{_clip(rel)}` appears twice", "bad-archive", plugin) from None
    written = 0
    with os.fdopen(fd, "wb") as out:
        while True:
            _in_time(deadline, plugin)
            chunk = src.read(min(CHUNK, size - written + 1))
            if not chunk:
                break
            written += len(chunk)
            if written > size:  # pragma: no cover - tarfile never returns more than the header says
                raise _bad(f"archive entry `{_clip(rel)}` holds more data than its header says",
                           "bad-archive", plugin)
            out.write(chunk)
    if written != size:
        raise _bad(f"archive entry `{_clip(rel)}` is truncated: expected {size} bytes, found {written}",
                   "bad-archive", plugin)


def _kind(member: tarfile.TarInfo) -> str:
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "fifo"
    return f"special entry (type {member.type!r})"


def _clip(text: str, limit: int = 80) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bad(message: str, reason: str, plugin: str | None) -> RegistryError:
    return RegistryError(message, reason=reason, plugin=plugin,
                         fix="the archive is malformed or hostile; do not install it")


__all__ = ["build_archive", "extract_archive", "prescan_archive", "MAX_META_BYTES", "MAX_ARCHIVE_BYTES", "MAX_MEMBER_BYTES", "MAX_TOTAL_BYTES",
           "MAX_MEMBERS"]
