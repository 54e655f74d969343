"""The layout (one import root), the dependency direction and the front doors.

Packages and what each may import (docs/design.md §1)::

    promptline (facade, cli) -> promptline.loaders -> promptline.enforcer -> promptline.policy
                                        └──────────> promptline.sdk ─────────┘

Across packages, imports go through the target's public ``__init__`` only. Importing a
package has no side effects and loads nothing it does not use (lazy exports).
"""

import ast
import importlib
import os
import re
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# source folder -> the package it installs as
FOLDERS = {"policy": "promptline.policy", "enforcer": "promptline.enforcer",
           "loaders": "promptline.loaders", "promptline/sdk": "promptline.sdk",
           "promptline": "promptline"}
ALLOWED = {
    "promptline.policy": set(),
    "promptline.sdk": {"promptline.policy"},
    "promptline.enforcer": {"promptline.policy"},
    "promptline.loaders": {"promptline.policy", "promptline.enforcer", "promptline.sdk"},
    "promptline": {"promptline.policy", "promptline.enforcer", "promptline.loaders", "promptline.sdk"},
}
PACKAGES = sorted(ALLOWED, key=len, reverse=True)
OLD_ROOTS = ("policy", "enforcer", "loaders")
DYNAMIC = re.compile(r"""(?:import_module|__import__|find_spec)\(\s*['"]([\w.]+)['"]""")


def owner(module):
    return next((p for p in PACKAGES if module == p or module.startswith(p + ".")), None)


def python_files(*folders):
    for folder in folders:
        for dirpath, dirs, files in os.walk(os.path.join(ROOT, folder)):
            dirs[:] = [d for d in dirs if d not in ("node_modules", "__pycache__", ".venv")]
            for name in files:
                if name.endswith((".py", ".pyi")):
                    yield os.path.join(dirpath, name)


def package_of(path):
    rel = os.path.relpath(path, ROOT)
    folder = max((f for f in FOLDERS if rel.startswith(f + "/")), key=len, default=None)
    return FOLDERS[folder] if folder else None


def imports_of(path):
    """(module, line) of every absolute import, including dynamic ones named by a literal."""
    text = open(path, encoding="utf-8").read()
    for node in ast.walk(ast.parse(text, path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno
    for m in DYNAMIC.finditer(text):
        yield m.group(1), text.count("\n", 0, m.start()) + 1


def private_part(module):
    """The first private component below the package that owns ``module``, if any."""
    pkg = owner(module)
    rest = module[len(pkg):].split(".")[1:] if pkg else []
    return next((p for p in rest if p.startswith("_")), None)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_flow_one_way(package):
    bad = []
    for path in python_files(*[f for f, p in FOLDERS.items() if p == package]):
        if package_of(path) != package:
            continue
        for module, line in imports_of(path):
            target = owner(module)
            if target and target != package and target not in ALLOWED[package]:
                bad.append(f"{os.path.relpath(path, ROOT)}:{line} imports {module}")
    assert not bad, bad


def test_imports_across_packages_use_the_front_door():
    """`from promptline.policy._request import Request` in enforcer/ is refused: the name
    comes from `promptline.policy`. Benchmarks and examples follow the same rule."""
    bad = []
    for path in python_files(*FOLDERS, "benchmarks", "examples"):
        me = package_of(path)
        for module, line in imports_of(path):
            target = owner(module)
            if target and target != me and private_part(module):
                bad.append(f"{os.path.relpath(path, ROOT)}:{line} imports {module}")
    assert not bad, bad


def test_the_old_import_roots_are_gone():
    """Nothing imports the pre-rename top-level names `policy`, `enforcer`, `loaders`."""
    bad = []
    for path in python_files(*FOLDERS, "benchmarks", "examples", "tests", "policies"):
        for module, line in imports_of(path):
            if module.split(".")[0] in OLD_ROOTS:
                bad.append(f"{os.path.relpath(path, ROOT)}:{line} imports {module}")
    for doc in ["README.md", *(os.path.join("docs", d) for d in os.listdir(os.path.join(ROOT, "docs")) if d.endswith(".md"))]:
        for n, text in enumerate(open(os.path.join(ROOT, doc), encoding="utf-8"), 1):
            if re.match(r"\s*(from|import) (policy|enforcer|loaders)\b", text) or \
                    re.match(r"\s*from promptline(\.\w+)*\._\w+ import", text):   # docs use the front doors too
                bad.append(f"{doc}:{n}: {text.strip()}")
    assert not bad, bad


@pytest.mark.parametrize("package", ["promptline.policy", "promptline.policy._cel", "promptline.sdk",
                                     "promptline.enforcer", "promptline.enforcer.audit",
                                     "promptline.loaders", "promptline"])
def test_all_names_exist(package):
    module = importlib.import_module(package)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing and len(set(module.__all__)) == len(module.__all__)


def test_importing_installs_nothing_and_loads_lazily():
    code = ("import sys, os; before = os.environ.__class__\n"
            "import promptline, promptline.policy, promptline.enforcer, promptline.loaders\n"
            "heavy = [m for m in ('pydantic', 'cryptography', 'watchdog', 'jsonschema', 'wasmtime',"
            " 'yaml', 'celpy', 'ctypes', 'click', 'rich') if m in sys.modules]\n"
            "assert not heavy, f'imported eagerly: {heavy}'\n"
            "from promptline.enforcer import _hook\n"
            "assert os.environ.__class__ is before, 'environ replaced at import'\n"
            "assert _hook.BOX[0] is None, 'hook armed at import'\n"
            "import threading; assert threading.active_count() == 1, 'thread started at import'\n"
            "from promptline import Tool, ToolPlugin, ToolResult\n"
            "assert 'pydantic' not in sys.modules and 'jsonschema' not in sys.modules, 'the sdk pulls the engine'\n"
            "print('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr


def test_pytest_runs_from_another_directory(tmp_path):
    target = os.path.join(ROOT, "tests", "policy", "test_decide.py")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


@pytest.mark.slow
def test_the_wheel_has_one_top_level_package(tmp_path):
    """Every folder installs under `promptline`; no generic top-level names."""
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), ROOT],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        pytest.fail(f"building the wheel failed: {out.stderr[-3000:]}")
    wheel = next(tmp_path.glob("promptline_plugins-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"promptline"}, tops
    for folder, package in FOLDERS.items():   # every source package is in the wheel
        for dirpath, dirs, files in os.walk(os.path.join(ROOT, folder)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            if "__init__.py" in files:
                rel = os.path.relpath(dirpath, os.path.join(ROOT, folder))
                inside = package.replace(".", "/") + ("" if rel == "." else "/" + rel)
                assert f"{inside}/__init__.py" in names and f"{inside}/__init__.pyi" in names or \
                    f"{inside}/__init__.py" in names, inside
    assert "promptline/py.typed" in names
