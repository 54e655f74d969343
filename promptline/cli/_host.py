"""Options shared by the commands that load plugins (`run`, `tool`), and the manager they build."""

from __future__ import annotations

import os
import sys

import click

from .policy_cmd import DEFAULT_POLICY_ENV, _default_policies


def host_options(fn):
    """Add --policy/--plugins/--config/--audit-log/--approvals/--grants/--yes to a command."""
    options = [
        click.option("--policy", "policies", multiple=True, type=click.Path(),
                     help=f"Policy file or dir, repeatable (default ${DEFAULT_POLICY_ENV} or the shipped default.yaml)."),
        click.option("--plugins", "plugin_dirs", multiple=True, type=click.Path(),
                     help="Plugin directory to search, repeatable (default: the user, data and system plugin dirs)."),
        click.option("--config", "config_path", type=click.Path(), help="Config file with a `plugins:` list."),
        click.option("--audit-log", "audit_log", type=click.Path(),
                     help="Audit log file (default $PROMPTLINE_AUDIT_LOG or the user state dir)."),
        click.option("--approvals", type=click.Path(), help="Approvals file (default in the user config dir)."),
        click.option("--grants", type=click.Path(), help="Remembered prompt answers (default in the user config dir)."),
        click.option("--yes", "approve_all", is_flag=True,
                     help="Approve the declared capabilities of every plugin found, without asking."),
        click.option("--backend", type=click.Choice(["auto", "cel-python", "cel-expr-python"]), default="auto",
                     help="CEL backend."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def build_manager(policies, plugin_dirs, config_path, audit_log, approvals, grants, approve_all, backend,
                  *, interactive: bool | None = None):
    """A PluginManager configured from the shared options (not yet loaded)."""
    from promptline.enforcer import DenyPrompter, GrantStore, TerminalPrompter
    from promptline.enforcer.audit import AuditLog, default_log_path
    from promptline.loaders import ApprovalStore, LoaderError, PluginManager, config_from_file

    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stderr.isatty()
    log_path = audit_log or default_log_path()
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    grants_path = grants or str(GrantStore().path)
    try:
        bundle = config_from_file(config_path) if config_path is not False else None
    except LoaderError as exc:
        from ._common import fail
        fail(str(exc))
    return PluginManager(
        policy_files=list(policies) or _default_policies(),
        search_path=list(plugin_dirs) or None,
        config_path=config_path if config_path else (False if plugin_dirs else None),
        entry_points=not plugin_dirs,
        audit_log=AuditLog(log_path, sinks=_shipping(config_path, log_path)),
        prompter=TerminalPrompter() if interactive else DenyPrompter(),
        approvals=ApprovalStore(approvals) if approvals else None,
        approve_all=approve_all,
        approve_callback=_terminal_approval if interactive and not approve_all else None,
        grants=grants_path,
        backend=None if backend == "auto" else backend,
        bundle=bundle,
        data_dir=default_data_dir(),
    )


def _shipping(config_path, log_path) -> list:
    """Audit shipping sinks from the config file's ``audit: {ship: [URL, ...]}``."""
    from pathlib import Path

    from promptline.enforcer.audit import shipping_sinks
    from promptline.loaders import default_config_path
    from promptline.policy import PolicyError, load_yaml, read_text

    from ._common import fail
    if config_path is False:
        return []
    cfg = Path(config_path).expanduser() if config_path else default_config_path()
    if not cfg.exists():
        return []
    try:
        data = load_yaml(read_text(cfg), str(cfg))
    except PolicyError as exc:
        fail(str(exc))
    audit = data.data.get("audit") if isinstance(data.data, dict) else None
    if audit is None:
        return []
    ship = audit.get("ship", []) if isinstance(audit, dict) else None
    line = data.where(("audit", "ship") if isinstance(audit, dict) and "ship" in audit else ("audit",))[0]
    if not isinstance(ship, list) or not all(isinstance(u, str) for u in ship):
        fail(f"{cfg}:{line}: `audit.ship` must be a list of collector URLs — "
             "write e.g. `ship: [syslog+tcp://127.0.0.1:514, http://127.0.0.1:4318/v1/logs]`")
    try:
        return shipping_sinks(ship, log_path)
    except (ValueError, ImportError) as exc:
        fail(f"{cfg}:{line}: {exc}")


def default_data_dir() -> str:
    """Where each plugin's own data directory lives (``PluginConfig.data_dir``, one per id)."""
    import platformdirs
    return os.environ.get("PROMPTLINE_DATA_DIR") or os.path.join(platformdirs.user_data_dir("promptline"), "plugin-data")


def _terminal_approval(status) -> bool:
    from promptline.enforcer import escape_for_terminal
    click.echo(escape_for_terminal(status.explain(), limit=4000).replace("\\n", "\n"), err=True)
    return click.confirm("approve these capabilities?", default=False, err=True)


def report_load(report) -> None:
    from promptline.enforcer import escape_for_terminal  # manifests say what they like
    for _pid, why in report.refused:
        click.echo(f"not loaded: {escape_for_terminal(why)}", err=True)
    for problem in report.problems:
        click.echo(f"problem: {escape_for_terminal(str(problem))}", err=True)
