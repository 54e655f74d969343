"""`promptline plugin list|info|new|approve|sign|verify`."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import click

from promptline.loaders import (
    MANIFEST_FILE,
    ApprovalStore,
    ApprovalStoreError,
    DiscoveredPlugin,
    DiscoveryReport,
    SignatureError,
    discover,
    inspect_plugin,
    manifest_from_tree,
    read_manifest,
    sign_plugin,
    verify_plugin,
)
from promptline.policy import PolicyError, effective_limits, load_policy_set, promptline_version, requires_ok

from ._common import console, fail
from .keys_cmd import resolve_key

POLICY_ENV = "PROMPTLINE_POLICY"


def _show(text: Any) -> str:
    """Untrusted text (manifest strings, paths) made safe for the terminal."""
    try:
        from promptline.enforcer import escape_for_terminal
    except ImportError:  # pragma: no cover - enforcer not installed in a partial checkout
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return escape_for_terminal(text)


# ---------------------------------------------------------------------------------------
# Policy settings: trusted keys, require_signature, approve mode


def default_policy_files() -> list[str]:
    env = os.environ.get(POLICY_ENV)
    if env:
        return [p for p in env.split(os.pathsep) if p]
    here = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"
    return [str(here)] if here.exists() else []


def policy_settings(files: tuple[str, ...] | list[str] = ()) -> tuple[Any, str | None]:
    """(EffectiveSettings or None, error text) of the given or default policy files."""
    files = list(files) or default_policy_files()
    try:
        return load_policy_set(files).settings, None
    except PolicyError as exc:
        return None, str(exc)


def _settings_or_fail(files: tuple[str, ...]) -> Any:
    settings, error = policy_settings(files)
    if settings is None:
        fail(f"{error} (the policy decides which keys are trusted; fix it first)")
    return settings


_MAX_TARGET = 4096  # a plugin id or directory longer than any path the kernel accepts


def _find(target: str, report: DiscoveryReport) -> DiscoveredPlugin:
    """A plugin by id (from discovery) or by directory."""
    if len(target) > _MAX_TARGET or "\0" in target:
        fail(f"`{_show(target[:80])}…` is not a plugin id or directory (ids are short names) — "
             f"see `promptline plugin list`")
    path = Path(target).expanduser()
    try:
        is_plugin_dir = (path / MANIFEST_FILE).is_file() or path.name == MANIFEST_FILE
    except OSError as exc:   # a name the file system refuses (too long...): not a directory
        fail(f"`{_show(target[:80])}`: {exc.strerror or exc} — pass a plugin id or directory")
    if is_plugin_dir:
        manifest_path = path if path.name == MANIFEST_FILE else path / MANIFEST_FILE
        try:
            manifest = read_manifest(manifest_path)
        except PolicyError as exc:
            fail(str(exc))
        root = Path(os.path.realpath(manifest_path.parent))
        for p in report:
            if p.root == root:
                return p
        return DiscoveredPlugin(manifest.id, manifest, root / MANIFEST_FILE, root, "directory",
                                str(manifest_path), manifest.entry.kind)
    found = report.get(target)
    if found is None:
        why = [str(p) for p in report.problems if p.plugin_id == target or _problem_dir(p.origin) == target]
        if why:
            fail(f"plugin `{_show(target)}` cannot be read: {_show(why[0])}")
        known = ", ".join(f"`{p.id}`" for p in report) or "none"
        fail(f"no plugin `{_show(target)}` found — known plugins: {known}; see `promptline plugin list`")
    return found


def _problem_dir(origin: str) -> str:
    """The directory name of a problem's manifest (`.../notes/plugin.yaml:4:1` -> `notes`):
    a manifest that does not parse has no id, but its directory usually bears it."""
    path = Path(origin.split(":", 1)[0])
    return path.parent.name if path.name == MANIFEST_FILE else ""


_policy_option = click.option("--policy", "policies", multiple=True, type=click.Path(),
                              help=f"policy file(s) (default: ${POLICY_ENV}, else the shipped default)")
_approvals_option = click.option("--approvals", "approvals", type=click.Path(dir_okay=False),
                                 help="approvals file (default: $PROMPTLINE_APPROVALS, else approvals.yaml "
                                      "in the user config dir)")


@click.group("plugin")
def plugin_group() -> None:
    """Find, inspect, approve, sign and scaffold plugins.

    \b
    Examples:
      promptline plugin new my-tools            scaffold a working plugin
      promptline plugin list                    what is installed, signed, approved
      promptline plugin info my-tools           manifest, capabilities, approval diff
      promptline plugin approve my-tools        approve its declared capabilities
      promptline plugin sign ./my-tools --key acme
      promptline plugin verify ./my-tools
    """


# ---------------------------------------------------------------------------------------
# list / info


@plugin_group.command("list")
@_policy_option
@_approvals_option
@click.option("--plugins", "plugin_dirs", multiple=True, type=click.Path(),
              help="plugin directory to search, repeatable (default: the usual search path)")
@click.option("--wide", is_flag=True, help="every column (types, source), however wide")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def list_cmd(policies: tuple[str, ...], approvals: str | None, plugin_dirs: tuple[str, ...], wide: bool,
             as_json: bool) -> None:
    """List discovered plugins with their signature and approval status."""
    settings, policy_error = policy_settings(policies)
    report = discover(search_path=list(plugin_dirs), config_path=False, entry_points=False) if plugin_dirs \
        else discover()
    store = ApprovalStore(approvals)
    rows = [inspect_plugin(p, settings, store) for p in report]
    if as_json:
        click.echo(json.dumps({
            "plugins": [{"id": r.manifest.id, "version": r.manifest.version, "types": list(r.manifest.types),
                         "source": r.plugin.source, "origin": r.plugin.origin, "root": str(r.plugin.root),
                         "sandbox": r.manifest.sandbox, "requires": r.manifest.requires,
                         "compatible": requires_ok(r.manifest.requires, promptline_version()),
                         "signature": r.signature, "approval": r.approval,
                         "error": r.error} for r in rows],
            "problems": [{"origin": p.origin, "message": p.message, "plugin": p.plugin_id,
                          "severity": p.severity, "fix": p.fix} for p in report.problems],
            "policy_error": policy_error}, indent=2))
        return
    if policy_error:
        click.echo(f"warning: policy not loaded: {policy_error}", err=True)
    if not rows:
        click.echo("no plugins found (looked in: " + "; ".join(_show(s) for s in report.searched) + ")")
    else:
        from rich.table import Table
        from rich.text import Text

        columns = ("id", "version", "types", "source", "sandbox", "signature", "approval") if wide \
            else ("id", "version", "sandbox", "signature", "approval")
        table = Table(title="plugins", title_justify="left")
        for col in columns:   # at 80 columns long values fold onto more lines, never get cut
            table.add_column(col, overflow="fold")
        for r in rows:
            values = {"id": r.manifest.id, "version": r.manifest.version, "types": ",".join(r.manifest.types),
                      "source": r.plugin.source, "sandbox": r.manifest.sandbox, "signature": r.signature,
                      "approval": r.approval if not r.error else "refused"}
            table.add_row(*(Text(_show(values[c])) for c in columns))
        console(200 if wide else 0).print(table)
        for r in rows:
            if r.error:
                click.echo(f"refused: {_show(r.error)}", err=True)
    for p in report.problems:
        click.echo(f"{p.severity}: {_show(p)}", err=True)


@plugin_group.command("info")
@click.argument("target", metavar="ID|DIR")
@_policy_option
@_approvals_option
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def info_cmd(target: str, policies: tuple[str, ...], approvals: str | None, as_json: bool) -> None:
    """Show a plugin's manifest, capabilities, signature and approval (with what changed)."""
    settings, policy_error = policy_settings(policies)
    plugin = _find(target, discover())
    r = inspect_plugin(plugin, settings, ApprovalStore(approvals))
    m = r.manifest
    caps = m.capabilities
    if as_json:
        click.echo(json.dumps({
            "id": m.id, "name": m.name, "version": m.version, "description": m.description,
            "types": list(m.types), "entry": m.entry.model_dump(exclude_none=True), "sandbox": m.sandbox,
            "requires": m.requires, "capabilities": caps.model_dump(mode="json"),
            "author": m.author, "homepage": m.homepage, "repository": m.repository, "issues": m.issues,
            "license": m.license, "keywords": list(m.keywords), "dependencies": dict(m.dependencies),
            "limits": effective_limits(m.limits, getattr(settings, "limits", None)).to_dict(),
            "source": plugin.source, "origin": plugin.origin, "root": str(plugin.root),
            "signature": r.signature, "digest": r.verified.digest if r.verified else None,
            "approval": r.status.state if r.status else None,
            "added": list(r.status.diff.added) if r.status and r.status.diff else [],
            "removed": list(r.status.diff.removed) if r.status and r.status.diff else [],
            "error": r.error, "policy_error": policy_error}, indent=2))
        return
    lines = [
        f"{m.id} {m.version}" + (f" — {m.name}" if m.name else ""),
        *([f"  {m.description}"] if m.description else []),
        f"  types:      {', '.join(m.types)}",
        f"  entry:      {m.entry.kind}: {m.entry.python or m.entry.wasm or ' '.join(m.entry.command or ())}",
        f"  sandbox:    {m.sandbox}",
        f"  requires:   PromptLine {m.requires or 'any'} (this is {promptline_version()}: "
        f"{'compatible' if requires_ok(m.requires, promptline_version()) else 'NOT compatible'}; "
        "a plugin class's own `requires` is checked when it loads)",
        *(["  model:      `promptline model list` asks its is_available()"] if "model" in m.types else []),
        *(f"  {label + ':':<11} {value}" for label, value in (
            ("author", m.author), ("license", m.license), ("homepage", m.homepage),
            ("repository", m.repository), ("issues", m.issues), ("keywords", ", ".join(m.keywords)),
            ("depends on", ", ".join(f"{k} {v}".strip() for k, v in m.dependencies.items()))) if value),
        f"  found:      {plugin.source} {plugin.origin}",
        f"  directory:  {plugin.root}",
        f"  signature:  {r.signature}",
    ]
    if r.verified:
        lines.append(f"  digest:     {r.verified.digest} ({len(r.verified.files)} files)")
    lines.append("  capabilities:")
    declared = [*(f"network: {v}" for v in caps.network), *(f"filesystem.read: {v}" for v in caps.filesystem.read),
                *(f"filesystem.write: {v}" for v in caps.filesystem.write),
                *(f"environment: {v}" for v in caps.environment), *(f"process: {v}" for v in caps.process),
                *(["native: true"] if caps.native else [])]
    lines.extend(f"    {c}" for c in declared or ["(none)"])
    lines.append("  limits (asked, or the default, capped by the policy):")
    lines.extend(f"    {line}" for line in effective_limits(m.limits, getattr(settings, "limits", None)).describe())
    for line in lines:
        click.echo(_show(line))
    if r.error:
        click.echo(f"refused: {_show(r.error)}")
    elif r.status is not None:
        click.echo("approval:")
        for line in r.status.explain().splitlines():
            click.echo("  " + _show(line))
    if policy_error:
        click.echo(f"warning: policy not loaded: {policy_error}", err=True)


