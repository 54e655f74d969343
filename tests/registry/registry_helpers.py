"""Helpers for the registry tests: plugin trees, policies, git repositories, hostile archives."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

CODE = '''\
from promptline import ToolPlugin, Tool, ToolResult


class Echo(Tool):
    name = "echo"
    parameters = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

    def execute(self, args):
        return ToolResult.success(args["text"])


class Plugin(ToolPlugin):
    def tools(self):
        return [Echo()]
'''


def write_plugin(parent: Path, plugin_id: str = "demo", *, version: str = "0.1.0", requires: str = ">=0.1",
                 network: tuple[str, ...] = ("https://api.example.com",), read: tuple[str, ...] = (),
                 note: str = "") -> Path:
    """A plugin tree at parent/plugin_id (rewritten in place when it exists)."""
    root = parent / plugin_id
    root.mkdir(parents=True, exist_ok=True)
    module = plugin_id.replace("-", "_")
    manifest = {
        "id": plugin_id, "name": plugin_id.title(), "version": version,
        "description": f"the {plugin_id} test plugin", "requires": requires, "types": ["tool"],
        "entry": {"python": f"{module}:Plugin"}, "sandbox": "process",
        "capabilities": {"network": list(network), "filesystem": {"read": list(read)}},
    }
    (root / "plugin.yaml").write_text(json.dumps(manifest, indent=2) + "\n")
    (root / f"{module}.py").write_text(CODE + (f"# {note}\n" if note else ""))
    return root


def write_policy(path: Path, *, trusted: tuple[str, ...] = (), require_signature: bool = False,
                 approve: str = "review") -> Path:
    keys = ", ".join(f'"{k}"' for k in trusted)
    path.write_text(f"""\
apiVersion: promptline/v1
kind: Policy
layer: org
settings:
  require_signature: {str(require_signature).lower()}
  trusted_keys: [{keys}]
  approve: {approve}
rules:
  - id: no-ssh-keys
    effect: deny
    actions: [fs.read, fs.write]
    when: within(request.path, "~/.ssh")
    message: SSH keys are off limits
""")
    os.chmod(path, 0o644)
    return path


GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def git(*args: str, cwd: Path | None = None) -> str:
    env = dict(os.environ, **GIT_ENV)
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def git_repo(tmp: Path, plugin_dir: Path, name: str = "repo.git", *, tag: str | None = None) -> Path:
    """A bare repository (default branch main) holding plugin_dir's files at its top."""
    bare = tmp / name
    if not bare.exists():
        git("init", "--quiet", "--bare", "-b", "main", str(bare))
    work = tmp / (name + ".work")
    if not (work / ".git").exists():
        git("init", "--quiet", "-b", "main", str(work))
    for item in work.iterdir():
        if item.name != ".git":
            subprocess.run(["rm", "-rf", str(item)], check=True)
    subprocess.run(["cp", "-a", f"{plugin_dir}/.", str(work)], check=True)
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "release", cwd=work)
    if tag:
        git("tag", tag, cwd=work)
    git("push", "--quiet", "--force", str(bare), "HEAD:main", *( [f"refs/tags/{tag}"] if tag else []), cwd=work)
    return bare


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue())


def member(name: str, data: bytes = b"x", *, kind: bytes = tarfile.REGTYPE, link: str = "",
           size: int | None = None) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE and size is None else (size or 0)
    info.mode = 0o644
    return info, (data if kind == tarfile.REGTYPE and size is None else None)


def huge_header(name: str, size: int) -> bytes:
    """A tar.gz whose only entry claims ``size`` bytes but holds none (a lying header)."""
    info = tarfile.TarInfo(name)
    info.size = size
    return gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024)


def snapshot(*dirs: Path) -> dict[str, tuple]:
    """Every path under ``dirs`` with its type, size and mtime (to show nothing changed)."""
    out = {}
    for d in dirs:
        if not d.exists():
            out[str(d)] = ("missing",)
            continue
        for root, subdirs, files in os.walk(d):
            for name in subdirs + files:
                p = os.path.join(root, name)
                st = os.lstat(p)
                out[p] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out
