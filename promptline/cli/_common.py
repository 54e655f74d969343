"""Helpers shared by the CLI command modules: error reporting and exit codes."""

from __future__ import annotations

import sys

import click

# Stable exit codes of every `promptline` command.
EXIT_OK = 0
EXIT_FAILED = 1        # a check failed: policy invalid, test failed, audit log broken, denied
EXIT_USAGE = 2         # bad arguments (click's own code)


def fail(message: str, code: int = EXIT_FAILED) -> "NoReturn":  # type: ignore[name-defined]
    """Print one clear error line to stderr and exit."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
