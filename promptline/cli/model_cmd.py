"""`promptline model list`: the loaded model plugins' providers, asked `is_available()` now."""

from __future__ import annotations

import json

import click

from ._common import fail
from ._host import build_manager, host_options, report_load


@click.group("model")
def model_group() -> None:
    """Model providers offered by plugins.

    \b
    Examples:
      promptline model list --plugins examples
    """


@model_group.command("list")
@host_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(as_json, **kw) -> None:
    """List every model provider of the plugins that load, available or not (and why)."""
    from promptline.policy import PolicyError
    pm = build_manager(**kw)
    try:
        report = pm.load_all()
    except PolicyError as exc:
        fail(str(exc))
    report_load(report)
    with pm:
        models = pm.list_models()
    if as_json:
        click.echo(json.dumps([{"plugin": m.plugin, "name": m.name, "available": m.available,
                                "reason": m.reason, "sandbox": m.sandbox} for m in models], indent=2))
        return
    for m in models:
        state = "available" if m.available else f"unavailable: {m.reason}"
        click.echo(f"{m.plugin:24} {m.name:24} {m.sandbox:8} {state}")
    if not models:
        click.echo("no model plugins loaded")
