"""The `promptline` command line. Each command group lives in its own module."""

from __future__ import annotations

import importlib
import re

import click

# name -> (module, attribute, one-line help) of each command; a command's module is imported
# only when that command runs, so `promptline --help` does not load the engine.
# tests/loaders/test_loader_cli.py checks each one-line help against the command's own.
COMMANDS = {
    "policy": ("promptline.cli.policy_cmd", "policy_group", "Validate, explain and test policy files."),
    "audit": ("promptline.cli.audit_cmd", "audit_group", "Read and check the audit log (hash-chained JSON Lines)."),
    "keys": ("promptline.cli.keys_cmd", "keys_group", "Publisher keys for signing plugins (ed25519)."),
    "plugin": ("promptline.cli.plugin_cmd", "plugin_group", "Find, inspect, approve, sign and scaffold plugins."),
    "tool": ("promptline.cli.tool_cmd", "tool_group", "List and call plugin tools under policy."),
    "model": ("promptline.cli.model_cmd", "model_group", "Model providers offered by plugins."),
    "grants": ("promptline.cli.grants_cmd", "grants_group",
               'Remembered prompt answers ("always" / "never"): list and revoke them.'),
    "registry": ("promptline.cli.registry_cmd", "registry_group",
                 "Build and serve the plugin marketplace site from an index."),
    "run": ("promptline.cli.run_cmd", "run_command",
            "Load every plugin under policy and serve tool calls on stdin/stdout."),
    "serve": ("promptline.cli.serve_cmd", "serve_command",
              "Serve decisions on a Unix socket: check, explain, load, call_tool, audit."),
}


def _load_command(name: str) -> click.Command | None:
    module_name, attr, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:   # a partial checkout still has a working CLI
        if exc.name != module_name:
            raise
        return None
    cmd = getattr(module, attr)
    if name == "plugin":   # `plugin install|publish|update|remove|search|learn` live in their own modules
        from . import learn_cmd, registry_cmd, stats_cmd
        for extra in (registry_cmd.install_cmd, registry_cmd.publish_cmd, registry_cmd.update_cmd,
                      registry_cmd.remove_cmd, registry_cmd.search_cmd, registry_cmd.review_cmd,
                      stats_cmd.stats_cmd, learn_cmd.learn_cmd):
            cmd.add_command(extra)
    return cmd


_RAW_ARG = re.compile("[\x00-\x08\x0b-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c]")
"""What no argument may hold: NUL (no OS can pass it), control and bidi characters (echoed
in an error line, they would rewrite or reorder the terminal)."""


class LazyGroup(click.Group):
    """A group whose subcommands are imported when used (click's documented lazy pattern);
    the top-level help lists them from :data:`COMMANDS` without importing them. Every
    argument of every command is checked here first (:data:`_RAW_ARG`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        for i, arg in enumerate(args):
            bad = _RAW_ARG.search(arg) if isinstance(arg, str) else None
            if bad is not None:
                from promptline.enforcer import escape_for_terminal
                raise click.UsageError(f"argument {i + 1} (`{escape_for_terminal(arg[:80])}`) holds the control "
                                       f"or bidi character {escape_for_terminal(bad.group())}: pass it without "
                                       "control characters", ctx)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            cmd = _load_command(cmd_name)
            if cmd is not None:
                self.add_command(cmd, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="promptline-plugins")
def main() -> None:
    """PromptLine plugins: load third-party plugins under a declarative policy.

    \b
    Start here:
      promptline plugin list                            plugins found, signed?, approved?
      promptline plugin approve ID                      approve a plugin's declared capabilities
      promptline tool call notes.search '{"query": "x"}' call a tool under policy
      promptline model list                             model providers, available or not
      promptline run [--mcp] [--watch]                  serve the tools (JSON lines or MCP)
      promptline policy explain --plugin P --action fs.read --path ~/.ssh/id_rsa
      promptline audit show --decision deny             what was refused, and why
      promptline audit verify                           check the audit log's hash chain
      promptline serve --socket PATH                    decisions for a core in any language

    \b
    Environment: PROMPTLINE_POLICY (policy files, `:`-separated), PROMPTLINE_PLUGIN_PATH,
    PROMPTLINE_AUDIT_LOG, PROMPTLINE_APPROVALS, PROMPTLINE_GRANTS, PROMPTLINE_CONFIG,
    PROMPTLINE_DATA_DIR (plugins' own data directories).
    """

