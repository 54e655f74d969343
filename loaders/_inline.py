"""In-code plugins: a plugin object the core built itself (``PluginManager.register_plugin``).

Such a plugin has no directory, no files and no signature: the core vouches for its code,
so it is trusted by construction and runs in process (sandbox ``none``). It still has a
manifest, which the policy compiles like any other: its capabilities are its grants, its
guarded calls are decided by the in-process enforcer as that plugin, its tool calls are
``tool.call`` requests, and its lifecycle and decisions go to the audit log.

The manifest is given (a :class:`Manifest`, a mapping, or a ``plugin.yaml`` path) or built
from the class attributes :data:`CLASS_FIELDS` (``id`` and ``version`` required; ``types``
defaults to the plugin base classes it derives from). Either way ``entry`` is the object's
class (``python: module:Class``) and ``sandbox`` is ``none``; a manifest asking for another
entry kind or sandbox level is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from promptline.policy import Manifest, PolicyError, load_yaml, parse_manifest, read_text
from promptline.sdk import Plugin, bind_manifest, plugin_types

from ._errors import LoaderError
from ._loop import PluginLoop
from ._python import HOOK_TIMEOUT, InProcessPlugin
from ._requires import check_class_requires

CLASS_FIELDS = ("id", "version", "name", "description", "requires", "types", "capabilities", "limits", "config")
"""Class attributes a manifest is built from when none is given (``id``, ``version`` required)."""

ORIGIN = "register_plugin"


def _entry(obj: Plugin) -> dict[str, str]:
    cls = type(obj)
    return {"python": f"{cls.__module__}:{cls.__qualname__}"}


def _from_class(obj: Plugin) -> dict[str, Any]:
    cls = type(obj)
    data: dict[str, Any] = {}
    for name in CLASS_FIELDS:
        value = getattr(cls, name, None)
        if value not in (None, "", (), [], {}):
            data[name] = value
    if "requires" in data and data["requires"] == Plugin.requires:
        del data["requires"]          # the SDK's default, not a declaration
    for name in ("id", "version"):
        if name not in data:
            raise LoaderError(f"class `{cls.__qualname__}` has no `{name}` and no manifest was given",
                              plugin=str(data.get("id", "")),
                              fix=f"set `{name} = ...` on the class, or pass manifest= to register_plugin")
    data.setdefault("types", sorted(plugin_types(obj)))
    return data


def inline_manifest(obj: Any, manifest: Manifest | Mapping[str, Any] | str | os.PathLike | None = None) -> Manifest:
    """The manifest of the in-code plugin ``obj`` (see the module docstring). Raises
    LoaderError (or PolicyError with file:line for a plugin.yaml) naming the fix."""
    if not isinstance(obj, Plugin):
        raise LoaderError(f"`{type(obj).__qualname__}` is not a promptline Plugin",
                          fix="derive its class from promptline.ToolPlugin (or another plugin type)")
    if isinstance(manifest, Manifest):
        explicit = manifest.model_fields_set
        data = manifest.model_dump(exclude_unset=True)
    elif isinstance(manifest, (str, os.PathLike)):
        return _from_file(obj, os.fspath(manifest))
    elif isinstance(manifest, Mapping):
        data = dict(manifest)
        explicit = set(data)
    elif manifest is None:
        data = _from_class(obj)
        explicit = set(data)
    else:
        raise LoaderError(f"manifest must be a Manifest, a mapping or a plugin.yaml path, not "
                          f"{type(manifest).__name__}", fix="pass one of those, or none to use the class attributes")
    _check_in_code(data, explicit)
    data["entry"] = _entry(obj)
    data["sandbox"] = "none"
    try:
        return Manifest.model_validate(data)
    except ValueError as exc:
        first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first.get("loc", ())) or "manifest"
        raise PolicyError(f"`{where}`: {str(first.get('msg', exc)).removeprefix('Value error, ')}",
                          file=ORIGIN, fix="fix the manifest given to register_plugin (or the class "
                                           "attributes it is built from)") from None


def _from_file(obj: Plugin, path: str) -> Manifest:
    """A plugin.yaml without (or with a python) ``entry``: file:line errors as for any manifest."""
    located = load_yaml(read_text(path), path)
    if isinstance(located.data, dict):
        _check_in_code(located.data, set(located.data))
        located.data = {**located.data, "entry": _entry(obj), "sandbox": "none"}
    return parse_manifest(located)


def _check_in_code(data: Mapping[str, Any], explicit: set[str]) -> None:
    """Refuse what an in-code plugin cannot be: another sandbox level or entry kind."""
    pid = str(data.get("id", ""))
    if "sandbox" in explicit and data.get("sandbox") != "none":
        raise LoaderError(f"an in-code plugin runs in the host process; its manifest asks for sandbox "
                          f"`{data.get('sandbox')}`", plugin=pid,
                          fix="drop `sandbox` (or set `sandbox: none`), or ship the plugin as a directory "
                              "the manager discovers so it can run in a sandbox")
    entry = data.get("entry")
    if entry is not None:
        kinds = set(entry) if isinstance(entry, Mapping) else set()
        if kinds - {"python"} or not kinds:
            raise LoaderError("an in-code plugin is a Python object; its manifest names another entry",
                              plugin=pid, fix="drop `entry` (it is the object's class)")


def start_inline(obj: Plugin, manifest: Manifest, enforcer: Any, config: Any) -> InProcessPlugin:
    """Bind, check and initialize ``obj`` under the enforcer's guard for its id."""
    pid = manifest.id
    bind_manifest(obj, manifest)
    check_class_requires(obj, pid)
    loop = PluginLoop(pid, lambda: enforcer.guard(pid))
    try:
        loop.run(lambda: obj.initialize(config), HOOK_TIMEOUT)
        return InProcessPlugin(pid, manifest.version, obj, enforcer, None, loop)
    except LoaderError:
        loop.close()
        raise
    except BaseException as exc:  # noqa: BLE001 - the plugin's own code may fail any way
        loop.close()
        raise LoaderError(f"initialize() failed: {type(exc).__name__}: {exc}", plugin=pid,
                          fix="check the plugin's configuration") from None
