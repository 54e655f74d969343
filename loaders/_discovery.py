"""Discovery: find plugins and read their manifests, without running any plugin code.

Three sources, all reported in one :class:`DiscoveryReport`:

- entry points in group ``promptline.plugins``: ``name = package.module:Class``; the
  package directory that ships ``plugin.yaml`` is the plugin's tree. It is located from
  the distribution's file list, so nothing is imported;
- plugin directories: ``$PROMPTLINE_PLUGIN_PATH`` (``:``-separated) if set, else the user
  config and data dirs (``<dir>/promptline/plugins``) and ``/etc/promptline/plugins``.
  Each subdirectory holding a ``plugin.yaml`` is a plugin (a listed directory that itself
  holds one is a plugin too);
- the config file's ``plugins:`` list (``$PROMPTLINE_CONFIG`` or
  ``<user config dir>/promptline/config.yaml``): ``path:`` (a plugin directory),
  ``wasm:`` (a module; its manifest sits next to it or is named by ``manifest:``) and
  ``command:`` (an executable with ``args:``; ``manifest:`` is required).

One bad plugin never stops discovery: it becomes a :class:`DiscoveryProblem`. Two
different plugins with the same id are both left out (a plugin never silently shadows
another); the same directory reached twice counts once. A manifest whose ``requires``
excludes this PromptLine is left out with the reason. Discovery only reads manifests from
disk: the PluginManager must verify the tree and re-read the manifest from the verified
snapshot (:func:`manifest_from_tree`) before trusting anything.
"""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from promptline.policy import (
    Located,
    Manifest,
    PolicyError,
    load_yaml,
    parse_manifest,
    promptline_version,
    read_text,
    requires_ok,
)

from ._signing import MANIFEST_FILE

ENTRY_POINT_GROUP = "promptline.plugins"
PLUGIN_PATH_ENV = "PROMPTLINE_PLUGIN_PATH"
CONFIG_ENV = "PROMPTLINE_CONFIG"
SYSTEM_PLUGIN_DIR = Path("/etc/promptline/plugins")
MAX_PLUGINS_PER_DIR = 1_000     # entries looked at in one plugin directory
CONFIG_ENTRY_KEYS = frozenset({"path", "command", "wasm", "args", "manifest", "protocol"})

Source = Literal["entry-point", "directory", "config"]


# ---------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class DiscoveredPlugin:
    """A plugin found on disk, its manifest read and validated (but not yet verified).

    ``root`` is the tree that is signed and loaded. ``package`` is the dotted package name
    under which an entry point's tree is imported (None for directory plugins, whose root
    itself is the import root). ``argv`` is the full command line for ``command`` entries,
    ``wasm`` the module path for ``wasm`` entries, ``args`` extra arguments from the config.
    """

    id: str
    manifest: Manifest
    manifest_path: Path
    root: Path
    source: Source
    origin: str
    kind: str
    argv: tuple[str, ...] = ()
    wasm: Path | None = None
    args: tuple[str, ...] = ()
    entry_point: str | None = None
    package: str | None = None

    @property
    def version(self) -> str:
        return self.manifest.version


@dataclass(frozen=True)
class DiscoveryProblem:
    """Why a plugin (or a place plugins are looked for) was left out."""

    origin: str
    message: str
    plugin_id: str | None = None
    severity: Literal["error", "warning"] = "error"
    fix: str | None = None

    def __str__(self) -> str:
        text = f"{self.origin}: {self.message}"
        return text + (f" — {self.fix}" if self.fix else "")


@dataclass(frozen=True)
class DiscoveryReport:
    plugins: tuple[DiscoveredPlugin, ...] = ()
    problems: tuple[DiscoveryProblem, ...] = ()
    searched: tuple[str, ...] = field(default=(), repr=False)   # places looked at, for `plugin list -v`

    def __iter__(self) -> Iterator[DiscoveredPlugin]:
        return iter(self.plugins)

    def __len__(self) -> int:
        return len(self.plugins)

    def get(self, plugin_id: str) -> DiscoveredPlugin | None:
        return next((p for p in self.plugins if p.id == plugin_id), None)

    def problems_for(self, plugin_id: str) -> tuple[DiscoveryProblem, ...]:
        return tuple(p for p in self.problems if p.plugin_id == plugin_id)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


