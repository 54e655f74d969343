"""`promptline plugin stats ID`: usage statistics for a plugin's developer, computed locally
from the audit log (nothing leaves the machine)."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import click

from ._common import console, fail


def plugin_stats(records: Any, plugin_id: str, *, since: str | None = None,
                 until: str | None = None) -> dict[str, Any]:
    """Calls per tool, refusals by rule and latency where the records carry it.

    Counted from ``decision`` records of ``plugin_id``: ``tool.call`` records are calls (an
    allow is logged only while the policy's ``audit_allows`` is on), a deny or ask of any
    action counts against its deciding rule. Latency percentiles come from a record's
    ``duration_ms`` when present; the audit log schema v1 does not record it, nor tool
    errors, so those are reported as not recorded."""
    from promptline.enforcer.audit import select
    calls: Counter[str] = Counter()
    refused_calls: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    durations: dict[str, list[float]] = {}
    first = last = None
    for r in select(records, kind="decision", since=since, until=until):
        p = r.get("plugin")
        if not isinstance(p, dict) or p.get("id") != plugin_id:
            continue
        first = first or r.get("time")
        last = r.get("time")
        verdict = r.get("decision")
        action = str(r.get("action", ""))
        actions[f"{action} {verdict}"] += 1
        if action == "tool.call":
            tool = str(r.get("resource", ""))
            calls[tool] += 1
            if verdict != "allow":
                refused_calls[tool] += 1
            if r.get("error"):
                errors[tool] += 1
            ms = r.get("duration_ms")
            if isinstance(ms, (int, float)) and not isinstance(ms, bool) and math.isfinite(ms):
                durations.setdefault(tool, []).append(float(ms))
        if verdict in ("deny", "ask") or r.get("would_deny"):
            rules[str(r.get("rule") or r.get("decided_by") or "default")] += 1
    tools = {}
    for tool in sorted(calls):
        d = sorted(durations.get(tool, []))
        tools[tool] = {"calls": calls[tool], "refused": refused_calls[tool], "errors": errors[tool],
                       "p50_ms": _percentile(d, 50), "p99_ms": _percentile(d, 99)}
    return {"plugin": plugin_id, "since": since, "until": until, "first": first, "last": last,
            "tools": tools, "refusals_by_rule": dict(rules.most_common()), "decisions": dict(sorted(actions.items())),
            "latency_recorded": any(durations.values())}


def _percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of sorted ``values`` (None when empty)."""
    if not values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(values)))
    return values[rank - 1]


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


__all__ = ["stats_cmd", "plugin_stats"]
