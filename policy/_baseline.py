"""The read-only system baseline: what every plugin may read at every sandbox level.

Ordinary runtimes read these without asking (time zones, MIME types, CA certificates,
locale data, the Python installation they run on); none of it is a secret. The baseline is a
set of *allow* rules, so any deny rule (org, project, user or built-in) still wins.

    paths = baseline_paths(network=True, programs=("git",))   # also the sandbox's read list
    rules = baseline_rules(manifest, facts, backend)           # what load_policy_set compiles

Besides the system files, a plugin may read and write its own places, given as runtime
facts: ``data_dir`` (its ``PluginConfig.data_dir``) and ``work_dir`` (a sandboxed child's
own working directory and ``TMPDIR``); inside a child whose network goes through the egress
proxy (fact ``egress_proxy``), a plugin with a network capability reads the proxy variables
the sandbox set (``HTTP_PROXY``...), so urllib and friends find the proxy.
"""

from __future__ import annotations

import functools
import os
import site
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from typing import Any

from ._cel import cel_string

SYSTEM_DATA: tuple[str, ...] = (
    # time zones
    "/usr/share/zoneinfo", "/etc/localtime", "/etc/timezone",
    # MIME types (mimetypes.init)
    "/etc/mime.types", "/usr/share/mime",
    # CA certificates and the OpenSSL configuration (never /etc/ssl/private)
    "/etc/ssl/certs", "/etc/ssl/openssl.cnf", "/usr/share/ca-certificates", "/usr/lib/ssl/certs",
    "/usr/lib/ssl/cert.pem", "/usr/lib/ssl/openssl.cnf", "/etc/ca-certificates",
    "/etc/pki/tls/certs", "/etc/pki/ca-trust/extracted", "/etc/pki/tls/openssl.cnf",
    # locale data
    "/usr/lib/locale", "/usr/share/locale", "/usr/share/i18n", "/etc/locale.alias",
    "/etc/default/locale",
    # terminal descriptions
    "/usr/share/terminfo", "/etc/terminfo", "/lib/terminfo",
)
"""System data every runtime may read, whatever the plugin declares."""

NETWORK_DATA: tuple[str, ...] = (
    "/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/gai.conf", "/etc/host.conf",
    "/etc/services", "/etc/protocols", "/run/systemd/resolve/stub-resolv.conf",
    "/run/systemd/resolve/resolv.conf",
)
"""The resolver's files: readable only by a plugin with a network capability."""

PROXY_VARIABLES: tuple[str, ...] = tuple(n for v in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
                                         for n in (v, v.lower()))
"""The egress proxy a sandboxed child is told to use (set by the sandbox, not the user's):
readable by a plugin with a network capability when the fact ``egress_proxy`` is true."""

PROGRAM_DATA: Mapping[str, tuple[str, ...]] = {
    "git": ("/etc/gitconfig", "/usr/share/git-core"),
}
"""System configuration a granted program reads (``process: [git]`` -> /etc/gitconfig)."""


_BASE_VARS = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix,
              "installed_base": sys.base_prefix, "installed_platbase": sys.base_exec_prefix}


@functools.lru_cache(maxsize=1)
def stdlib_dirs() -> tuple[str, ...]:
    """The running interpreter's standard library and its extension-module directory
    (``lib-dynload``) in the base installation, venv or not (resolved, with a trailing /)."""
    found = set()
    for key in ("stdlib", "platstdlib"):
        p = sysconfig.get_path(key, vars=_BASE_VARS)
        if p:
            found.add(p)
    found.update(dynload_dirs())
    return _clean(found)


@functools.lru_cache(maxsize=1)
def dynload_dirs() -> tuple[str, ...]:
    """Where the standard library's extension modules live (``_sqlite3``, ``_decimal``...):
    ``DESTSHARED`` of the base installation and ``lib-dynload`` entries of ``sys.path``."""
    found = set()
    dest = sysconfig.get_config_var("DESTSHARED")
    if isinstance(dest, str) and dest:
        found.add(dest)
    plat = sysconfig.get_path("platstdlib", vars=_BASE_VARS)
    if plat:
        found.add(os.path.join(plat, "lib-dynload"))
    found.update(p for p in sys.path if isinstance(p, str) and os.path.basename(p.rstrip("/")) == "lib-dynload")
    return tuple(d for d in _clean(found) if os.path.isdir(d))


@functools.lru_cache(maxsize=1)
def interpreter_dirs() -> tuple[str, ...]:
    """The Python installation a plugin runs on: the standard library and the site-packages
    of the base installation and of the venv (package data and metadata live there)."""
    found = set(stdlib_dirs())
    for key in ("purelib", "platlib"):
        for p in (sysconfig.get_path(key), sysconfig.get_path(key, vars=_BASE_VARS)):
            if p:
                found.add(p)
    try:
        found.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - old virtualenv's site module
        pass
    return _outermost(_clean(found))


def _clean(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({os.path.realpath(p).rstrip("/") + "/" for p in paths if p and os.path.isabs(p)}))


