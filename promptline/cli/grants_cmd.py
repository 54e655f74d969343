"""`promptline grants`: list and revoke remembered prompt answers (the user policy layer)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from promptline.enforcer import GrantError, GrantStore, escape_for_terminal

from ._common import console


def _grants_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--grants", "grants_path", metavar="PATH", type=click.Path(dir_okay=False),
        help="grants file (default: $PROMPTLINE_GRANTS, else grants.yaml in the user "
             "config dir)")(fn)


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


@click.group("grants")
def grants_group() -> None:
    """Remembered prompt answers ("always" / "never"): list and revoke them.

    \b
    They are ordinary rules in the user policy layer; revoking one makes the next
    matching request ask again.
    """


@grants_group.command("list")
@_grants_option
@click.option("--json", "as_json", is_flag=True, help="print a JSON array instead of a table")
def list_cmd(grants_path: str | None, as_json: bool) -> None:
    """Show the remembered answers."""
    store = GrantStore(grants_path)
    try:
        grants = store.list()
    except GrantError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps([g.to_dict() for g in grants], indent=2))
        return
    if not grants:
        click.echo(f"no remembered answers in {escape_for_terminal(store.path)}")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"grants in {escape_for_terminal(store.path)}", title_justify="left")
    for col in ("id", "effect", "plugin", "action", "resource", "granted"):
        table.add_column(col, overflow="fold", no_wrap=col in ("id", "granted"))
    for g in grants:
        # Text(), not markup: a resource may contain `[bold]`; escaped: it may contain
        # control or bidi characters
        table.add_row(*(Text(escape_for_terminal(v)) for v in
                        (g.id, g.effect, g.plugin, g.action, g.resource, g.granted_at)))
    console().print(table)


@grants_group.command("revoke")
@_grants_option
@click.argument("grant_id", metavar="ID", required=False)
@click.option("--all", "revoke_all", is_flag=True, help="revoke every remembered answer")
@click.option("--plugin", metavar="P", help="with --all: only this plugin's answers")
def revoke_cmd(grants_path: str | None, grant_id: str | None, revoke_all: bool,
               plugin: str | None) -> None:
    """Forget one remembered answer (ID from `grants list`), or all of them with --all."""
    if bool(grant_id) == revoke_all:
        raise click.UsageError("give one grant ID or --all")
    if plugin and not revoke_all:
        raise click.UsageError("--plugin only goes with --all")
    store = GrantStore(grants_path)
    try:
        if revoke_all:
            removed = store.revoke_all(plugin=plugin)
            scope = f" of plugin `{escape_for_terminal(plugin)}`" if plugin else ""
            click.echo(f"revoked {len(removed)} grant{'s' if len(removed) != 1 else ''}{scope}")
        else:
            assert grant_id is not None
            store.revoke(grant_id)
            click.echo(f"revoked {escape_for_terminal(grant_id)}")
    except GrantError as exc:
        _fail(exc)
