"""A plugin class's ``requires`` (PEP 440 PromptLine versions) is checked like the manifest's."""

from __future__ import annotations

from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ._errors import LoaderError


def promptline_version() -> str:
    """This PromptLine's version ("0" when the distribution metadata is unreadable)."""
    try:
        import importlib.metadata
        return importlib.metadata.version("promptline-plugins")
    except Exception:  # noqa: BLE001
        return "0"


def check_class_requires(plugin: Any, plugin_id: str, version: str | None = None) -> None:
    """Refuse a plugin whose class attribute ``requires`` does not admit this PromptLine."""
    requires = getattr(type(plugin), "requires", "")
    where = f"{type(plugin).__module__}.{type(plugin).__qualname__}"
    if not requires:
        return
    if not isinstance(requires, str):
        raise LoaderError(f"class `{where}` sets `requires` to a {type(requires).__name__}, not a string",
                          plugin=plugin_id, fix='write it like `requires = ">=0.1,<1.0"`')
    try:
        spec = SpecifierSet(requires)
    except InvalidSpecifier:
        raise LoaderError(f"class `{where}` has `requires = {requires[:60]!r}`, which is not a version specifier",
                          plugin=plugin_id, fix='write it like `requires = ">=0.1,<1.0"`') from None
    version = version or promptline_version()
    try:
        current = Version(version)
    except InvalidVersion:
        return
    if not spec.contains(current, prereleases=True):
        raise LoaderError(f"class `{where}` requires PromptLine `{requires}`, this is {version}",
                          plugin=plugin_id, fix="install a version of the plugin made for this PromptLine")


__all__ = ["check_class_requires", "promptline_version"]