# ---------------------------------------------------------------------------------------
# approve


@plugin_group.command("approve")
@click.argument("target", metavar="ID|DIR")
@_policy_option
@_approvals_option
@click.option("--yes", "-y", is_flag=True, help="approve without asking (for scripts)")
@click.option("--audit-log", "audit_log", type=click.Path(dir_okay=False),
              help="Audit log for the `approved` record (default $PROMPTLINE_AUDIT_LOG or the user state dir).")
def approve_cmd(target: str, policies: tuple[str, ...], approvals: str | None, yes: bool,
                audit_log: str | None) -> None:
    """Approve a plugin's declared capabilities, pinned to its manifest and code digests.

    An update that asks for more needs approval again; this command shows what changed.
    """
    settings = _settings_or_fail(policies)
    plugin = _find(target, discover())
    store = ApprovalStore(approvals)
    r = inspect_plugin(plugin, settings, store)
    if r.error or r.subject is None or r.status is None:
        fail(f"cannot approve: {r.error}")
    status, subject = r.status, r.subject
    if status.ok and status.via == "user":
        click.echo(f"plugin `{_show(subject.plugin_id)}` {_show(subject.version)} is already approved")
        return
    click.echo(f"plugin `{_show(subject.plugin_id)}` {_show(subject.version)} ({r.signature}) from "
               f"{_show(plugin.origin)}")
    if status.state == "changed" and status.diff is not None:
        click.echo(f"changed since you approved {_show(status.approved.version if status.approved else '?')}: "
                   f"{_show(status.reason)}")
        for line in status.diff.lines() or ["(no capability changes)"]:
            click.echo("  " + _show(line))
    else:
        click.echo("it asks for:")
        for line in sorted(subject.capabilities):
            click.echo("  + " + _show(line))
    if not yes:
        if not sys.stdin.isatty():
            fail("not a terminal, so nothing was approved — review the above and rerun with --yes")
        if not click.confirm("approve?", default=False):
            fail("not approved")
    try:
        store.approve(subject)
    except ApprovalStoreError as exc:
        fail(str(exc))
    _audit_approval(audit_log, subject, store.path)
    click.echo(f"approved `{_show(subject.plugin_id)}` {_show(subject.version)} in {store.path}")