def _outermost(dirs: tuple[str, ...]) -> tuple[str, ...]:
    """Drop directories that lie inside another one of the list."""
    out: list[str] = []
    for d in sorted(dirs, key=len):
        if not any(d.startswith(o) for o in out):
            out.append(d)
    return tuple(sorted(out))


def baseline_paths(*, network: bool = False, programs: Iterable[str] = ()) -> tuple[str, ...]:
    """Every read-only baseline path for a plugin, as written (the kernel sandbox's read list
    uses it too; paths missing on this machine are left out of the compiled rule)."""
    out = list(SYSTEM_DATA)
    out += [d.rstrip("/") for d in interpreter_dirs()]
    if network:
        out += NETWORK_DATA
    for prog in programs:
        out += PROGRAM_DATA.get(os.path.basename(str(prog)), ())
    return tuple(dict.fromkeys(out))


def _resolved(paths: Iterable[str], *, existing: bool = True) -> list[str]:
    """The resolved and the lexical spelling of each path (decisions see resolved paths),
    without paths covered by another one; with ``existing``, only paths present on this
    machine (each ``within`` costs the CEL compiler about 2 ms)."""
    found: list[str] = []
    for p in paths:
        if existing and not os.path.lexists(p):
            continue
        for q in (os.path.realpath(p).rstrip("/") or "/", p.rstrip("/") or "/"):
            if q not in found:
                found.append(q)
    def covered(q: str) -> bool:
        return any(o != q and (q == o or q.startswith(o.rstrip("/") + "/")) for o in found)
    return [q for q in found if not covered(q)]


def _within_any(paths: Iterable[str]) -> str:
    """CEL: ``request.path`` is one of ``paths`` or below one, grouped by first component so
    a request elsewhere costs one ``startsWith`` per group."""
    groups: dict[str, list[str]] = {}
    for p in paths:
        top = "/" + p.strip("/").split("/", 1)[0] + "/"
        groups.setdefault(top, []).append(p)
    parts = []
    for top, members in groups.items():
        inner = " || ".join(f"within(request.path, {cel_string(m)})" for m in members)
        parts.append(f"(request.path.startsWith({cel_string(top)}) && ({inner}))")
    return " || ".join(parts) if parts else "false"


@functools.lru_cache(maxsize=64)
def _system_cel(network: bool, programs: tuple[str, ...]) -> str:
    """The baseline's CEL for one shape of plugin (resolved once per process: ~40 paths)."""
    return _within_any(_resolved(baseline_paths(network=network, programs=programs)))


class _LazyProgram:
    """The CEL program of a baseline rule, compiled on first evaluation. The native rule tier
    decides these rules without it (cel-expr-python); compiling the long generated expression
    up front would cost every sandboxed child ~40 ms at start. The text is generated here and
    compile-tested (tests/policy/test_baseline.py), so no load-time error is deferred."""

    __slots__ = ("_backend", "source", "_program")

    def __init__(self, backend, source: str) -> None:
        self._backend, self.source, self._program = backend, source, None

    def evaluate(self, activation: dict) -> object:
        program = self._program
        if program is None:
            from ._compile import compile_cached
            program = self._program = compile_cached(self._backend, self.source, True)  # type: ignore[assignment]
        return program.evaluate(activation)


def baseline_rules(manifest: Any, facts: Mapping[str, Any] | None, backend) -> list:
    """The allow rules of the baseline for one plugin (``manifest``): system data, the
    resolver's files when it has a network capability, the configuration of its granted
    programs, and its own ``data_dir``/``work_dir`` from ``facts`` (read and write)."""
    from ._compile import CompiledRule
    from ._decision import Effect, RuleRef

    caps = manifest.capabilities
    facts = facts or {}
    out = []

    def add(name: str, actions: tuple[str, ...], cel: str, why: str) -> None:
        ref = RuleRef(f"baseline:{name}", Effect.ALLOW, "baseline", f"<built-in: {why}>")
        out.append(CompiledRule(ref, frozenset(actions), (manifest.id,), cel, _LazyProgram(backend, cel)))

    programs = tuple(sorted({os.path.basename(str(p)) for p in caps.process} & set(PROGRAM_DATA)))
    add("system-read", ("fs.read",), _system_cel(bool(caps.network), programs),
        "read-only system baseline (docs/enforcer.md)")
    if caps.network and facts.get("egress_proxy") is True:
        names = ", ".join(cel_string(n) for n in PROXY_VARIABLES)
        add("egress-proxy", ("env.read",), f"request.name in [{names}]",
            "the sandbox's egress proxy variables")
    own = [str(facts[k]) for k in ("data_dir", "work_dir") if isinstance(facts.get(k), (str, os.PathLike))
           and os.path.isabs(str(facts[k]))]
    if own:
        add("own-dirs", ("fs.read", "fs.write"), _within_any(_resolved(own, existing=False)),
            "the plugin's own data and work directories")
    return out
