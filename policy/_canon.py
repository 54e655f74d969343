"""Canonical forms: one function per kind of name, used by every entry point (docs/design.md §5a).

A rule is only as good as the names it sees. ``Request`` puts its host in canonical form on
construction, the compiler puts manifest and policy host patterns in the same form, and the
CEL helpers fold whatever they are given the same way:

- :func:`host_spellings` / :func:`canonical_host`: a host as the resolver receives it. Every
  numeric spelling the C resolver accepts (``127.1``, ``2130706433``, ``0x7f.1``, octal,
  zero-padded) is the address it means; IPv4-mapped and IPv4-compatible IPv6 is the IPv4
  address; names are mapped with UTS #46 (fullwidth letters and dots fold, lowercase), without
  a trailing dot, and encoded to A-labels. Python's socket encodes with IDNA 2003 (the
  ``idna`` codec), other clients with IDNA 2008: where the two differ (``faß.de``), the first
  spelling is Python's and the others follow; a deny matches if any spelling does.
- :func:`program_path`: the executable the kernel will run for a program name (PATH lookup as
  ``execvp`` does it, then ``realpath``), never ``argv[0]``.

Paths are resolved by the enforcer (``promptline.enforcer`` resolves symlinks with its own
private ``realpath``); ``Request`` keeps the lexical spelling as an alias.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import posixpath
import re
import socket
import stat as _stat_mod
import types

import idna


def _private_realpath():
    """A copy of ``posixpath.realpath`` whose ``os`` and ``stat`` names were bound at import:
    patching ``os.lstat``, ``os.readlink`` or ``stat.S_ISLNK`` later changes nothing here."""
    frozen_os = types.SimpleNamespace(
        **{n: getattr(os, n) for n in ("lstat", "stat", "readlink", "getcwd", "getcwdb",
                                        "fspath", "fsencode", "fsdecode", "sep", "environ")},
        path=posixpath)
    frozen_stat = types.SimpleNamespace(**{n: getattr(_stat_mod, n) for n in dir(_stat_mod)
                                           if not n.startswith("__")})
    g = dict(vars(posixpath))
    g["os"] = frozen_os
    g["stat"] = frozen_stat
    ns = {}
    for name, obj in vars(posixpath).items():
        if isinstance(obj, types.FunctionType):
            ns[name] = types.FunctionType(obj.__code__, g, obj.__name__, obj.__defaults__,
                                          obj.__closure__)
            if obj.__kwdefaults__:
                ns[name].__kwdefaults__ = dict(obj.__kwdefaults__)
    g.update(ns)
    return ns["realpath"]


private_realpath = _private_realpath()
"""``os.path.realpath`` (POSIX order: symlinks are followed before ``..`` is applied), immune
to later patches of ``os``/``stat``; the enforcer's hook and ``Request`` use this one."""

_inet_aton = socket.inet_aton
_inet_ntoa = socket.inet_ntoa
_IPv6 = ipaddress.IPv6Address
_ip_address = ipaddress.ip_address
_stat = os.stat
_S_ISREG = _stat_mod.S_ISREG
_access = os.access
_X_OK = os.X_OK
_realpath = private_realpath

# An already-canonical DNS name: lowercase ASCII labels, no trailing dot, not starting with a
# digit (only names starting with a digit can be numeric addresses for inet_aton).
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_-]*(?:\.[a-z0-9_-]+)*")
_IPV4_COMPAT = ipaddress.ip_network("::/96")


def _fold_ip(ip) -> str:
    """The canonical text of an address: IPv4-mapped/-compatible IPv6 as IPv4, no zone."""
    if isinstance(ip, _IPv6):
        if ip.scope_id:
            ip = _IPv6(str(ip).split("%", 1)[0])
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if ip in _IPV4_COMPAT and int(ip) > 1:     # ::a.b.c.d, not :: or ::1
            return str(ipaddress.IPv4Address(int(ip)))
    return str(ip)


def _numeric(text: str) -> str | None:
    """The address ``text`` spells for the C resolver (``inet_aton``, IPv6 literals), or None."""
    if not text:
        return None
    if ":" in text:
        try:
            return _fold_ip(_ip_address(text))
        except ValueError:
            return None
    if not ("0" <= text[0] <= "9"):
        return None
    try:
        return _inet_ntoa(_inet_aton(text))
    except (OSError, ValueError):
        pass
    if text.endswith("."):            # `127.1.` : a resolver may strip the root dot
        try:
            return _inet_ntoa(_inet_aton(text.rstrip(".")))
        except (OSError, ValueError):
            return None
    return None


