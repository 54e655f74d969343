"""Semantic versions (precedence per semver.org §11) and ``requires`` checks."""

from __future__ import annotations

import re
from functools import total_ordering

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
                    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$")


@total_ordering
class SemVer:
    """A parsed semantic version; build metadata is kept but ignored in comparisons."""

    __slots__ = ("text", "core", "pre")

    def __init__(self, text: str) -> None:
        m = SEMVER.match(str(text))
        if m is None:
            raise ValueError(f"version `{text}` is not semantic versioning (MAJOR.MINOR.PATCH)")
        self.text = str(text)
        self.core = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        self.pre = tuple(int(p) if p.isdigit() else p for p in m.group(4).split(".")) if m.group(4) else ()

    def _key(self) -> tuple:
        # a release sorts after its pre-releases; numeric identifiers sort before alphanumeric ones
        pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.pre)
        return (self.core, 1 if not self.pre else 0, pre)

    @property
    def prerelease(self) -> bool:
        return bool(self.pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SemVer) and self._key() == other._key()

    def __lt__(self, other: SemVer) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"SemVer({self.text!r})"

    def __str__(self) -> str:
        return self.text


def is_semver(text: str) -> bool:
    return SEMVER.match(str(text)) is not None


def requires_ok(requires: str, current: str) -> bool:
    """True when the PEP 440 specifier ``requires`` (empty: any) admits PromptLine ``current``."""
    if not requires:
        return True
    try:
        return SpecifierSet(requires).contains(Version(current), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return False


def version_spec(text: str | None) -> SpecifierSet | None:
    """A wanted-version filter: ``1.2.0`` means exactly that, else a PEP 440 specifier set."""
    if not text:
        return None
    spec = f"=={text}" if is_semver(text) else text
    try:
        return SpecifierSet(spec)
    except InvalidSpecifier:
        raise ValueError(f"`{text}` is neither a version nor a version specifier like `>=1.2,<2`") from None


def spec_admits(spec: SpecifierSet | None, version: str) -> bool:
    if spec is None:
        return True
    try:
        return spec.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


__all__ = ["SemVer", "is_semver", "requires_ok", "version_spec", "spec_admits"]
