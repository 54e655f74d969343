"""A plugin class's ``requires`` (PEP 440 PromptLine versions) is checked like the manifest's."""

from __future__ import annotations

from typing import Any

from promptline.policy import parse_requires, promptline_version, requires_ok

from ._errors import LoaderError


def check_class_requires(plugin: Any, plugin_id: str, version: str | None = None) -> None:
    """Refuse a plugin whose class attribute ``requires`` does not admit this PromptLine."""
    requires = getattr(type(plugin), "requires", "")
    where = f"{type(plugin).__module__}.{type(plugin).__qualname__}"
    fix = 'write it like `requires = ">=0.1,<1.0"`'
    if not requires:
        return
    if not isinstance(requires, str):
        raise LoaderError(f"class `{where}` sets `requires` to a {type(requires).__name__}, not a string",
                          plugin=plugin_id, fix=fix)
    try:
        parse_requires(requires)
    except ValueError as exc:
        raise LoaderError(f"class `{where}`: {exc}", plugin=plugin_id, fix=fix) from None
    version = version or promptline_version()
    if not requires_ok(requires, version):
        raise LoaderError(f"class `{where}` requires PromptLine `{requires}`, this is {version}",
                          plugin=plugin_id, fix="install a version of the plugin made for this PromptLine")


__all__ = ["check_class_requires"]
