"""`promptline plugin install|publish|update|remove|search` (the registry; docs/registry.md).

The lead attaches these commands under `promptline plugin`; each one works on its own too.
Exit codes: 0 done (or nothing to do), 1 refused or failed (nothing was changed), 2 usage.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from promptline.loaders import (
    DEFAULT_INDEX,
    INDEX_ENV,
    Index,
    InstallPlan,
    InstallSet,
    LoaderError,
    Registry,
    decide_set_approval,
    default_plugins_dir,
    publish,
)
from promptline.policy import PolicyError

from ._common import console, fail
from .policy_cmd import DEFAULT_POLICY_ENV, _default_policies


def _show(text: Any) -> str:
    """Untrusted text (manifest strings, index fields, paths) made safe for the terminal."""
    from promptline.enforcer import escape_for_terminal
    return escape_for_terminal(text)


def _interactive() -> bool:
    """Approval prompts need a terminal on both ends (no TTY means no approval)."""
    return sys.stdin.isatty() and sys.stderr.isatty()


# ---------------------------------------------------------------------------------------
# Shared options


def _registry_options(fn):
    options = [
        click.option("--into", "--dir", "plugins_dir", type=click.Path(file_okay=False),
                     help="plugin directory to install into, update or remove from (default: the user plugin "
                          "directory, ~/.config/promptline/plugins on Linux; a $PROMPTLINE_PLUGIN_PATH entry "
                          "is searched, never installed into, unless named here)"),
        click.option("--policy", "policies", multiple=True, type=click.Path(),
                     help=f"policy file or dir, repeatable (default: ${DEFAULT_POLICY_ENV}, else the shipped "
                          "default.yaml); it decides trusted keys, require_signature and approval"),
        click.option("--approvals", type=click.Path(dir_okay=False),
                     help="approvals file (default: $PROMPTLINE_APPROVALS, else in the user config dir)"),
        click.option("--audit-log", "audit_log", type=click.Path(dir_okay=False),
                     help="audit log (default: $PROMPTLINE_AUDIT_LOG, else in the user state dir)"),
        click.option("--index", "index", metavar="URL|DIR",
                     help=f"registry index (default: ${INDEX_ENV}, else {DEFAULT_INDEX})"),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


_allow_unsigned = click.option(
    "--allow-unsigned", "allow_unsigned", is_flag=True,
    help="accept code no key in the policy's trusted_keys signed: such index entries are downloaded and unpacked "
         "without asking first, and --yes may approve them (without it they are shown and asked about at a "
         "terminal, and refused when piped)")


class _Ctx:
    """The registry and its audit log for one command; closes the log at the end."""

    def __init__(self, plugins_dir, policies, approvals, audit_log, index, allow_unsigned=False) -> None:
        from promptline.enforcer.audit import AuditLog, default_log_path
        path = audit_log or default_log_path()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.log = AuditLog(path)
        self.registry = Registry(plugins_dir or default_plugins_dir(),
                                 policy_files=list(policies) or _default_policies(),
                                 approvals=approvals, audit_log=self.log, index=index,
                                 allow_unsigned=allow_unsigned,
                                 confirm_unsigned=_confirm_unsigned if _interactive() else None)

    def __enter__(self) -> Registry:
        return self.registry

    def __exit__(self, *exc) -> None:
        try:
            self.log.close()
        except Exception:  # noqa: BLE001 - closing the log must not hide the command's outcome
            pass


def _errors(fn):
    """Turn the library's refusals into one `error:` line and exit code 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (LoaderError, PolicyError) as exc:
            for line in getattr(exc, "details", ()):
                click.echo(_show(line), err=True)
            fail(_show(str(exc)))
    return wrapper


# ---------------------------------------------------------------------------------------
# Showing a plan


VERDICT_STYLE = {"allow": "green", "deny": "red", "ask": "yellow"}


