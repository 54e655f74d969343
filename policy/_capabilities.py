"""Capability semantics: how paths, hosts, addresses and environment names match.

These functions are the meaning of the CEL helpers ``within``, ``glob``, ``host_matches``,
``in_cidr`` and ``env_matches``; both CEL backends call them, and the compiler uses them to
check capability strings at load time.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import os
import re

from ._canon import canonical_host, canonical_network, canonical_pattern, private_realpath

# Addresses of the built-in `private` group (docs/design.md §4).
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
    "169.254.0.0/16", "100.64.0.0/10", "0.0.0.0/8",
    "::/128", "::1/128", "fc00::/7", "fe80::/10",
))  # addresses reach this in canonical form: IPv4-mapped/-compatible IPv6 is IPv4 already

GLOB_CHARS = frozenset("*?[")
HOME_ENV = "PROMPTLINE_HOME"   # what `~` means in policies, when not the process's own home


def user_home() -> str:
    """The home directory `~` stands for: ``$PROMPTLINE_HOME`` (set for sandboxed children,
    whose own HOME is a private work dir), else the user's home."""
    return os.environ.get(HOME_ENV) or os.path.expanduser("~")


def expand_path(path: str, home: str | None = None) -> str:
    """``~`` expanded, made absolute, ``.``/``..`` folded; no filesystem access."""
    if path.startswith("~"):
        home = home if home is not None else user_home()
        if path == "~" or path.startswith("~/"):
            path = home + path[1:]
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return os.path.normpath(path) if path.startswith("/") else os.path.abspath(path)


def is_glob(pattern: str) -> bool:
    return any(c in GLOB_CHARS for c in pattern)


@functools.lru_cache(maxsize=4096)
def _directory(directory: str) -> str:
    if directory.startswith("~"):
        directory = expand_path(directory)
    return directory.rstrip("/") or "/"


_SPELLINGS: dict[str, tuple[str, ...]] = {}   # rule directory -> its spellings (see below)
_SPELLINGS_HOME: list = [None]                # the home `~` stood for when they were made


def _resolve_directory(directory: str) -> tuple[str, ...]:
    d = _directory(directory)
    if not d.startswith("/"):
        return (d,)
    try:
        r = private_realpath(d)
    except (OSError, ValueError):
        return (d,)
    r = r.rstrip("/") or "/"
    return (d,) if r == d else (d, r)


def directory_spellings(directory: str) -> tuple[str, ...]:
    """A rule directory as written (``~`` expanded) and, when it differs, resolved
    (symlinks followed in POSIX order). Kept until a policy load finds that one resolves
    differently (:func:`refresh_resolutions`): rule directories are resolved at load."""
    hit = _SPELLINGS.get(directory)
    if hit is None:
        hit = _resolve_directory(directory)
        if len(_SPELLINGS) >= 8192:
            _SPELLINGS.clear()
        _SPELLINGS[directory] = hit
    return hit


def refresh_resolutions() -> tuple[bool, frozenset[str]]:
    """Re-resolve every rule directory seen so far (called by every policy load): whether
    `~` now means another home (every compiled form must be rebuilt), and the directories
    (as written) that now resolve differently (only forms naming them must be)."""
    home = user_home()
    if _SPELLINGS_HOME[0] != home:
        _SPELLINGS_HOME[0] = home
        _directory.cache_clear()
        _SPELLINGS.clear()
        _glob_regexes.cache_clear()
        glob_spellings.cache_clear()
        return True, frozenset()
    moved = set()
    for directory, old in list(_SPELLINGS.items()):
        new = _resolve_directory(directory)
        if new != old:
            moved.add(directory)
            _SPELLINGS[directory] = new
    if moved:
        _glob_regexes.cache_clear()
        glob_spellings.cache_clear()
    return False, frozenset(moved)


def _within_one(path: str, d: str) -> bool:
    if d == "/":
        return path.startswith("/")
    return path == d or path.startswith(d + "/")