# ---------------------------------------------------------------------------------------
# Where to look


def user_plugin_dir() -> Path:
    """The user's plugin directory (``plugins/`` in the user config dir, platformdirs): where
    ``plugin install`` puts plugins, and the first directory the loader searches."""
    import platformdirs
    return Path(platformdirs.user_config_dir("promptline")) / "plugins"


def plugin_search_path() -> list[Path]:
    """``$PROMPTLINE_PLUGIN_PATH`` if set, else the user plugin dir, the user data dir's
    ``plugins/`` and the system dir."""
    env = os.environ.get(PLUGIN_PATH_ENV)
    if env is not None:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    import platformdirs
    return [user_plugin_dir(), Path(platformdirs.user_data_dir("promptline")) / "plugins", SYSTEM_PLUGIN_DIR]


def default_config_path() -> Path:
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs
    return Path(platformdirs.user_config_dir("promptline")) / "config.yaml"


def current_version() -> str:
    return promptline_version()


# ---------------------------------------------------------------------------------------
# Discovery


def discover(*, search_path: Sequence[str | os.PathLike] | None = None,
             config_path: str | os.PathLike | None | Literal[False] = None,
             entry_points: bool | Iterable[Any] = True,
             version: str | None = None) -> DiscoveryReport:
    """Find every plugin. ``config_path=False`` skips the config file; ``entry_points`` may
    be False or an explicit iterable of EntryPoint objects (for tests)."""
    found: list[DiscoveredPlugin] = []
    problems: list[DiscoveryProblem] = []
    searched: list[str] = []
    if config_path is not False:
        cfg = Path(config_path).expanduser() if config_path is not None else default_config_path()
        searched.append(f"config {cfg}")
        _from_config(cfg, found, problems)
    dirs = [Path(d).expanduser() for d in search_path] if search_path is not None else plugin_search_path()
    for d in dirs:
        searched.append(f"directory {d}")
        _from_directory(d, found, problems)
    if entry_points is not False:
        searched.append(f"entry points {ENTRY_POINT_GROUP}")
        eps = importlib_metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points is True else entry_points
        for ep in eps:
            _from_entry_point(ep, found, problems)
    found = _check_versions(found, problems, version or current_version())
    found = _check_duplicates(found, problems)
    return DiscoveryReport(tuple(found), tuple(problems), tuple(searched))


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate one plugin.yaml (raise PolicyError with file:line:column)."""
    name = os.fspath(path)
    return parse_manifest(load_yaml(read_text(name), name))


def manifest_from_tree(tree: Any, *, origin: str | None = None) -> Manifest:
    """Parse the manifest from a verified snapshot's bytes (loaders._signing.PluginTree),
    so what is trusted is exactly what was verified."""
    data = tree.files.get(MANIFEST_FILE)
    where = origin or str(Path(tree.root) / MANIFEST_FILE)
    if data is None:
        raise PolicyError(f"the plugin tree has no {MANIFEST_FILE}", file=where, fix="add a plugin.yaml")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"not valid UTF-8 at byte {exc.start}", file=where, fix="save the file as UTF-8") from None
    return parse_manifest(load_yaml(text, where))


def _from_directory(d: Path, found: list[DiscoveredPlugin], problems: list[DiscoveryProblem]) -> None:
    try:
        st = d.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        problems.append(DiscoveryProblem(str(d), f"cannot read plugin directory: {exc.strerror}",
                                         severity="warning", fix="check its permissions"))
        return
    if not stat.S_ISDIR(st.st_mode):
        problems.append(DiscoveryProblem(str(d), "is not a directory", severity="warning",
                                         fix=f"remove it from ${PLUGIN_PATH_ENV}"))
        return
    if st.st_mode & 0o002:
        problems.append(DiscoveryProblem(str(d), "plugin directory is writable by everyone; not trusted",
                                         fix=f"run `chmod o-w {d}`"))
        return
    if (d / MANIFEST_FILE).is_file():
        _add_manifest(d / MANIFEST_FILE, "directory", str(d / MANIFEST_FILE), found, problems)
        return
    try:
        children = sorted(os.scandir(d), key=lambda e: e.name)[:MAX_PLUGINS_PER_DIR]
    except OSError as exc:
        problems.append(DiscoveryProblem(str(d), f"cannot list plugin directory: {exc.strerror}",
                                         severity="warning", fix="check its permissions"))
        return
    for child in children:
        if child.name.startswith(".") or not child.is_dir():
            continue
        manifest = Path(child.path) / MANIFEST_FILE
        if manifest.is_file():
            _add_manifest(manifest, "directory", str(manifest), found, problems)


def _add_manifest(path: Path, source: Source, origin: str, found: list[DiscoveredPlugin],
                  problems: list[DiscoveryProblem], **extra: Any) -> DiscoveredPlugin | None:
    try:
        manifest = read_manifest(path)
    except PolicyError as exc:
        problems.append(DiscoveryProblem(exc.location, exc.message, fix=exc.fix))
        return None
    root = Path(os.path.realpath(path.parent))
    argv: tuple[str, ...] = tuple(manifest.entry.command or ()) if manifest.entry.kind == "command" else ()
    wasm = (root / manifest.entry.wasm) if manifest.entry.kind == "wasm" else None
    plugin = DiscoveredPlugin(id=manifest.id, manifest=manifest, manifest_path=root / MANIFEST_FILE, root=root,
                              source=source, origin=origin, kind=manifest.entry.kind, argv=argv, wasm=wasm)
    plugin = replace(plugin, **extra)
    found.append(plugin)
    return plugin


# -- config file ------------------------------------------------------------------------


def _from_config(cfg: Path, found: list[DiscoveredPlugin], problems: list[DiscoveryProblem]) -> None:
    if not cfg.exists():
        return
    try:
        located = load_yaml(read_text(cfg), str(cfg))
    except PolicyError as exc:
        problems.append(DiscoveryProblem(exc.location, exc.message, fix=exc.fix))
        return
    data = located.data
    if data is None:
        return
    if not isinstance(data, dict):
        problems.append(DiscoveryProblem(str(cfg), "config file must be a YAML mapping",
                                         fix="start it with `plugins:`"))
        return
    entries = data.get("plugins")
    if entries is None:
        return
    if not isinstance(entries, list):
        problems.append(_at(located, ("plugins",), "`plugins` must be a list", "write `plugins:` followed by `- path: ...` items"))
        return
    for i, entry in enumerate(entries):
        _config_entry(located, cfg.parent, i, entry, found, problems)


def _at(located: Located, path: tuple, message: str, fix: str | None = None,
        plugin_id: str | None = None) -> DiscoveryProblem:
    line, _col = located.where(path)
    origin = f"{located.file}:{line}" if line else located.file
    return DiscoveryProblem(origin, message, plugin_id=plugin_id, fix=fix)


def _config_entry(located: Located, base: Path, i: int, entry: Any, found: list[DiscoveredPlugin],
                  problems: list[DiscoveryProblem]) -> None:
    where = ("plugins", i)
    line, _ = located.where(where)
    origin = f"{located.file}:{line}" if line else located.file
    if not isinstance(entry, dict):
        problems.append(_at(located, where, "a plugin entry must be a mapping",
                            "write `- path: DIR`, `- command: PROGRAM` or `- wasm: FILE`"))
        return
    kinds = [k for k in ("path", "command", "wasm") if k in entry]
    if len(kinds) != 1:
        problems.append(_at(located, where, "a plugin entry needs exactly one of `path`, `command`, `wasm`",
                            "keep one of them"))
        return
    unknown = sorted(set(entry) - CONFIG_ENTRY_KEYS)
    if unknown:
        fix = ("capabilities come from the plugin's manifest; remove it" if "permissions" in unknown
               else "remove it or check its spelling")
        problems.append(_at(located, where + (unknown[0],), f"unknown key `{unknown[0]}` in plugin entry", fix))
        return
    if entry.get("protocol", "stdio") != "stdio":
        problems.append(_at(located, where + ("protocol",), f"unsupported protocol `{entry['protocol']}`",
                            "use `stdio` or leave it out"))
        return
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool)
                                             for a in args):
        problems.append(_at(located, where + ("args",), "`args` must be a list of strings", "write `args: [--flag, value]`"))
        return
    args = tuple(str(a) for a in args)
    kind = kinds[0]
    value = entry[kind]

    def resolve(p: Any, key: str) -> Path | None:
        if not isinstance(p, str) or not p:
            problems.append(_at(located, where + (key,), f"`{key}` must be a non-empty string"))
            return None
        path = Path(p).expanduser()
        return path if path.is_absolute() else base / path

    manifest_path: Path | None = None
    if "manifest" in entry:
        manifest_path = resolve(entry["manifest"], "manifest")
        if manifest_path is None:
            return
        if manifest_path.is_dir():
            manifest_path = manifest_path / MANIFEST_FILE

    if kind == "path":
        path = resolve(value, "path")
        if path is None:
            return
        if path.suffix in (".so", ".dylib", ".dll"):
            problems.append(_at(located, where + ("path",), f"native library `{value}` cannot be loaded as a plugin",
                                "use a plugin directory with a plugin.yaml (python, command or wasm entry)"))
            return
        for key in ("args", "manifest"):
            if key in entry:
                problems.append(_at(located, where + (key,), f"`{key}` only applies to `command` and `wasm` entries",
                                    "remove it"))
                return
        manifest_path = path if path.name == MANIFEST_FILE else path / MANIFEST_FILE
        if not manifest_path.is_file():
            problems.append(_at(located, where + ("path",), f"no {MANIFEST_FILE} in `{path}`",
                                "point `path` at a plugin directory"))
            return
        _add_manifest(manifest_path, "config", origin, found, problems)
        return

    if kind == "wasm":
        wasm = resolve(value, "wasm")
        if wasm is None:
            return
        if not wasm.is_file():
            problems.append(_at(located, where + ("wasm",), f"wasm module `{wasm}` not found", "check the path"))
            return
        manifest_path = manifest_path or wasm.parent / MANIFEST_FILE
        if not manifest_path.is_file():
            problems.append(_at(located, where, f"no manifest for wasm module `{wasm}`",
                                f"put a {MANIFEST_FILE} next to it or add `manifest: PATH`"))
            return
        plugin = _add_manifest(manifest_path, "config", origin, found, problems, args=args)
        if plugin is None:
            return
        declared = plugin.wasm
        if plugin.kind != "wasm" or declared is None or os.path.realpath(declared) != os.path.realpath(wasm):
            found.remove(plugin)
            problems.append(_at(located, where + ("wasm",),
                                f"config names wasm module `{wasm}` but plugin.yaml declares "
                                f"{_entry_text(plugin.manifest)}", "make them agree", plugin_id=plugin.id))
        return

    # command
    if isinstance(value, list):
        if not value or not all(isinstance(v, str) and v for v in value):
            problems.append(_at(located, where + ("command",), "`command` must be a program name or a list of strings"))
            return
        argv = tuple(value) + args
    elif isinstance(value, str) and value:
        argv = (value,) + args
    else:
        problems.append(_at(located, where + ("command",), "`command` must be a program name"))
        return
    if manifest_path is None:
        problems.append(_at(located, where, f"command plugin `{argv[0]}` has no manifest",
                            "add `manifest: PATH/plugin.yaml` declaring its id and capabilities"))
        return
    if not manifest_path.is_file():
        problems.append(_at(located, where + ("manifest",), f"manifest `{manifest_path}` not found", "check the path"))
        return
    plugin = _add_manifest(manifest_path, "config", origin, found, problems, args=args)
    if plugin is None:
        return
    if plugin.kind != "command" or Path(plugin.argv[0]).name != Path(argv[0]).name:
        found.remove(plugin)
        problems.append(_at(located, where + ("command",),
                            f"config runs `{argv[0]}` but plugin.yaml declares {_entry_text(plugin.manifest)}",
                            "make them agree", plugin_id=plugin.id))
        return
    found[found.index(plugin)] = replace(plugin, argv=argv)


def _entry_text(manifest: Manifest) -> str:
    e = manifest.entry
    value = (e.python if e.kind == "python" else e.wasm if e.kind == "wasm" else e.library if e.kind == "library"
             else " ".join(e.command or ()))
    return f"`entry.{e.kind}: {value}`"


# -- entry points -----------------------------------------------------------------------


def _from_entry_point(ep: Any, found: list[DiscoveredPlugin], problems: list[DiscoveryProblem]) -> None:
    dist = getattr(ep, "dist", None)
    dist_name = getattr(dist, "name", None) or (dist.metadata["Name"] if dist is not None else "?")
    origin = f"entry point `{ep.name} = {ep.value}` ({dist_name})"
    module = ep.value.split(":", 1)[0].strip()
    parts = module.split(".")
    if not all(p.isidentifier() for p in parts):
        problems.append(DiscoveryProblem(origin, f"`{ep.value}` is not `package.module:Class`",
                                         fix="fix the entry point in the plugin's packaging"))
        return
    located = _locate_manifest(dist, parts)
    if located is None:
        problems.append(DiscoveryProblem(origin, f"no {MANIFEST_FILE} shipped in package `{parts[0]}`",
                                         fix=f"include {MANIFEST_FILE} as package data next to the plugin's code"))
        return
    manifest_path, package = located
    plugin = _add_manifest(manifest_path, "entry-point", origin, found, problems,
                           entry_point=f"{ep.name} = {ep.value}", package=package)
    if plugin is not None and ep.name != plugin.id:
        problems.append(DiscoveryProblem(origin, f"entry point name `{ep.name}` differs from plugin id `{plugin.id}`",
                                         plugin_id=plugin.id, severity="warning",
                                         fix=f"name the entry point `{plugin.id}`"))


def _locate_manifest(dist: Any, parts: list[str]) -> tuple[Path, str] | None:
    """Find ``<pkg>/.../plugin.yaml`` for the entry point's module, deepest package first,
    from the distribution's file list (no import), else from the import system's spec of
    the top-level package (which does not run the package's code)."""
    candidates = ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]
    files = set()
    if dist is not None:
        try:
            files = {str(f).replace("\\", "/") for f in (dist.files or ())}
        except Exception:  # noqa: BLE001 - a broken RECORD only loses this shortcut
            files = set()
        for c in candidates:
            if f"{c}/{MANIFEST_FILE}" in files:
                path = Path(dist.locate_file(f"{c}/{MANIFEST_FILE}"))
                if path.is_file():
                    return path, c.replace("/", ".")
    import importlib.util
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        for c in candidates:
            path = Path(loc).joinpath(*c.split("/")[1:], MANIFEST_FILE)
            if path.is_file():
                return path, c.replace("/", ".")
    return None


