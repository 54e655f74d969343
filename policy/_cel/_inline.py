"""Rewrite helper calls on literal patterns into native CEL string operations.

``within(request.path, "/data")`` costs a Python callback per evaluation in cel-cpp (2-4 µs);
``request.path == "/data" || request.path.startsWith("/data/")`` runs natively and means the
same (the differential tests compare both forms). Only the exact token shape
``helper(request.<field>, "<literal without backslashes>")`` outside string literals is
rewritten; anything else keeps the helper call. Errors are always reported against the
original text, which is checked first.
"""

from __future__ import annotations

import re

from .._canon import canonical_pattern
from .._capabilities import directory_spellings
from ._backend import cel_string

_CALL = re.compile(r'\b(within|host_matches|env_matches)\(\s*request\.(path|host|name)\s*,\s*"([^"\\\n]*)"\s*\)')
_FIELD = {"within": "path", "host_matches": "host", "env_matches": "name"}


def _string_spans(source: str) -> dict[int, int]:
    """Start -> end (exclusive) of every string/bytes literal, honouring CEL's quoting rules."""
    spans: dict[int, int] = {}
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c in "\"'":
            start = i
            j = i - 1
            raw = False
            while j >= 0 and source[j] in "rRbB":
                raw = raw or source[j] in "rR"
                j -= 1
            triple = source.startswith(c * 3, i)
            quote = c * 3 if triple else c
            i += len(quote)
            while i < n:
                if not raw and source[i] == "\\":
                    i += 2
                    continue
                if source.startswith(quote, i):
                    i += len(quote)
                    break
                i += 1
            spans[start] = i
            continue
        i += 1
    return spans


def _inside(pos: int, spans: dict[int, int]) -> bool:
    return any(s <= pos < e for s, e in spans.items())


def _replacement(helper: str, field: str, literal: str) -> str | None:
    var = f"request.{field}"
    if helper == "within":
        if not literal:
            return None
        parts = []
        for d in directory_spellings(literal):   # as written, and resolved at load
            if d == "/":
                return f'({var}.startsWith("/"))'
            parts.append(f"{var} == {cel_string(d)} || {var}.startsWith({cel_string(d + '/')})")
        return f"({' || '.join(parts)})"
    if helper == "host_matches":
        try:
            p = canonical_pattern(literal)
        except ValueError:
            return None
        if not p or any(ch.isdigit() for ch in p.split(".")[-1]) or ":" in p:
            return None   # IP patterns compare as addresses: keep the helper
        if p == "*":
            return f'({var} != "")'
        if p.startswith("*."):
            suffix = p[1:]
            if "*" in suffix:
                return None
            return f"({var}.endsWith({cel_string(suffix)}) && size({var}) > {len(suffix)})"
        if "*" in p:
            return None
        return f"({var} == {cel_string(p)})"
    if helper == "env_matches":
        if not literal or "?" in literal or "[" in literal:
            return None
        if literal == "*":
            return f'({var} != "")'
        stars = literal.count("*")
        if stars == 0:
            return f"({var} == {cel_string(literal)})"
        if stars == 1 and literal.endswith("*"):
            return f"({var}.startsWith({cel_string(literal[:-1])}))"
        if stars == 1 and literal.startswith("*"):
            return f"({var}.endsWith({cel_string(literal[1:])}))"
    return None


def resolution_key(source: str) -> tuple:
    """What an inlined program depends on besides its text: the resolutions of the rule
    directories in it (a program is recompiled when a directory resolves elsewhere)."""
    if "within(" not in source:
        return ()
    return tuple(directory_spellings(m.group(3)) for m in _CALL.finditer(source)
                 if m.group(1) == "within" and m.group(3))


def inline_helpers(source: str) -> str:
    """``source`` with literal-pattern helper calls made native; unchanged when none apply."""
    if "(request." not in source and "( request." not in source:
        return source
    spans = None
    out: list[str] = []
    last = 0
    for m in _CALL.finditer(source):
        helper, field, literal = m.group(1), m.group(2), m.group(3)
        if _FIELD[helper] != field:
            continue
        if spans is None:
            spans = _string_spans(source)
        quote = m.start(3) - 1
        if _inside(m.start(), spans) or spans.get(quote) != m.end(3) + 1:
            continue
        before = source[:m.start()].rstrip()
        if before.endswith("."):
            continue  # a member call like x.within(...), not our helper
        rep = _replacement(helper, field, literal)
        if rep is None:
            continue
        out.append(source[last:m.start()])
        out.append(rep)
        last = m.end()
    if not out:
        return source
    out.append(source[last:])
    return "".join(out)