def _print_plan(plan: InstallPlan) -> None:
    from rich.markup import escape
    from rich.table import Table

    con = console(120)
    sig = f"signed by trusted key {plan.verified.key_id}" if plan.signed else \
        _show(plan.verified.note or "unsigned")
    head = f"plugin `{_show(plan.plugin_id)}` {_show(plan.version)}"
    if plan.previous is not None:
        head += f" (installed: {_show(plan.previous.version)})"
    con.print(escape(f"{head} from {_show(plan.source.describe())} — {sig}"))
    if plan.manifest.description:
        con.print(escape(f"  {_show(plan.manifest.description)}"))
    table = Table(title="what it asks for, and what the policy says once it is approved", title_justify="left")
    table.add_column("capability")
    table.add_column("checked as")
    table.add_column("verdict")
    table.add_column("because")
    for c in plan.checks:
        style = VERDICT_STYLE.get(c.verdict, "")
        table.add_row(escape(_show(c.capability)), escape(f"{c.action} {_show(c.resource)}"),
                      f"[{style}]{c.verdict}[/]", escape(_show(c.reason)))
    con.print(table)
    if plan.diff is not None and not plan.diff.empty:
        con.print(f"capabilities compared with {escape(_show(plan.previous.version if plan.previous else '?'))}:")
        for line in plan.diff.lines():
            con.print("  " + escape(_show(line)))
    if plan.approval_needed:
        why = "asks for more than before" if plan.diff is not None and plan.diff.grows else _show(plan.status.reason)
        con.print(escape(f"approval needed: {why}"))
    else:
        con.print(escape(f"no approval needed: {_show(plan.status.reason or plan.status.via or 'approved')}"))


def _print_set(plans: InstallSet) -> None:
    if len(plans.plans) > 1:
        deps = ", ".join(f"{_show(p.plugin_id)} {_show(p.version)}" for p in plans.plans[:-1])
        click.echo(f"`{_show(plans.root.plugin_id)}` brings its dependencies: {deps}")
    for plan in plans.plans:
        _print_plan(plan)


def _confirm_unsigned(unsigned: Any) -> bool:
    """Before an index entry no trusted key signed is downloaded: what it says it is, and a question."""
    for line in unsigned.lines():
        click.echo(_show(line), err=True)
    return click.confirm("download and unpack it to review what it asks for? (nothing is installed yet)",
                         default=False, err=True)


def _confirm(plans: InstallSet) -> bool:
    what = ", ".join(f"`{_show(p.plugin_id)}` {_show(p.version)}" for p in plans.plans)
    return click.confirm(f"approve {what} and install {'them' if len(plans.plans) > 1 else 'it'}?",
                         default=False, err=True)


def _approve_and_commit(plans: InstallSet, yes: bool) -> list[Any]:
    confirm = _confirm if _interactive() else None
    return plans.commit(approved=decide_set_approval(plans, yes=yes, confirm=confirm))


# ---------------------------------------------------------------------------------------
# Commands


@click.command("install")
@click.argument("source")
@click.option("--ref", help="git branch or tag (same as SOURCE#REF)")
@click.option("--yes", "-y", is_flag=True,
              help="approve without asking; refused for unsigned code from a git repository, archive or index "
                   "unless --allow-unsigned")
@click.option("--force", is_flag=True, help="reinstall over an installed plugin of the same id")
@_allow_unsigned
@_registry_options
@_errors
def install_cmd(source: str, ref: str | None, yes: bool, force: bool, plugins_dir, policies, approvals,
                audit_log, index, allow_unsigned: bool) -> None:
    """Install a plugin from a directory, a git repository or the index.

    \b
    SOURCE is one of:
      ./my-plugin                  a directory holding plugin.yaml
      ./my-plugin-0.1.0.tar.gz     an archive
      github:user/repo[#tag]       https://github.com/user/repo.git
      https://host/repo.git, ssh://..., file:///path/repo.git, git+URL
      database-tools[@1.2.0]       a plugin from the index (a version or a specifier)

    The plugin is staged, its checksum and signature verified against the policy's trusted
    keys, its capabilities shown with the policy's verdict on each, and it is installed only
    once approved (nothing is left behind otherwise). An index entry no trusted key signed
    is not even downloaded before you said yes to it (or passed --allow-unsigned).
    """
    with _Ctx(plugins_dir, policies, approvals, audit_log, index, allow_unsigned) as reg:
        with reg.prepare_install_set(source, ref=ref, force=force) as plans:
            _print_set(plans)
            done = _approve_and_commit(plans, yes)
    for rec in done:
        click.echo(f"installed `{_show(rec.id)}` {_show(rec.version)} in {_show(rec.path)}")
    if done:
        _note_search_path(done[0].path.parent)


def _note_search_path(directory) -> None:
    """Say so when the loader will not find what was just installed."""
    from promptline.loaders import plugin_search_path
    path = [str(p) for p in plugin_search_path()]
    if os.path.realpath(directory) not in {os.path.realpath(p) for p in path}:
        wanted = os.pathsep.join([*path, str(directory)])
        click.echo(f"note: `{_show(directory)}` is not on the plugin search path, so `promptline plugin list` "
                   f"and `tool call` will not find it — add it: export PROMPTLINE_PLUGIN_PATH={_show(wanted)}",
                   err=True)


