"""`promptline plugin learn`: propose the smallest manifest for what a plugin really does."""

from __future__ import annotations

import click

from ._common import fail
from .policy_cmd import _default_policies


@click.command("learn")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--call", "calls", nargs=2, multiple=True, metavar="TOOL JSON",
              help="A tool call to make while learning (repeatable).")
@click.option("--policy", "policies", multiple=True, type=click.Path(),
              help="Policy files whose explicit denies still apply (default: the shipped default).")
def learn_cmd(directory, calls, policies) -> None:
    """Run DIRECTORY's tools in audit mode and print the smallest `capabilities:` block
    that would have allowed what they did, and how the manifest's current one compares
    (already covered? what is missing? which entries went unused?).

    \b
    Example:
      promptline plugin learn ./my-plugin --call search '{"query": "todo"}'

    The plugin's code runs in this process, with every would-be refusal allowed and logged:
    learn only plugins you trust (your own). Refusals by explicit deny rules (e.g. ~/.ssh)
    are not lifted; they are listed so you can see what the policy will never grant.
    """
    from promptline.loaders import LoaderError, learn, parse_calls
    from promptline.policy import PolicyError
    try:
        learned = learn(directory, parse_calls(calls), policy_files=list(policies) or _default_policies())
    except (LoaderError, PolicyError) as exc:
        fail(str(exc))
    for tool, ok, content in learned.results:
        click.echo(f"# {tool}: {'ok' if ok else 'failed'}: {content[:120]!s}".replace("\n", " "))
    for action, resource, rule in learned.refused:
        click.echo(f"# refused by policy, not learnable: {action} {resource} ({rule})")
    click.echo(learned.to_yaml().rstrip() if learned.capabilities else "capabilities: {}")
    if learned.covered:
        click.echo("# the manifest's current capabilities already cover all of this")
    else:
        for what in learned.missing:
            click.echo(f"# not covered by the current manifest: {what}")
    for entry in learned.unused:
        click.echo(f"# unused in the current manifest: {entry}")