def within(path: str, directory: str) -> bool:
    """True when ``path`` is ``directory`` or below it, at path-component boundaries.
    A leading ``~`` in ``directory`` is the current user's home; ``directory`` matches as
    written and as resolved at load."""
    if not path or not directory:
        return False
    for d in directory_spellings(directory):
        if _within_one(path, d):
            return True
    return False


def _glob_class(pattern: str, i: int) -> tuple[str, int] | None:
    """The regex of the bracket class starting at ``pattern[i] == "["`` and the index after
    it, or None when the bracket is not closed (then it is a literal ``[``). As in fnmatch, a
    ``]`` right after ``[`` or ``[!`` is a member; ``!`` or ``^`` negates. A class never
    matches ``/``: ``*`` and ``?`` stay in one component and so does ``[...]``."""
    j = i + 1
    negate = j < len(pattern) and pattern[j] in "!^"
    if negate:
        j += 1
    start = j
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 1
    if j >= len(pattern):
        return None
    body = pattern[start:j]
    out, k = [], 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            lo, hi = body[k], body[k + 2]
            if lo <= hi:
                out.append(f"{re.escape(lo)}-{re.escape(hi)}")
            k += 3
            continue
        out.append(re.escape(body[k]))
        k += 1
    members = "".join(out)
    if negate:
        return f"[^/{members}]", j + 1
    if not members:
        return "(?!)", j + 1        # an empty class matches nothing
    return f"(?!/)[{members}]", j + 1


@functools.lru_cache(maxsize=4096)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < n and pattern[i] == "/":
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            cls = _glob_class(pattern, i)
            if cls is None:
                out.append(re.escape(c))
            else:
                out.append(cls[0])
                i = cls[1]
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


@functools.lru_cache(maxsize=4096)
def glob_spellings(pattern: str) -> tuple[str, ...]:
    """The glob as written and, when its literal directory prefix resolves elsewhere, with
    that prefix resolved (at load, like rule directories)."""
    first = min((pattern.find(c) for c in GLOB_CHARS if c in pattern), default=len(pattern))
    cut = pattern.rfind("/", 0, first)
    if cut > 0:
        spellings = directory_spellings(pattern[:cut])
        if len(spellings) > 1:
            return (pattern, spellings[1] + pattern[cut:])
    return (pattern,)


@functools.lru_cache(maxsize=4096)
def _glob_regexes(pattern: str) -> tuple[re.Pattern[str], ...]:
    """The regexes of :func:`glob_spellings`."""
    return tuple(_glob_regex(p) for p in glob_spellings(pattern))


def glob(path: str, pattern: str) -> bool:
    """Shell-style glob: ``*``, ``?`` and ``[...]`` stay within one component, ``**``
    crosses them. The literal directory prefix matches as written and as resolved."""
    if not path or not pattern:
        return False
    if pattern.startswith("~"):
        pattern = user_home() + pattern[1:]
    return any(rx.match(path) is not None for rx in _glob_regexes(pattern))


def normalize_host(host: str) -> str:
    """The canonical form of a host (``policy._canon.canonical_host``); "" for a bad one."""
    try:
        return canonical_host(host)
    except ValueError:
        return ""


def host_matches(host: str, pattern: str) -> bool:
    """``*.example.com`` matches subdomains only (not the apex); ``*`` matches any host;
    otherwise an exact, case-insensitive match. IP patterns compare as addresses."""
    if not host or not pattern:
        return False
    h = normalize_host(host)
    try:
        p = canonical_pattern(pattern)
    except ValueError:
        return False
    if not h or not p:
        return False
    if p == "*":
        return True
    if p.startswith("*."):
        suffix = p[1:]
        return h.endswith(suffix) and len(h) > len(suffix)
    if h == p:
        return True
    # addresses compare as addresses; IPv4-mapped IPv6 is the IPv4 address (as in in_cidr)
    a, b = _address(h), _address(p)
    return a is not None and a == b


@functools.lru_cache(maxsize=1024)
def _network(cidr: str):
    return canonical_network(cidr)


