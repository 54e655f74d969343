"""Versions, once: plugin versions are semantic versions (the `semver` library, semver.org
§2 and §11 precedence); PromptLine versions and ``requires`` are PEP 440 (`packaging`)."""

from __future__ import annotations

import functools

import semver
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

DISTRIBUTION = "promptline-plugins"


@functools.total_ordering
class SemVer:
    """A plugin version; build metadata is kept but ignored in comparisons."""

    __slots__ = ("text", "_v")

    def __init__(self, text: str) -> None:
        if type(text) is not str or not semver.Version.is_valid(text):
            raise ValueError(f"version `{text}` is not semantic versioning (MAJOR.MINOR.PATCH)")
        self.text = text
        self._v = semver.Version.parse(text)

    @property
    def prerelease(self) -> bool:
        return self._v.prerelease is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SemVer) and self._v.compare(other._v) == 0

    def __lt__(self, other: SemVer) -> bool:
        return self._v.compare(other._v) < 0

    def __hash__(self) -> int:
        return hash(self._v.finalize_version()) ^ hash(self._v.prerelease)

    def __repr__(self) -> str:
        return f"SemVer({self.text!r})"

    def __str__(self) -> str:
        return self.text


def is_semver(text: object) -> bool:
    """True for a valid semantic version string (no surrounding space or newline)."""
    return type(text) is str and semver.Version.is_valid(text)


def parse_requires(text: str) -> SpecifierSet:
    """A ``requires`` specifier (PEP 440, e.g. ``>=0.1,<1.0``); ValueError with the fix."""
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise ValueError(f"requires `{text}` is not a version specifier like `>=0.1,<1.0`") from None


def requires_ok(requires: str, current: str) -> bool:
    """True when ``requires`` (empty: any) admits PromptLine version ``current``; an invalid
    specifier or version admits nothing."""
    if not requires:
        return True
    try:
        return SpecifierSet(requires).contains(Version(current), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return False


@functools.cache
def promptline_version() -> str:
    """The installed PromptLine version ("0" when it is not installed as a distribution)."""
    from importlib import metadata
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0"
