"""The `promptline` command line. Each command group lives in its own module."""

from __future__ import annotations

import importlib

import click

# (module, attribute) of each command group; a group whose module is missing is skipped so
# a partial checkout still has a working CLI.
_GROUPS = (
    ("promptline.cli.policy_cmd", "policy_group"),
    ("promptline.cli.audit_cmd", "audit_group"),
    ("promptline.cli.keys_cmd", "keys_group"),
    ("promptline.cli.plugin_cmd", "plugin_group"),
    ("promptline.cli.tool_cmd", "tool_group"),
    ("promptline.cli.grants_cmd", "grants_group"),
    ("promptline.cli.run_cmd", "run_command"),
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="promptline-plugins")
def main() -> None:
    """PromptLine plugins: load third-party plugins under a declarative policy.

    \b
    Start here:
      promptline plugin list                            plugins found, signed?, approved?
      promptline plugin approve ID                      approve a plugin's declared capabilities
      promptline tool call notes.search '{"query": "x"}' call a tool under policy
      promptline run [--mcp] [--watch]                  serve the tools (JSON lines or MCP)
      promptline policy explain --plugin P --action fs.read --path ~/.ssh/id_rsa
      promptline audit show --decision deny             what was refused, and why
      promptline audit verify                           check the audit log's hash chain

    \b
    Environment: PROMPTLINE_POLICY (policy files, `:`-separated), PROMPTLINE_PLUGIN_PATH,
    PROMPTLINE_AUDIT_LOG, PROMPTLINE_APPROVALS, PROMPTLINE_GRANTS, PROMPTLINE_CONFIG.
    """


for _mod, _attr in _GROUPS:
    try:
        _module = importlib.import_module(_mod)
    except ModuleNotFoundError as exc:
        if exc.name != _mod:
            raise
        continue
    main.add_command(getattr(_module, _attr))

# `promptline plugin install|publish|update|remove|search` live in the registry module
try:
    from . import registry_cmd as _registry
except ModuleNotFoundError as exc:  # pragma: no cover - partial checkout
    if exc.name != "promptline.cli.registry_cmd":
        raise
else:
    _plugin = main.commands.get("plugin")
    if _plugin is not None:
        for _cmd in (_registry.install_cmd, _registry.publish_cmd, _registry.update_cmd,
                     _registry.remove_cmd, _registry.search_cmd):
            _plugin.add_command(_cmd)
        from .learn_cmd import learn_cmd as _learn
        _plugin.add_command(_learn)
