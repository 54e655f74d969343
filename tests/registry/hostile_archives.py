"""Hostile plugin archives, crafted byte by byte (used by the tests and benchmarks/hostile_archives.py).

Each builder returns the bytes of a .tar.gz; none allocates what its headers claim.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zlib

END = b"\0" * 1024


def header(name: str, kind: bytes, size: int) -> bytes:
    """One 512-byte ustar header of ``kind`` claiming ``size`` bytes (checksum right)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = 0o644
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def pax_records(total: int) -> bytes:
    """PAX records (``comment=...``) adding up to about ``total`` bytes."""
    out = io.BytesIO()
    body = b"comment=" + b"a" * 90 + b"\n"
    rec = b"%d " % (len(body) + 4) + body
    while out.tell() < total:
        out.write(rec)
    return out.getvalue()


def regular(name: str, data: bytes) -> bytes:
    return header(name, tarfile.REGTYPE, len(data)) + pad(data)


def gz(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


def pax_claiming(size: int) -> bytes:
    """The short archive: a PAX header claiming ``size`` bytes, and a few of them."""
    return gz(header("././@PaxHeader", tarfile.XHDTYPE, size) + pax_records(64))


def pax_real(size: int) -> bytes:
    """A PAX header really holding ``size`` bytes of records, then a file (compresses well)."""
    records = pax_records(size)
    return gz(header("././@PaxHeader", tarfile.XHDTYPE, len(records)) + pad(records) +
              regular("plugin.yaml", b"id: x\n") + END)


def pax_digits(size: int) -> bytes:
    """A PAX header of ``size`` ASCII digits: CPython's ``hdrcharset`` search is quadratic in
    it (64 KiB: seconds; 4 MiB: hours) and the archive is a few hundred bytes."""
    return gz(header("././@PaxHeader", tarfile.XHDTYPE, size) + pad(b"1" * size) +
              regular("plugin.yaml", b"id: x\n") + END)


def gnu_longname_claiming(size: int) -> bytes:
    """A GNU long-name header claiming ``size`` bytes (e.g. 1 GiB) and holding none."""
    return gz(header("././@LongLink", tarfile.GNUTYPE_LONGNAME, size) + END)


def pax_chain(n: int) -> bytes:
    """``n`` small PAX headers in a row before one file (tarfile recurses through them)."""
    one = b"%d path=plugin.yaml\n" % (len("path=plugin.yaml\n") + 3)
    raw = b"".join(header("././@PaxHeader", tarfile.XHDTYPE, len(one)) + pad(one) for _ in range(n))
    return gz(raw + regular("plugin.yaml", b"id: x\n") + END)


def global_pax() -> bytes:
    rec = b"%d size=0\n" % (len("size=0\n") + 3)
    return gz(header("pax_global_header", tarfile.XGLTYPE, len(rec)) + pad(rec) + END)


def pax_size_override() -> bytes:
    """A PAX ``size`` record that moves where tarfile looks for the next header."""
    rec = b"%d size=0\n" % (len("size=0\n") + 3)
    hidden = header("././@LongLink", tarfile.GNUTYPE_LONGNAME, 1 << 30)
    return gz(header("././@PaxHeader", tarfile.XHDTYPE, len(rec)) + pad(rec) +
              header("plugin.yaml", tarfile.REGTYPE, 512) + hidden + END)


def sparse() -> bytes:
    h = bytearray(header("s", tarfile.REGTYPE, 0))
    h[156:157] = tarfile.GNUTYPE_SPARSE
    h[482] = 1   # "isextended": tarfile reads extension blocks while this is set
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % (sum(h) & 0o777777)
    ext = b"\0" * 504 + b"\1" + b"\0" * 7
    return gz(bytes(h) + ext * 64 + END)


def gzip_fextra() -> bytes:
    """A gzip header with FEXTRA (tarfile reads it from the decompressed stream)."""
    raw = regular("plugin.yaml", b"id: x\n") + END
    co = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = co.compress(raw) + co.flush()
    extra = b"AB\x02\x00hi"
    return (b"\x1f\x8b\x08\x04" + b"\0" * 4 + b"\x00\xff" + struct.pack("<H", len(extra)) + extra + body +
            struct.pack("<II", zlib.crc32(raw), len(raw)))


def truncated() -> bytes:
    return gz(header("plugin.yaml", tarfile.REGTYPE, 4096) + b"x" * 100)


def gnu_longname_real(size: int) -> bytes:
    """A GNU long-name header really followed by ``size`` bytes ("a"s): ~1/1000 compressed."""
    return bomb(size, kind=tarfile.GNUTYPE_LONGNAME, fill=b"a")


def bomb(size: int, *, kind: bytes = tarfile.REGTYPE, fill: bytes = b"\0") -> bytes:
    """One member of ``size`` zero bytes: a few KiB compressed."""
    co = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [co.compress(header("././@LongLink" if kind != tarfile.REGTYPE else "big", kind, size))]
    chunk = fill * (1 << 20)
    for _ in range(size >> 20):
        out.append(co.compress(chunk))
    out.append(co.compress(END))
    out.append(co.flush())
    return b"".join(out)


HOSTILE = {
    "pax-4MiB-claimed (short archive)": lambda: pax_claiming(4 << 20),
    "pax-4MiB-records": lambda: pax_real(4 << 20),
    "pax-4MiB-digits (quadratic)": lambda: pax_digits(4 << 20),
    "pax-64KiB-digits (quadratic)": lambda: pax_digits(64 << 10),
    "gnu-longname-1GiB-claimed": lambda: gnu_longname_claiming(1 << 30),
    "gnu-longname-16MiB-real": lambda: gnu_longname_real(16 << 20),
    "pax-chain-3000": lambda: pax_chain(3000),
    "global-pax": global_pax,
    "pax-size-override": pax_size_override,
    "gnu-sparse": sparse,
    "gzip-fextra": gzip_fextra,
    "truncated": truncated,
}