def in_cidr(address: str, cidr: str) -> bool:
    """True when ``address`` is an IP inside ``cidr``; ``cidr`` may be the group ``private``.
    A host name (not an IP) is never inside a CIDR."""
    if not address or not cidr:
        return False
    ip = _address(address)
    if ip is None:
        return False
    if cidr == "private":
        return any(ip.version == net.version and ip in net for net in PRIVATE_NETWORKS)
    try:
        net = _network(cidr)
    except ValueError:
        return False
    return ip.version == net.version and ip in net


def env_matches(name: str, pattern: str) -> bool:
    """Environment names: exact, or ``PREFIX_*`` / ``*_SUFFIX`` / ``*`` globs (case-sensitive)."""
    if not name or not pattern:
        return False
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(name, pattern)
    return name == pattern


HELPERS = {
    "within": within,
    "glob": glob,
    "host_matches": host_matches,
    "in_cidr": in_cidr,
    "env_matches": env_matches,
}
"""The CEL helper functions, all ``(string, string) -> bool``."""


@functools.lru_cache(maxsize=8192)
def _address(text: str):
    """The IP ``text`` spells in any form the C resolver accepts (canonical: IPv4-mapped
    IPv6 is IPv4), or None for a host name."""
    try:
        return ipaddress.ip_address(normalize_host(text))
    except ValueError:
        return None


def matcher(helper: str, pattern: str):
    """``helper(value, pattern)`` specialised for a fixed ``pattern``: a one-argument function
    with the same result, doing the pattern's parsing once (used by the native rule tier)."""
    if helper == "within":
        if not pattern:
            return lambda value: False
        dirs = directory_spellings(pattern)
        if len(dirs) == 2 and "/" not in dirs:
            (d1, d2), (b1, b2) = dirs, (dirs[0] + "/", dirs[1] + "/")
            return lambda value: value == d1 or value.startswith(b1) or value == d2 or \
                value.startswith(b2)
        if len(dirs) > 1:
            return lambda value: any(_within_one(value, d) for d in dirs)
        d = dirs[0]
        if d == "/":
            return lambda value: value.startswith("/")
        below = d + "/"
        return lambda value: value == d or value.startswith(below)
    if helper == "host_matches":
        try:
            p = canonical_pattern(pattern) if pattern else ""
        except ValueError:
            p = ""
        if not p:
            return lambda value: False
        if p == "*":
            return lambda value: bool(value) and bool(normalize_host(value))
        if p.startswith("*."):
            suffix = p[1:]
            n = len(suffix)
            return lambda value: bool(value) and len(normalize_host(value)) > n and normalize_host(value).endswith(suffix)
        pip = _address(p)
        if pip is None:
            return lambda value: bool(value) and normalize_host(value) == p
        return lambda value: bool(value) and bool(normalize_host(value)) and (
            normalize_host(value) == p or _address(value) == pip)
    if helper == "in_cidr":
        if not pattern:
            return lambda value: False
        if pattern == "private":
            return lambda value: bool(value) and _in_private(_address(value))
        try:
            net = _network(pattern)
        except ValueError:
            return lambda value: False
        return lambda value: bool(value) and _in_net(_address(value), net)
    if helper == "glob":
        if not pattern:
            return lambda value: False
        expanded = user_home() + pattern[1:] if pattern.startswith("~") else pattern
        rxs = _glob_regexes(expanded)
        if len(rxs) > 1:
            return lambda value: bool(value) and any(rx.match(value) is not None for rx in rxs)
        rx = rxs[0]
        return lambda value: bool(value) and rx.match(value) is not None
    if helper == "env_matches":
        return lambda value: env_matches(value, pattern)
    raise KeyError(helper)


def _in_net(ip, net) -> bool:
    return ip is not None and ip.version == net.version and ip in net


def _in_private(ip) -> bool:
    return ip is not None and any(ip.version == net.version and ip in net for net in PRIVATE_NETWORKS)