def numeric_host(host: str) -> str | None:
    """The address ``host`` spells in any numeric form the C resolver accepts, or None for
    a name."""
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    return _numeric(h)


def _codec(name: str) -> str | None:
    """IDNA 2003 as Python's socket applies it (the ``idna`` codec)."""
    try:
        return name.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        return None


def _idna2008(name: str) -> str | None:
    """UTS #46 mapping (non-transitional) and A-labels, label by label; ASCII labels the
    IDNA 2008 rules would reject (``_srv``) are kept as they are."""
    try:
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    out = []
    for label in mapped.split("."):
        if label.isascii():
            out.append(label.lower())
            continue
        try:
            out.append(idna.alabel(label).decode("ascii"))
        except (idna.IDNAError, UnicodeError, ValueError):
            return None
    return ".".join(out)


@functools.lru_cache(maxsize=16384)
def host_spellings(host: str) -> tuple[str, ...]:
    """Every canonical spelling of ``host``, the one Python's socket sends first.

    A numeric host has exactly one spelling, the address. Raises ValueError for a NUL."""
    if "\x00" in host:
        raise ValueError("host contains a NUL character")
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h == "<broadcast>":           # CPython's socket maps this name to INADDR_BROADCAST
        return ("255.255.255.255",)
    address = _numeric(h)
    if address is not None:
        return (address,)
    h = h.rstrip(".") if h.strip(".") else h
    if _PLAIN_NAME.fullmatch(h):
        return (h,)
    seen: list[str] = []
    for candidate in (_codec(h), _idna2008(h)):
        if candidate is None:
            continue
        candidate = candidate.rstrip(".")
        address = _numeric(candidate)   # fullwidth digits fold to an address
        if address is not None:
            return (address,)
        if candidate not in seen:
            seen.append(candidate)
    if not seen:                      # unencodable: nothing can resolve it; keep it folded
        seen.append(h.casefold())
    return tuple(seen)


def canonical_host(host: str) -> str:
    """The canonical form of ``host`` (see :func:`host_spellings`); ``""`` stays ``""``."""
    if not host:
        return host
    return host_spellings(host)[0]


def canonical_pattern(pattern: str) -> str:
    """A host pattern in canonical form: ``*``, ``*.<canonical name>`` or a canonical host."""
    if pattern == "*":
        return pattern
    if pattern.startswith("*."):
        return "*." + canonical_host(pattern[2:])
    return canonical_host(pattern)


def canonical_network(cidr: str):
    """``ipaddress.ip_network(cidr)``, with IPv4-mapped/-compatible IPv6 networks as the
    IPv4 networks they contain (requests carry such addresses as IPv4)."""
    net = ipaddress.ip_network(cidr, strict=False)
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        first = net.network_address
        if first.ipv4_mapped is not None or (first in _IPV4_COMPAT and int(first) > 1):
            v4 = first.ipv4_mapped or ipaddress.IPv4Address(int(first) & 0xFFFFFFFF)
            return ipaddress.ip_network(f"{v4}/{net.prefixlen - 96}", strict=False)
    return net


def _executable(path: str) -> bool:
    try:
        st = _stat(path)
    except (OSError, ValueError):
        return False
    return _S_ISREG(st.st_mode) and _access(path, _X_OK)


def program_path(program: str, path_env: str | None = None, cwd: str | None = None) -> str:
    """The file the kernel will execute for ``program``, symlinks resolved.

    A name with a ``/`` is a path (relative to ``cwd``); a bare name is looked up in
    ``path_env`` (default ``$PATH``, else ``os.defpath``) the way ``execvp`` does: the first
    executable regular file wins. A name found nowhere stays as given (nothing can run it)."""
    if not program:
        return program
    if "\x00" in program:
        raise ValueError("program contains a NUL character")
    if "/" in program:
        if not program.startswith("/"):
            program = os.path.join(cwd or os.getcwd(), program)
        return _realpath(program)
    if path_env is None:
        path_env = os.environ.get("PATH", os.defpath)
    for directory in path_env.split(os.pathsep):
        candidate = os.path.join(directory or ".", program)
        if not candidate.startswith("/"):
            candidate = os.path.join(cwd or os.getcwd(), candidate)
        if _executable(candidate):
            return _realpath(candidate)
    return program


# Load the codecs and tables now: a lazy import inside the enforcer's audit hook is refused.
_codec("b\u00fccher.example")
_idna2008("b\u00fccher.example")
