"""`promptline tool list|call`: the loaded plugins' tools, called under policy."""

from __future__ import annotations

import json

import click

from ._common import EXIT_FAILED, fail
from ._host import build_manager, host_options, report_load


@click.group("tool")
def tool_group() -> None:
    """List and call plugin tools under policy.

    \b
    Examples:
      promptline tool list --plugins examples
      promptline tool call notes.search '{"query": "milk"}' --plugins examples
    """


def _loaded(kw, only=None):
    from promptline.policy import PolicyError
    pm = build_manager(**kw)
    try:
        report = pm.load_all(only=only)
    except PolicyError as exc:
        fail(str(exc))
    report_load(report)
    return pm


@tool_group.command("list")
@host_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(as_json, **kw) -> None:
    """List the tools of every plugin that loads under the policy."""
    with _loaded(kw) as pm:
        tools = pm.list_tools()
        if as_json:
            click.echo(json.dumps([dict(spec.to_mcp(), name=name) for name, spec in tools], indent=2))
            return
        for name, spec in tools:
            click.echo(f"{name:30} {spec.description}")
        if not tools:
            click.echo("no tools loaded")


@tool_group.command("call")
@click.argument("name")
@click.argument("arguments", required=False, default="{}")
@host_options
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
def call_cmd(name, arguments, as_json, **kw) -> None:
    """Call tool NAME (`plugin.tool`) with ARGUMENTS (a JSON object); exit 1 if it fails.

    Only the tool's own plugin is loaded (and, on a terminal, asked about); `--yes` approves
    that plugin alone."""
    try:
        args = json.loads(arguments)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="ARGUMENTS") from None
    except RecursionError:
        raise click.BadParameter("nested too deeply: pass a flatter JSON object",
                                 param_hint="ARGUMENTS") from None
    plugin_id = name.partition(".")[0]
    with _loaded(kw, only=[plugin_id]) as pm:   # starts (and asks about) this plugin only
        if plugin_id not in pm.plugins:
            from promptline.enforcer import escape_for_terminal
            click.echo(f"error: no loaded plugin `{escape_for_terminal(plugin_id[:80])}` — see "
                       "`promptline plugin list`", err=True)
            raise SystemExit(EXIT_FAILED)
        result = pm.call_tool(name, args)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    elif result.ok:
        click.echo(result.content)
    else:
        click.echo(f"error: {result.content}", err=True)
    if not result.ok:
        raise SystemExit(EXIT_FAILED)
