"""Usage statistics for a plugin's developer, computed locally from the audit log (nothing
leaves the machine): ``promptline plugin stats`` and the site's "usage on this host"."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any


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


__all__ = ["plugin_stats"]
