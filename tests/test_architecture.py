"""The dependency direction `loaders -> enforcer -> policy` (DESIGN.md §1) and the public
surface: each package's `__all__` names what it exports, and importing has no side effects."""

import ast
import importlib
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORBIDDEN = {"policy": ("enforcer", "loaders", "promptline"), "enforcer": ("loaders", "promptline"),
             "loaders": ("promptline",)}


def imports_of(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_flow_one_way(package):
    bad = []
    for dirpath, _, files in os.walk(os.path.join(ROOT, package)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                for module, line in imports_of(path):
                    if module.split(".")[0] in FORBIDDEN[package]:
                        bad.append(f"{os.path.relpath(path, ROOT)}:{line} imports {module}")
    assert not bad, bad


@pytest.mark.parametrize("package", ["policy", "enforcer", "enforcer.audit", "loaders", "promptline", "policy._cel"])
def test_all_names_exist(package):
    module = importlib.import_module(package)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing and len(set(module.__all__)) == len(module.__all__)


def test_importing_installs_nothing():
    code = ("import sys, os; before = os.environ.__class__\n"
            "import promptline, policy, enforcer, loaders\n"
            "from enforcer import _hook\n"
            "assert os.environ.__class__ is before, 'environ replaced at import'\n"
            "assert _hook.BOX[0] is None, 'hook armed at import'\n"
            "import threading; assert threading.active_count() == 1, 'thread started at import'\n"
            "print('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr
