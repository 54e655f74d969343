"""`promptline serve --socket PATH`: the decision service for cores in any language."""

from __future__ import annotations

import signal
import threading

import click

from ._common import fail
from ._host import build_manager, host_options, report_load


@click.command("serve")
@click.option("--socket", "socket_path", required=True, type=click.Path(dir_okay=False),
              help="Unix socket to listen on (created 0600; only your uid may connect).")
@click.option("--watch/--no-watch", default=True, show_default=True,
              help="Reload policies and plugins when their files change (like `run --watch`).")
@click.option("--allow-uid", "allow_uids", multiple=True, type=int,
              help="Another uid allowed to connect (repeatable; default only the owner).")
@host_options
def serve_command(socket_path, watch, allow_uids, **kw) -> None:
    """Serve decisions on a Unix socket: check, explain, load, call_tool, audit.

    \b
    One JSON request per line, one response per line (docs/service.md):
      {"v": 1, "id": 1, "method": "check", "params": {"plugin": "notes",
       "request": {"action": "fs.read", "path": "/etc/passwd"}}}
    """
    from promptline.loaders import DecisionService
    from promptline.policy import PolicyError

    pm = build_manager(**kw, interactive=False)
    try:
        report = pm.load_all()
    except PolicyError as exc:
        fail(str(exc))
    report_load(report)
    service = DecisionService(pm, socket_path, allow_uids=set(allow_uids) | {_euid()})
    try:
        service.bind()
    except OSError as exc:
        fail(str(exc))
    watcher = None
    if watch:
        from promptline.loaders import Watcher
        watcher = Watcher(pm)
        watcher.start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    service.start()
    click.echo(f"serving decisions on {service.path} (policy version {pm.policy_set.version})", err=True)
    try:
        done.wait()
    finally:
        service.stop()
        if watcher is not None:
            watcher.stop()
        pm.shutdown()


def _euid() -> int:
    import os
    return os.geteuid()