def _audit_approval(audit_log: str | None, subject, store_path) -> None:
    """The `approved` lifecycle record, as the manager writes it for approvals at load."""
    from promptline.enforcer.audit import AuditError, AuditLog, default_log_path
    path = audit_log or default_log_path()
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        log = AuditLog(path)
        try:
            log.lifecycle(subject.plugin_id, subject.version, "approved",
                          f"by `promptline plugin approve` in {store_path}; capabilities: "
                          + ", ".join(sorted(subject.capabilities)))
        finally:
            log.close()
    except (AuditError, OSError) as exc:
        fail(f"approved, but the audit record could not be written to {path}: {exc}")


# ---------------------------------------------------------------------------------------
# sign / verify


@plugin_group.command("sign")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--key", help="private key: a path or a key name from `promptline keys list`")
def sign_cmd(directory: str, key: str | None) -> None:
    """Sign the plugin tree in DIRECTORY; writes DIRECTORY/plugin.sig."""
    try:
        manifest = read_manifest(Path(directory) / MANIFEST_FILE)
    except PolicyError as exc:
        fail(f"{exc} (fix the manifest before signing)")
    try:
        signed = sign_plugin(directory, resolve_key(key))
    except SignatureError as exc:
        fail(str(exc))
    click.echo(f"signed `{_show(manifest.id)}` {_show(manifest.version)}: {len(signed.files)} files, "
               f"{signed.digest}, key {signed.key_id}")
    click.echo(f"public key: {signed.public_key}")


