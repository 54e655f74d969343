"""Helpers shared by the CLI command modules: error reporting and exit codes."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

# Stable exit codes of every `promptline` command.
EXIT_OK = 0
EXIT_FAILED = 1        # a check failed: policy invalid, test failed, audit log broken, denied
EXIT_USAGE = 2         # bad arguments (click's own code)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print one clear error line to stderr and exit. A message holding characters a
    terminal would act on (controls, bidi, lone surrogates: from a manifest, a file name,
    an index) is shown escaped; one its caller escaped already is shown as it is."""
    from promptline.enforcer import escape_for_terminal
    message = str(message)
    plain = message.replace("\\", "")
    if escape_for_terminal(plain, limit=0) != plain:
        message = escape_for_terminal(message, limit=0)
    click.echo(f"error: {message[:MAX_ERROR_CHARS]}", err=True)
    sys.exit(code)


MAX_ERROR_CHARS = 4000   # an error line quoting a hostile input stays readable


PIPE_WIDTH = 160   # table width when stdout is not a terminal (rich would guess 80 and squeeze columns)


def console(min_width: int = 0):
    """A rich Console for tables: no emoji codes or markup guessing in user data; a fixed
    width when piped; at least ``min_width`` columns."""
    from rich.console import Console
    width = None if sys.stdout.isatty() else PIPE_WIDTH
    con = Console(emoji=False, highlight=False, width=width)
    if min_width and con.width < min_width:
        con = Console(emoji=False, highlight=False, width=min_width)
    return con
