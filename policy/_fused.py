"""Fused matching: the rules of one (plugin, action, effect) group as one index.

A rule in the native subset (``_fastpath``) whose condition is an OR of ANDs of error-free
atoms — a helper (``within``, ``glob``, ``host_matches``, ``in_cidr``, ``env_matches``) on a
request field with a literal pattern, ``field == literal``, ``field in [literals]``, a
constant — is absorbed: each AND is filed under one of its atoms (its key) in a hash index,
the other atoms of the AND are checked only when the key matches. A request then costs a few
dict lookups per resource (its path's ancestors, its host's label suffixes, one lookup per
CIDR prefix length, ...), whatever the number of rules.

``first(request)`` is the index of the FIRST rule of the group (in group order) whose
condition is true, exactly as evaluating the rules one by one would find it; rules outside
the shape are evaluated one by one by the caller, only those before that index. The atoms
are the helpers' own semantics (``_capabilities``), spelled as lookups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._canon import canonical_pattern
from ._capabilities import (
    PRIVATE_NETWORKS,
    _address,
    _glob_regex,
    _network,
    directory_spellings,
    glob_spellings,
    matcher,
    normalize_host,
    user_home,
)

NONE = 1 << 62          # "no rule matched"
_GLOB_CHARS = "*?["

Atom = tuple   # (kind, field, value): kind is a helper name, "eq" or "in"


def _check(atom: Atom) -> Callable[[Any], bool]:
    """A residual atom as a predicate on the request."""
    kind, field, value = atom
    if kind == "eq":
        return lambda r: getattr(r, field) == value
    if kind == "in":
        values = frozenset(value)
        return lambda r: getattr(r, field) in values
    fn = matcher(kind, value)
    return lambda r: bool(fn(getattr(r, field)))


_RANK = {"eq": 0, "in": 1, "within": 2, "host_matches": 3, "env_matches": 4, "in_cidr": 5, "glob": 6}


def _key_atom(conj: tuple[Atom, ...]) -> int:
    """The atom of an AND to index by: the most selective kind; port equality last."""
    return min(range(len(conj)), key=lambda i: (_RANK[conj[i][0]] + (10 if conj[i][1] == "port" else 0), i))


class FusedMatcher:
    """One index over the absorbable rules of a group (see the module docstring)."""

    __slots__ = ("always", "eq", "within", "root", "globs", "anyglob", "host_any", "host_exact",
                 "host_suffix", "host_ip", "cidr", "cidr_lens", "env_exact", "env_pre", "env_suf",
                 "env_any", "env_other", "fields", "steps")

    def __init__(self, dnfs: list[tuple[int, list[tuple[Atom, ...]]]]) -> None:
        self.always: list = []
        self.eq: dict[str, dict] = {}
        self.within: dict[str, dict[str, list]] = {}
        self.root: dict[str, list] = {}
        self.globs: dict[str, dict[str, dict]] = {}   # field -> literal dir -> tail length -> tail -> [(rx, entry)]
        self.anyglob: dict[str, dict] = {}            # globs without a literal directory: length -> tail -> ...
        self.host_any: dict[str, list] = {}
        self.host_exact: dict[str, dict[str, list]] = {}
        self.host_suffix: dict[str, dict[str, list]] = {}
        self.host_ip: dict[str, dict[Any, list]] = {}
        self.cidr: dict[str, dict[tuple, list]] = {}
        self.cidr_lens: dict[str, dict[int, list[int]]] = {}
        self.env_exact: dict[str, dict[str, list]] = {}
        self.env_pre: dict[str, dict[int, dict[str, list]]] = {}
        self.env_suf: dict[str, dict[int, dict[str, list]]] = {}
        self.env_any: dict[str, list] = {}
        self.env_other: dict[str, list] = {}
        for index, dnf in dnfs:
            for conj in dnf:
                self._add(index, conj)
        self.fields = sorted({f for table in (self.eq, self.within, self.root, self.globs, self.anyglob,
                                              self.host_any, self.host_exact, self.host_suffix,
                                              self.host_ip, self.cidr, self.env_exact, self.env_pre,
                                              self.env_suf, self.env_any, self.env_other)
                              for f in table})
        # per field: its equality table and the lookups that apply to it (built once)
        self.steps = []
        for f in self.fields:
            steps = []
            if f in self.within or f in self.root or f in self.globs:
                steps.append(self._path)
            if f in self.anyglob:
                steps.append(self._anyglob)
            if f in self.host_any or f in self.host_exact or f in self.host_suffix or f in self.host_ip:
                steps.append(self._host)
            if f in self.cidr:
                steps.append(self._cidr)
            if f in self.env_exact or f in self.env_pre or f in self.env_suf or f in self.env_any \
                    or f in self.env_other:
                steps.append(self._env)
            self.steps.append((f, self.eq.get(f), tuple(steps)))

    # -- building

    def _add(self, index: int, conj: tuple[Atom, ...]) -> None:
        if not conj:
            self.always.append((index, ()))
            return
        k = _key_atom(conj)
        kind, field, value = conj[k]
        entry = (index, tuple(_check(a) for j, a in enumerate(conj) if j != k))
        if kind == "eq":
            self.eq.setdefault(field, {}).setdefault(value, []).append(entry)
        elif kind == "in":
            table = self.eq.setdefault(field, {})
            for v in dict.fromkeys(value):
                table.setdefault(v, []).append(entry)
        elif kind == "within":
            if not value:
                return
            for d in directory_spellings(value):
                if d == "/":
                    self.root.setdefault(field, []).append(entry)
                else:
                    self.within.setdefault(field, {}).setdefault(d, []).append(entry)
        elif kind == "glob":
            if not value:
                return
            expanded = user_home() + value[1:] if value.startswith("~") else value
            for spelling in glob_spellings(expanded):
                rx = _glob_regex(spelling)
                first = min((spelling.find(c) for c in _GLOB_CHARS if c in spelling), default=len(spelling))
                cut = spelling.rfind("/", 0, first)
                # the text after the last of `*?[]` is literal, outside any class: the path
                # ends with it; filed under its length and text
                tail = spelling[max(spelling.rfind(c) for c in "*?[]") + 1:]
                if cut < 0:
                    table = self.anyglob.setdefault(field, {})
                else:   # the path starts with spelling[:cut + 1]: filed under that directory
                    table = self.globs.setdefault(field, {}).setdefault(spelling[:cut] or "/", {})
                table.setdefault(len(tail), {}).setdefault(tail, []).append((rx, entry))
        elif kind == "host_matches":
            try:
                p = canonical_pattern(value) if value else ""
            except ValueError:
                p = ""
            if not p:
                return
            if p == "*":
                self.host_any.setdefault(field, []).append(entry)
            elif p.startswith("*."):
                self.host_suffix.setdefault(field, {}).setdefault(p[1:], []).append(entry)
            else:
                self.host_exact.setdefault(field, {}).setdefault(p, []).append(entry)
                ip = _address(p)
                if ip is not None:
                    self.host_ip.setdefault(field, {}).setdefault(ip, []).append(entry)
        elif kind == "in_cidr":
            if not value:
                return
            if value == "private":
                nets = PRIVATE_NETWORKS
            else:
                try:
                    nets = (_network(value),)
                except ValueError:
                    return
            table = self.cidr.setdefault(field, {})
            lens = self.cidr_lens.setdefault(field, {})
            for net in nets:
                key = (net.version, net.prefixlen, int(net.network_address))
                bucket = table.setdefault(key, [])
                if not bucket or bucket[-1] is not entry:
                    bucket.append(entry)
                plens = lens.setdefault(net.version, [])
                if net.prefixlen not in plens:
                    plens.append(net.prefixlen)
        elif kind == "env_matches":
            if not value:
                return
            if "*" not in value and "?" not in value:
                self.env_exact.setdefault(field, {}).setdefault(value, []).append(entry)
            elif value == "*":
                self.env_any.setdefault(field, []).append(entry)
            elif value.endswith("*") and not any(c in value[:-1] for c in _GLOB_CHARS):
                pre = value[:-1]
                self.env_pre.setdefault(field, {}).setdefault(len(pre), {}).setdefault(pre, []).append(entry)
            elif value.startswith("*") and not any(c in value[1:] for c in _GLOB_CHARS):
                suf = value[1:]
                self.env_suf.setdefault(field, {}).setdefault(len(suf), {}).setdefault(suf, []).append(entry)
            else:
                fn = matcher("env_matches", value)
                self.env_other.setdefault(field, []).append((fn, entry))
        else:
            raise KeyError(kind)

    # -- matching

    def first(self, r: Any) -> int:
        """The index of the first absorbed rule that matches ``r``, or NONE."""
        best = _scan(self.always, r, NONE) if self.always else NONE
        for field, eq, steps in self.steps:
            v = getattr(r, field)
            if eq is not None:
                hit = eq.get(v)
                if hit is not None:
                    best = _scan(hit, r, best)
            if steps and v and type(v) is str:
                for step in steps:
                    best = step(field, v, r, best)
        return best

    def _anyglob(self, field: str, v: str, r: Any, best: int) -> int:
        return _globs(self.anyglob[field], v, r, best)

    def _path(self, field: str, v: str, r: Any, best: int) -> int:
        within = self.within.get(field) or {}
        globs = self.globs.get(field) or {}
        if v[0] == "/":
            root = self.root.get(field)
            if root:
                best = _scan(root, r, best)
            g = globs.get("/")
            if g is not None:
                best = _globs(g, v, r, best)
        # `within(v, d)`: v == d, or v starts with d + "/"; every such d is v or a prefix
        # of v ending just before a "/" (a glob's literal directory likewise)
        hit = within.get(v)
        if hit is not None:
            best = _scan(hit, r, best)
        i = v.find("/", 1)
        while i > 0:
            d = v[:i]
            hit = within.get(d)
            if hit is not None:
                best = _scan(hit, r, best)
            g = globs.get(d)
            if g is not None:
                best = _globs(g, v, r, best)
            i = v.find("/", i + 1)
        return best

    def _host(self, field: str, v: str, r: Any, best: int) -> int:
        h = normalize_host(v)
        if not h:
            return best
        lst = self.host_any.get(field)
        if lst:
            best = _scan(lst, r, best)
        exact = self.host_exact.get(field)
        if exact:
            hit = exact.get(h)
            if hit is not None:
                best = _scan(hit, r, best)
        suffixes = self.host_suffix.get(field)
        if suffixes:
            # `*.s` matches h when h ends with ".s" and is longer: every such ".s" is h[i:]
            # for a "." at i >= 1
            i = h.find(".", 1)
            while i > 0:
                hit = suffixes.get(h[i:])
                if hit is not None:
                    best = _scan(hit, r, best)
                i = h.find(".", i + 1)
        ips = self.host_ip.get(field)
        if ips:
            ip = _address(v)
            if ip is not None:
                hit = ips.get(ip)
                if hit is not None:
                    best = _scan(hit, r, best)
        return best

    def _cidr(self, field: str, v: str, r: Any, best: int) -> int:
        ip = _address(v)
        if ip is None:
            return best
        plens = self.cidr_lens[field].get(ip.version)
        if not plens:
            return best
        table = self.cidr[field]
        bits = 32 if ip.version == 4 else 128
        n = int(ip)
        for plen in plens:
            shift = bits - plen
            hit = table.get((ip.version, plen, (n >> shift) << shift))
            if hit is not None:
                best = _scan(hit, r, best)
        return best

    def _env(self, field: str, v: str, r: Any, best: int) -> int:
        exact = self.env_exact.get(field)
        if exact:
            hit = exact.get(v)
            if hit is not None:
                best = _scan(hit, r, best)
        lst = self.env_any.get(field)
        if lst:
            best = _scan(lst, r, best)
        for table, cut in ((self.env_pre.get(field), True), (self.env_suf.get(field), False)):
            if table:
                for n, names in table.items():
                    if n <= len(v):
                        hit = names.get(v[:n] if cut else v[len(v) - n:])
                        if hit is not None:
                            best = _scan(hit, r, best)
        for fn, entry in self.env_other.get(field, ()):
            if entry[0] < best and fn(v) and _ok(entry, r):
                best = entry[0]
        return best


def _ok(entry: tuple, r: Any) -> bool:
    for check in entry[1]:
        if not check(r):
            return False
    return True


def _scan(entries: list, r: Any, best: int) -> int:
    """The first entry (they are in rule order) before ``best`` whose other atoms hold."""
    for entry in entries:
        if entry[0] >= best:
            return best
        if not entry[1] or _ok(entry, r):
            return entry[0]
    return best


def _globs(by_tail: dict | None, v: str, r: Any, best: int) -> int:
    if by_tail:
        n = len(v)
        for length, tails in by_tail.items():
            if length <= n:
                items = tails.get(v[n - length:])
                if items is not None:
                    for rx, entry in items:
                        if entry[0] >= best:
                            break
                        if rx.match(v) is not None and _ok(entry, r):
                            best = entry[0]
                            break
    return best