@click.command("update")
@click.argument("plugin_id", metavar="ID")
@click.option("--to", "wanted", metavar="VERSION", help="a version or specifier (index), or a git ref")
@click.option("--from", "source", metavar="SOURCE", help="fetch from SOURCE instead of where it came from")
@click.option("--ref", help="git branch or tag")
@click.option("--force", is_flag=True, help="allow a downgrade, or reinstall the same version")
@click.option("--yes", "-y", is_flag=True, help="approve without asking, where the --yes rule allows it")
@_allow_unsigned
@_registry_options
@_errors
def update_cmd(plugin_id: str, wanted, source, ref, force: bool, yes: bool, plugins_dir, policies, approvals,
               audit_log, index, allow_unsigned: bool) -> None:
    """Update an installed plugin to its newest compatible version.

    Versions whose `requires` excludes this PromptLine are skipped; a downgrade needs --force;
    an update that asks for more capabilities shows the difference and asks again.
    """
    with _Ctx(plugins_dir, policies, approvals, audit_log, index, allow_unsigned) as reg:
        plans = reg.prepare_update_set(plugin_id, wanted=wanted, index=index, source=source, ref=ref, force=force)
        if plans is None:
            cur = reg.current(plugin_id)
            click.echo(f"`{_show(plugin_id)}` {_show(cur.version if cur else '?')} is up to date")
            return
        with plans:
            _print_set(plans)
            old = {p.plugin_id: p.previous.version if p.previous else None for p in plans.plans}
            done = _approve_and_commit(plans, yes)
    for rec in done:
        if old.get(rec.id):
            click.echo(f"updated `{_show(rec.id)}` {_show(old[rec.id])} -> {_show(rec.version)}")
        else:
            click.echo(f"installed `{_show(rec.id)}` {_show(rec.version)} in {_show(rec.path)}")


@click.command("remove")
@click.argument("plugin_id", metavar="ID")
@click.option("--keep-approval", is_flag=True, help="keep the approval (a reinstall of the same code will not ask)")
@click.option("--with-dependents", is_flag=True, help="also remove the installed plugins that need it")
@_registry_options
@_errors
def remove_cmd(plugin_id: str, keep_approval: bool, with_dependents: bool, plugins_dir, policies, approvals,
               audit_log, index) -> None:
    """Delete an installed plugin, forget its approval and write an audit record.

    A plugin that other installed plugins depend on is refused unless --with-dependents."""
    with _Ctx(plugins_dir, policies, approvals, audit_log, index) as reg:
        if with_dependents:
            gone = reg.remove_with_dependents(plugin_id, keep_approval=keep_approval)
        else:
            gone = [reg.remove(plugin_id, keep_approval=keep_approval)]
    for rec in gone:
        click.echo(f"removed `{_show(rec.id)}` {_show(rec.version)} from {_show(rec.path.parent)}")


@click.command("publish")
@click.argument("directory", default=".", type=click.Path(exists=True, file_okay=False))
@click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False),
              help="the index tree to write into (a directory; created if missing)")
@click.option("--key", help="private key: a path or a key name from `promptline keys list`")
@click.option("--unsigned", is_flag=True, help="publish without a signature (policies requiring signatures refuse it)")
@_errors
def publish_cmd(directory: str, index_dir: str, key: str | None, unsigned: bool) -> None:
    """Sign DIRECTORY (default: .) and add it to an index tree: archive, sha256, index.json.

    Serve the tree with any static web server (or share the directory); users install with
    `promptline plugin install ID --index URL`.
    """
    from .keys_cmd import resolve_key
    key_path = resolve_key(key) if key or not unsigned and not os.path.exists(os.path.join(directory, "plugin.sig")) \
        else None
    entry = publish(directory, index_dir, key=key_path, unsigned=unsigned)
    signer = f"signed by {entry.key_id}" if entry.key_id else "unsigned"
    click.echo(f"published `{_show(entry.id)}` {_show(entry.version)} ({signer}) to {_show(index_dir)}: "
               f"{entry.archive} sha256 {entry.sha256}")