# -- checks across plugins --------------------------------------------------------------


def _check_versions(found: list[DiscoveredPlugin], problems: list[DiscoveryProblem],
                    version: str) -> list[DiscoveredPlugin]:
    out = []
    for p in found:
        requires = p.manifest.requires
        if requires:
            if not requires_ok(requires, version):
                problems.append(DiscoveryProblem(
                    p.origin, f"plugin `{p.id}` {p.version} requires PromptLine `{requires}`, this is {version}",
                    plugin_id=p.id, fix="install a version of the plugin made for this PromptLine"))
                continue
        out.append(p)
    return out


def _check_duplicates(found: list[DiscoveredPlugin], problems: list[DiscoveryProblem]) -> list[DiscoveredPlugin]:
    by_id: dict[str, list[DiscoveredPlugin]] = {}
    for p in found:
        same = by_id.setdefault(p.id, [])
        if not any(q.root == p.root for q in same):   # one directory reached twice counts once
            same.append(p)
    out = []
    for pid, plugins in by_id.items():
        if len(plugins) == 1:
            out.append(plugins[0])
            continue
        places = "; ".join(f"{q.origin} ({q.root})" for q in plugins)
        problems.append(DiscoveryProblem(plugins[0].origin,
                                         f"plugin id `{pid}` is used by {len(plugins)} plugins: {places}",
                                         plugin_id=pid,
                                         fix="remove or rename all but one; none of them is loaded until then"))
    return out