@plugin_group.command("verify")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--trusted-key", "keys", multiple=True, metavar="ed25519:...",
              help="trust this key (instead of the policy's trusted_keys)")
@_policy_option
def verify_cmd(directory: str, keys: tuple[str, ...], policies: tuple[str, ...]) -> None:
    """Check DIRECTORY's signature against the trusted keys; exit 1 if it does not hold."""
    trusted = list(keys) if keys else list(_settings_or_fail(policies).trusted_keys)
    try:
        verified = verify_plugin(directory, trusted)
        manifest = manifest_from_tree(verified)
    except (SignatureError, PolicyError) as exc:
        fail(_show(str(exc)))
    click.echo(f"ok: `{_show(manifest.id)}` {_show(manifest.version)} signed by trusted key {verified.key_id}, "
               f"{len(verified.files)} files, {verified.digest}")


# ---------------------------------------------------------------------------------------
# new


from ._scaffold import KINDS, SANDBOXES, render_scaffold  # noqa: E402

PLUGIN_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\Z")


@plugin_group.command("new")
@click.argument("plugin_id", metavar="ID")
@click.option("--dir", "parent", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="where to create the ID/ directory")
@click.option("--description", default="", help="one line for plugin.yaml")
@click.option("--type", "kind", type=click.Choice(KINDS), default="tool", show_default=True,
              help="what the plugin provides")
@click.option("--sandbox", type=click.Choice(SANDBOXES), default="process", show_default=True,
              help="where it runs (wasm plugins: start from examples/wasm-wordcount)")
def new_cmd(plugin_id: str, parent: Path, description: str, kind: str, sandbox: str) -> None:
    """Scaffold a working plugin of any type: plugin.yaml, code, a test and a README.

    \b
    Examples:
      promptline plugin new my-tools
      promptline plugin new my-model --type model
      promptline plugin new my-notes --type context --sandbox none
    """
    if not PLUGIN_ID.match(plugin_id):
        fail(f"plugin id `{_show(plugin_id)}` must be 1-64 of [a-z0-9-], not starting or ending with `-`")
    root = parent / plugin_id
    if root.exists():
        fail(f"`{root}` already exists — choose another ID or --dir")
    files = render_scaffold(plugin_id, description, kind=kind, sandbox=sandbox)
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    click.echo(f"created {root}/ with {', '.join(sorted(files))}")
    click.echo("next:")
    click.echo(f"  cd {root} && python -m pytest -q        # run its tests")
    click.echo(f"  promptline plugin sign {root} --key KEY   # after `promptline keys generate`")
    click.echo(f"  PROMPTLINE_PLUGIN_PATH={root} promptline plugin approve {plugin_id}")