@click.command("search")
@click.argument("query", default="")
@click.option("--index", "index", metavar="URL|DIR", help=f"registry index (default: ${INDEX_ENV}, else {DEFAULT_INDEX})")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_errors
def search_cmd(query: str, index: str | None, as_json: bool) -> None:
    """List the index's plugins whose id, name or description holds QUERY (all without one)."""
    from promptline.loaders import current_version, default_index, requires_ok

    idx = Index.open(index or default_index())
    found = idx.search(query)
    current = current_version()
    if as_json:
        click.echo(json.dumps([dict(e.to_json(), versions=[v.version for v in idx.versions(e.id)],
                                    compatible=requires_ok(e.requires, current)) for e in found], indent=2))
        return
    if not found:
        click.echo(f"no plugin matches `{_show(query)}` in {_show(idx.location)}")
        return
    from rich.markup import escape
    from rich.table import Table
    table = Table()
    for col in ("id", "latest", "versions", "signed by", "requires", "description"):
        table.add_column(col)
    for e in found:
        versions = ", ".join(v.version for v in idx.versions(e.id))
        req = e.requires or "any"
        if not requires_ok(e.requires, current):
            req += f" (not {current})"
        table.add_row(*(escape(_show(x)) for x in (e.id, e.version, versions, e.key_id or "unsigned", req,
                                                     e.description)))
    console(120).print(table)




# ---------------------------------------------------------------------------------------
# Reviews and the marketplace site


@click.command("review")
@click.argument("plugin_id", metavar="ID")
@click.option("--rating", type=click.IntRange(1, 5), required=True, help="1 to 5 stars")
@click.option("--text", default="", help="what you found")
@click.option("--author", help="your name as shown (default: the key's name)")
@click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False),
              help="the index directory to write the review into")
@click.option("--key", help="your private key: a path or a key name from `promptline keys list`")
@_errors
def review_cmd(plugin_id: str, rating: int, text: str, author: str | None, index_dir: str, key: str | None) -> None:
    """Sign a review of ID with your key and add it to an index directory."""
    from promptline.loaders import write_review

    from .keys_cmd import resolve_key
    key_path = resolve_key(key)
    name = author or key_path.stem
    review = write_review(index_dir, plugin_id, key=key_path, author=name, rating=rating, text=text)
    click.echo(f"reviewed `{_show(plugin_id)}` {rating}/5 as {_show(name)} (key {review.key_id}) in "
               f"{_show(index_dir)}")


@click.group("registry")
def registry_group() -> None:
    """Build and serve the plugin marketplace site from an index."""


def _site_options(fn):
    options = [
        click.option("--policy", "policies", multiple=True, type=click.Path(),
                     help=f"policy whose verdicts and trusted keys the pages show (default: ${DEFAULT_POLICY_ENV}, "
                          "else the shipped default.yaml)"),
        click.option("--promptline-version", "version", metavar="VERSION",
                     help="the PromptLine version to show compatibility with (default: this one)"),
        click.option("--latest", metavar="VERSION", help="the latest PromptLine version (default: the same)"),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


@registry_group.command("site")
@click.argument("index")
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False), help="output directory")
@click.option("--index-url", metavar="URL", help="the index address shown in install commands")
@click.option("--audit-log", "audit_log", type=click.Path(dir_okay=False, exists=True),
              help="add each plugin's usage on this host, computed from this audit log")
@_site_options
@_errors
def site_cmd(index: str, out: str, index_url: str | None, audit_log: str | None, policies, version, latest) -> None:
    """Build a static site (search, plugin pages, sources, reviews) from INDEX into DIR."""
    from promptline.loaders import build_site
    done = build_site(index, out, policy_files=list(policies) or _default_policies(), version=version,
                      latest=latest, index_url=index_url, audit_log=audit_log)
    click.echo(f"built the site for {_show(index)} in {_show(done)}")


@registry_group.command("serve")
@click.argument("index")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@_site_options
@_errors
def serve_cmd(index: str, port: int, policies, version, latest) -> None:
    """Build the site for INDEX and serve it (and a directory index under /index/) on 127.0.0.1."""
    from promptline.loaders import serve_site
    server, url, thread = serve_site(index, port=port, policy_files=list(policies) or _default_policies(),
                                     version=version, latest=latest)
    click.echo(f"serving {_show(index)} at {url} (index at {url}index/) — Ctrl-C stops", err=False)
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


__all__ = ["install_cmd", "publish_cmd", "update_cmd", "remove_cmd", "search_cmd", "review_cmd", "registry_group"]