# ---------------------------------------------------------------------------------------
# Vetting one discovered plugin: signature, manifest from the verified bytes, approval


@dataclass
class Inspection:
    """What the host knows of a discovered plugin before loading it.

    ``verified`` holds the exact bytes to load; ``manifest`` was parsed from them. ``error``
    is set when the plugin must not load (signature, manifest or approval store refused);
    ``status`` says whether the user (or org, or policy) approved it.
    """

    plugin: DiscoveredPlugin
    manifest: Manifest
    verified: Any = None                 # loaders._signing.VerifiedPlugin
    error: str | None = None
    status: Any = None                   # loaders._approval.ApprovalStatus
    subject: Any = None                  # loaders._approval.ApprovalSubject

    @property
    def loadable(self) -> bool:
        return self.error is None and self.status is not None and self.status.ok

    @property
    def signature(self) -> str:
        if self.verified is None:
            return "refused"
        v = self.verified
        if v.state == "trusted":
            return f"signed ({v.key_id})"
        if v.state == "untrusted-key":
            return f"untrusted key ({v.untrusted_key_id})"
        return "unsigned"

    @property
    def approval(self) -> str:
        if self.status is None:
            return "-"
        return self.status.state + (f" ({self.status.via})" if self.status.via and self.status.ok else "")


