"""The registry's wanted-version filters (``install x@1.2.0`` or ``@>=1,<2``); versions and
``requires`` themselves are :mod:`promptline.policy`'s (one grammar)."""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from promptline.policy import SemVer, is_semver, parse_requires, requires_ok


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


__all__ = ["SemVer", "is_semver", "parse_requires", "requires_ok", "version_spec", "spec_admits"]
