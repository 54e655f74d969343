"""The launch spec of a process plugin: what the child runs, sees and may touch.

``build_spec`` turns a LoadContext into a :class:`SandboxSpec` (argv, environment, Landlock
paths, rlimits); ``copy_code`` puts the verified bytes where the child reads them, so the
child runs exactly what was verified.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from typing import Any

from promptline.policy import promptline_version, user_home

from .._errors import LoaderError
from .._loader import LoadContext
from . import _landlock as ll
from ._distribution import distribution_files
from ._launch import SandboxSpec, sandbox_spec
from ._protocol import BOOT_ENV

BOOTSTRAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap.py")
log = logging.getLogger("promptline.process")


def host_version() -> str:
    """This PromptLine's version, as the host announces it to children."""
    return promptline_version()


def code_dirs() -> list[str]:
    """Directories the bootstrap imports the project from (read-only in the child): the
    ``promptline`` package and its subpackages, wherever the install put each of them."""
    out = []
    for name in ("promptline", "promptline.policy", "promptline.enforcer", "promptline.loaders"):
        spec = importlib.util.find_spec(name)   # the already-imported package's own spec
        if spec is not None and spec.origin:
            out.append(os.path.dirname(os.path.abspath(spec.origin)))
    return out


def import_path() -> list[str]:
    """The sys.path entry that holds the ``promptline`` package (the child imports it from
    there; an editable install's finder supplies the subpackages)."""
    return [os.path.dirname(code_dirs()[0])]


def limit_rlimits(limits: Any) -> dict[str, int]:
    """A plugin's effective limits (policy.EffectiveLimits) as the shim's rlimits."""
    if limits is None:
        return {}
    return {"DATA": int(limits.memory), "CPU": int(limits.cpu_seconds), "NPROC": int(limits.processes),
            "NOFILE": int(limits.open_files)}


def copy_code(ctx: LoadContext, code: str) -> str:
    """The plugin's code as the child sees it: the verified bytes copied below ``code``
    (so the child runs what was verified), else the plugin directory."""
    files = ctx.files
    plugin = ctx.plugin
    if files is None:
        return str(plugin.root)
    base = code
    if plugin.package:
        base = os.path.join(base, *plugin.package.split("."))
        # the rest of a pip-installed plugin's distribution (RECORD-checked) beside its package
        for rel, data in distribution_files(plugin.root, plugin.package, plugin.id):
            _write_below(code, rel, data, plugin.id)
    for rel, data in files.items():
        _write_below(base, rel, data, plugin.id)
    return base


def _write_below(base: str, rel: str, data: bytes, plugin_id: str) -> None:
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise LoaderError(f"file name `{rel}` is not a plain relative path", plugin=plugin_id)
    dest = os.path.join(base, *parts)
    os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def build_spec(ctx: LoadContext, *, workdir: str, code: str, rlimits: dict[str, int],
               use_landlock: bool, netns: bool = False, container: bool = False,
               fork: bool = True) -> SandboxSpec:
    """The child's SandboxSpec: the bootstrap for Python plugins (forked from the template
    process unless ``fork`` is False or it runs in a container), the command otherwise."""
    plugin = ctx.plugin
    manifest = plugin.manifest
    opts = ctx.options
    rlimits = {**limit_rlimits(getattr(ctx.info, "limits", None)), **rlimits}
    rlimits.update(opts.get("rlimits") or {})
    code_root = copy_code(ctx, code)
    dirs: list[str]
    if plugin.kind in ("python", "library"):
        manifest_path = os.path.join(code_root, "plugin.yaml") if ctx.files is not None \
            else str(plugin.manifest_path)
        entry = manifest.entry.python or ""
        module, _, cls = entry.partition(":")
        import_root = code_root
        if plugin.package:
            import_root = code
            if not module.startswith(plugin.package + ".") and module != plugin.package:
                module = f"{plugin.package}.{module}"
        info = ctx.info
        boot: dict[str, Any] = {
            "plugin_id": plugin.id, "entry": f"{module}:{cls}" if cls else module,
            "code_root": import_root, "manifest": manifest_path,
            "plugin_dir": import_root,
            "promptline_version": host_version(),   # the child cannot read the host's dist-info
            "library": os.path.join(code_root, *manifest.entry.library.split("/")) if manifest.entry.library else None,   # the plugin's own files: its package and distribution
            "policy_files": [os.path.abspath(p) for p in ctx.policy_files],
            "home": user_home(),   # `~` in policies means the host user's home
            "grants": opts.get("grants_path"),
            "facts": {"signed": bool(getattr(info, "signed", False)),
                      "publisher": str(getattr(info, "publisher", "") or ""),
                      # its own places: the policy's baseline grants them read/write
                      "data_dir": str(ctx.config.data_dir) if ctx.config.data_dir else None,
                      "work_dir": workdir,
                      # its network goes through the egress proxy: the proxy variables are readable
                      "egress_proxy": bool(netns or container) and bool(manifest.capabilities.network)},
            "settings": dict(ctx.config.settings),
            "data_dir": str(ctx.config.data_dir) if ctx.config.data_dir else None,
            "hooks": True, "log_allows": bool(opts.get("log_allows", False)),
            "mode": opts.get("mode") or getattr(ctx.enforcer, "mode", "enforce"),
            "sys_path": import_path()}
        # the spec (with the plugin's settings) travels in the environment, not in argv:
        # /proc/<pid>/cmdline is readable by every local user, environ only by the owner
        argv = [sys.executable, "-I", "-B", BOOTSTRAP]
        extra_env = {BOOT_ENV: json.dumps(boot, separators=(",", ":"))}
        dirs = [import_root, *code_dirs()]
        read_files = [p for p in boot["policy_files"] if os.path.isfile(p)]
        if boot["grants"] and os.path.isfile(boot["grants"]):
            read_files.append(boot["grants"])
        # directories named in policy_files: every file below is read by the child
        dirs += [p for p in boot["policy_files"] if os.path.isdir(p)]
    else:
        argv = list(plugin.argv or manifest.entry.command or ())
        root = os.path.realpath(str(plugin.root))
        if "/" in argv[0] and not os.path.isabs(argv[0]):
            argv[0] = os.path.join(code_root, argv[0])
        for i in range(1, len(argv)):   # `python server.py`: files of the plugin by absolute path
            cand = os.path.join(code_root, argv[i])
            if not os.path.isabs(argv[i]) and not argv[i].startswith("-") and os.path.isfile(cand):
                argv[i] = cand
        dirs = [code_root, root] if code_root != root else [root]
        read_files = []
        extra_env = {}
    try:
        spec = sandbox_spec(manifest, argv, workdir=workdir, code_dirs=dirs,
                            read_files=read_files, rlimits=rlimits,
                            landlock=use_landlock, extra_env=extra_env,
                            bind_ports=opts.get("bind_ports") or (), netns=netns, container=container)
    except FileNotFoundError:
        raise LoaderError(f"program `{argv[0]}` was not found", plugin=plugin.id,
                          fix="install it or give its absolute path in `entry.command`") from None
    data_dir = ctx.config.data_dir
    if data_dir:
        spec = SandboxSpec(**{**spec.__dict__, "fs": spec.fs + ((str(data_dir), ll.WRITE),)})
    if fork and not container and plugin.kind in ("python", "library"):
        spec = SandboxSpec(**{**spec.__dict__, "fork_from": tuple(import_path())})
    for note in spec.notes:
        log.info("plugin `%s`: %s", plugin.id, note)
    return spec
