"""Build a real wheel of a small plugin package and pip-install it into a target directory."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

PLUGIN_CODE = '''\
from importlib import resources

from hello_pl_extra import shout  # a sibling top-level module of the same distribution
from promptline import Tool, ToolPlugin, ToolResult

from .helpers import greet


class Hello(Tool):
    name = "hello"
    parameters = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}

    def execute(self, args):
        word = resources.files("hello_pl").joinpath("data/word.txt").read_text().strip()
        return ToolResult.success(f"{shout(greet(args['name']))} / {word}")


class Write(Tool):
    name = "write"

    def execute(self, args):
        (resources.files("hello_pl") / "planted.py").write_text("x = 1")
        return ToolResult.success("wrote into the installed package")


class HelloPlugin(ToolPlugin):
    def tools(self):
        return [Hello(), Write()]
'''

MANIFEST = '''\
id: hello-pl
version: 1.2.0
entry: {{python: "hello_pl.plugin:HelloPlugin"}}
sandbox: {sandbox}
'''


def build_wheel(out: Path, *, sandbox: str = "process", version: str = "1.2.0") -> Path:
    """A wheel of distribution ``hello-pl`` (package ``hello_pl`` with plugin.yaml, a helper
    module and a data file) declaring entry point ``promptline.plugins: hello-pl``."""
    files = {
        "hello_pl/__init__.py": "",
        "hello_pl/helpers.py": "def greet(name):\n    return f'hello {name}'\n",
        "hello_pl/plugin.py": PLUGIN_CODE,
        "hello_pl/plugin.yaml": MANIFEST.format(sandbox=sandbox),
        "hello_pl/data/word.txt": "bonjour\n",
        "hello_pl_extra.py": "def shout(text):\n    return text.upper()\n",
    }
    info = f"hello_pl-{version}.dist-info"
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: hello-pl\nVersion: {version}\n"
    files[f"{info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: promptline-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/entry_points.txt"] = "[promptline.plugins]\nhello-pl = hello_pl.plugin:HelloPlugin\n"
    record = []
    for name, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"hello_pl-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


def pip_install_target(wheel: Path, target: Path) -> Path:
    """``pip install --no-deps --target`` (a site directory outside any venv)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=120)
    return target
