"""`promptline --help` lists every command without importing the engine, and the one-line
help it shows is each command's own."""

import subprocess
import sys

import click
import pytest

from promptline.cli import COMMANDS, _load_command, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_listed_help_is_the_commands_own(name):
    cmd = _load_command(name)
    assert cmd is not None and cmd.name == name
    assert COMMANDS[name][2] == cmd.get_short_help_str(limit=200)


def test_every_command_is_reachable_by_name():
    ctx = click.Context(main)
    for name in COMMANDS:
        assert main.get_command(ctx, name) is not None
    assert main.get_command(ctx, "no-such-command") is None


def test_top_level_help_imports_no_engine():
    code = ("import sys, runpy\n"
            "sys.argv = ['promptline', '--help']\n"
            "try:\n    runpy.run_module('promptline', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "heavy = [m for m in ('pydantic', 'promptline.policy._models', 'cryptography', 'watchdog',"
            " 'jsonschema', 'wasmtime') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Commands:" in out.stdout and "plugin" in out.stdout, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout[-500:]