def org_publishers(settings: Any) -> tuple[str, ...]:
    """Publisher keys whose plugins the org pre-approves: the policy's trusted keys, when
    the org layer set them (a user-layer trusted key approves nothing on its own)."""
    if settings is None or getattr(settings, "set_by", {}).get("trusted_keys") != "org":
        return ()
    return tuple(settings.trusted_keys)


def inspect_plugin(plugin: DiscoveredPlugin, settings: Any, store: Any) -> Inspection:
    """Verify ``plugin`` under the policy ``settings`` (policy.EffectiveSettings: trusted_keys,
    require_signature, approve) and look up its approval in ``store`` (ApprovalStore).

    Never raises for a bad plugin: the refusal is in ``Inspection.error``.
    """
    from ._approval import ApprovalSubject
    from ._errors import ApprovalStoreError, SignatureError
    from ._signing import verify_plugin

    trusted = tuple(settings.trusted_keys) if settings is not None else ()
    require = bool(settings.require_signature) if settings is not None else False
    out = Inspection(plugin, plugin.manifest)
    try:
        out.verified = verify_plugin(plugin.root, trusted, require_signature=require, plugin=plugin.id)
        out.manifest = manifest_from_tree(out.verified)
    except (SignatureError, PolicyError) as exc:
        out.error = str(exc)
        return out
    if out.manifest.id != plugin.id:
        out.error = (f"plugin `{plugin.id}`: plugin.yaml changed while it was being loaded (now id "
                     f"`{out.manifest.id}`) — run the command again")
        return out
    out.subject = ApprovalSubject.from_verified(out.manifest, out.verified)
    try:
        out.status = store.status(out.subject, preapproved_publishers=org_publishers(settings),
                                  mode=settings.approve if settings is not None else "review")
    except ApprovalStoreError as exc:
        out.error = str(exc)
    return out


__all__ = ["discover", "DiscoveryReport", "DiscoveredPlugin", "DiscoveryProblem", "read_manifest",
           "Inspection", "inspect_plugin", "org_publishers",
           "manifest_from_tree", "plugin_search_path", "user_plugin_dir", "default_config_path", "current_version",
           "ENTRY_POINT_GROUP", "PLUGIN_PATH_ENV", "CONFIG_ENV"]
