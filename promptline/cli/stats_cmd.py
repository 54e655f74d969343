"""`promptline plugin stats ID`: usage statistics for a plugin's developer, computed locally
from the audit log (nothing leaves the machine)."""

from __future__ import annotations

import json

import click

from ._common import console, fail


@click.command("stats")
@click.argument("plugin_id", metavar="ID")
@click.option("--log", "log_path", type=click.Path(dir_okay=False),
              help="audit log (default: $PROMPTLINE_AUDIT_LOG, else in the user state dir)")
@click.option("--since", metavar="TIME", help="ISO 8601 (UTC if no zone) or an age: 30m, 2h, 7d")
@click.option("--until", metavar="TIME", help="same forms as --since")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def stats_cmd(plugin_id: str, log_path: str | None, since: str | None, until: str | None, as_json: bool) -> None:
    """Calls per tool, refusals by rule and latency of one plugin, from the local audit log."""
    from promptline.enforcer import escape_for_terminal as show
    from promptline.enforcer.audit import AuditError, default_log_path, parse_when, read_records
    bounds = {}
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            try:
                bounds[name] = parse_when(value)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint=f"--{name}") from None
    path = log_path or str(default_log_path())
    from promptline.loaders import plugin_stats
    try:
        result = plugin_stats(read_records(path), plugin_id, **bounds)
    except AuditError as exc:
        fail(show(str(exc)))
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    from rich.markup import escape
    from rich.table import Table
    con = console(120)
    window = f"{bounds.get('since') or result['first'] or '-'} .. {bounds.get('until') or result['last'] or '-'}"
    con.print(escape(f"plugin `{show(plugin_id)}` in {show(path)}, {window}"))
    table = Table(title="tool calls", title_justify="left")
    for col in ("tool", "calls", "refused", "errors", "p50 ms", "p99 ms"):
        table.add_column(col)
    for tool, t in result["tools"].items():
        table.add_row(escape(show(tool)), str(t["calls"]), str(t["refused"]), str(t["errors"]),
                      _ms(t["p50_ms"]), _ms(t["p99_ms"]))
    con.print(table)
    if not result["latency_recorded"]:
        con.print("latency and tool errors: not recorded by this audit log (schema v1 records decisions, "
                  "not call outcomes); allowed calls appear only while `audit_allows` is on")
    rules = Table(title="refusals by rule", title_justify="left")
    rules.add_column("rule")
    rules.add_column("count")
    for rule, n in result["refusals_by_rule"].items():
        rules.add_row(escape(show(rule)), str(n))
    con.print(rules)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


__all__ = ["stats_cmd"]
