"""Where a plugin comes from: a local directory, a local archive, a git repository or an index.

:func:`parse_source` reads what the user typed:

==============================================  =========================================
``./my-plugin``, ``/abs/dir``, ``~/dir``        a directory holding ``plugin.yaml``
``./my-plugin-0.1.0.tar.gz``                    a local archive
``github:user/repo[#ref]``                      ``https://github.com/user/repo.git``
``git+URL[#ref]``, ``https://…/x.git[#ref]``    any git URL (``https``, ``ssh``, ``git``,
``ssh://…``, ``file://…``, ``user@host:path``   ``file``); a local git repository by path
``database-tools``, ``database-tools@1.2.0``,   a plugin from the index, optionally a version
``database-tools@">=1.2,<2"``                   or a PEP 440 version specifier
==============================================  =========================================

A bare plugin id (``[a-z0-9-]``, optionally ``@version``) always means the index, even when
a directory of that name exists here (like npm and pip): write ``./name`` for the directory.

Git runs as a subprocess with no hooks (``core.hooksPath=/dev/null``), no system or global
git configuration (so no filters, credential helpers or fsmonitor a repository could
trigger), no terminal prompts, the ``ext::`` transport disabled, ``--depth 1``,
``--no-checkout`` and then a checkout; the ``.git`` directory is deleted before the tree
is verified.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ._errors import RegistryError

GIT_TIMEOUT = 120.0          # seconds for one git clone or checkout
GIT_SCHEMES = ("https", "http", "ssh", "git", "file")
GITHUB = re.compile(r"^github:([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?(?:#(.+))?\Z")
SCP_LIKE = re.compile(r"^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+:[^/].*\Z")
INDEX_NAME = re.compile(r"^([a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)(?:@([^:/\s]+))?\Z")
MAX_SOURCE_CHARS = 4096     # PATH_MAX: nothing longer names a directory, URL or plugin
REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}\Z")

Kind = Literal["path", "archive", "git", "index"]


@dataclass(frozen=True)
class Source:
    """A parsed source. ``location``: a directory, archive, git URL or index location;
    ``ref``: a git branch or tag; ``plugin_id``/``wanted``: an index name and version filter."""

    kind: Kind
    location: str
    ref: str | None = None
    plugin_id: str | None = None
    wanted: str | None = None

    def describe(self) -> str:
        if self.kind == "git":
            return f"git {self.location}" + (f"#{self.ref}" if self.ref else "")
        if self.kind == "index":
            return f"index {self.location}: {self.plugin_id}" + (f"@{self.wanted}" if self.wanted else "")
        return f"{self.kind} {self.location}"

    @property
    def local(self) -> bool:
        """A directory on this machine, i.e. code the user already has."""
        return self.kind == "path"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in (("kind", self.kind), ("location", self.location), ("ref", self.ref),
                                  ("plugin_id", self.plugin_id)) if v is not None}

    @classmethod
    def from_json(cls, data: Any) -> Source:
        if not isinstance(data, dict) or data.get("kind") not in ("path", "archive", "git", "index") or \
                not isinstance(data.get("location"), str):
            raise RegistryError("the record of where a plugin came from is malformed", reason="bad-source",
                                fix="reinstall the plugin with `promptline plugin install --force SOURCE`")
        return cls(data["kind"], data["location"], data.get("ref"), data.get("plugin_id"))


def parse_source(text: str, *, index: str | None = None, ref: str | None = None) -> Source:
    """Turn what the user typed into a :class:`Source` (see the module docstring)."""
    if not text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise RegistryError(f"source `{_clip(text)}` is empty or holds control characters", reason="bad-source",
                            fix="give a directory, a git URL or a plugin name")
    if len(text) > MAX_SOURCE_CHARS:
        raise RegistryError(f"source `{_clip(text)}` is {len(text)} characters long, over the limit of "
                            f"{MAX_SOURCE_CHARS}", reason="bad-source",
                            fix="give a directory, a git URL or a plugin name")
    m = GITHUB.match(text)
    if m:
        return _git(f"https://github.com/{m.group(1)}/{m.group(2)}.git", ref or m.group(3))
    if text.startswith("git+"):
        return _git_url(text[4:], ref)
    if "://" in text:
        return _git_url(text, ref)
    m = INDEX_NAME.match(text)
    if m and "/" not in text:
        return Source("index", index or "", plugin_id=m.group(1), wanted=m.group(2))
    path = Path(text).expanduser()
    try:
        exists = path.exists()
    except (OSError, ValueError) as exc:   # a name too long for this file system, ...
        raise RegistryError(f"`{_clip(text)}` cannot be a path here: {getattr(exc, 'strerror', None) or exc}",
                            reason="bad-source", fix="give a shorter path, a git URL or a plugin name") from None
    if exists:
        return _local(path, ref)
    if SCP_LIKE.match(text):
        url, _, r = text.partition("#")
        return _git(url, ref or r or None)
    raise RegistryError(f"`{text}` is not a directory, archive, git URL or plugin name", reason="bad-source",
                        fix="check the path, or give `github:user/repo` or a plugin name from the index")


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _local(path: Path, ref: str | None) -> Source:
    resolved = path.resolve()
    if resolved.is_dir():
        if (resolved / "plugin.yaml").is_file() and ref is None:
            return Source("path", str(resolved))
        if _is_git_repo(resolved):
            return _git(resolved.as_uri(), ref)
        raise RegistryError(f"`{path}` holds neither a plugin.yaml nor a git repository", reason="bad-source",
                            fix="point at the plugin's directory, the one holding plugin.yaml")
    if resolved.name.endswith((".tar.gz", ".tgz")):
        return Source("archive", str(resolved))
    raise RegistryError(f"`{path}` is not a plugin directory, a .tar.gz archive or a git repository",
                        reason="bad-source", fix="point at the plugin's directory")


def _is_git_repo(path: Path) -> bool:
    if (path / ".git").exists():
        return True
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def _git_url(url: str, ref: str | None) -> Source:
    base, _, r = url.partition("#")
    scheme = base.split("://", 1)[0].lower() if "://" in base else ""
    if scheme not in GIT_SCHEMES:
        raise RegistryError(f"git URL scheme `{scheme or base}` is not allowed", reason="bad-source",
                            fix=f"use one of {', '.join(GIT_SCHEMES)}")
    return _git(base, ref or r or None)


def _git(url: str, ref: str | None) -> Source:
    if url.startswith("-"):
        raise RegistryError(f"git URL `{url}` starts with `-`", reason="bad-source", fix="give a real URL")
    if ref is not None and not REF.match(ref):
        raise RegistryError(f"git ref `{ref}` is not a branch or tag name", reason="bad-source",
                            fix="give a branch or tag like `v1.2.0`")
    return Source("git", url, ref=ref)


# ---------------------------------------------------------------------------------------
# Git


def git_env() -> dict[str, str]:
    """An environment for git that ignores the user's and the system's configuration."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SSH_AUTH_SOCK", "TMPDIR",
                                                        "http_proxy", "https_proxy", "no_proxy",
                                                        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")}
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_ASKPASS": "true", "GIT_LFS_SKIP_SMUDGE": "1", "LC_ALL": "C"})
    return env


GIT_SAFE_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "protocol.ext.allow=never",
                   "-c", "core.fsmonitor=false", "-c", "submodule.recurse=false",
                   "-c", "protocol.file.allow=always", "-c", "advice.detachedHead=false")


def fetch_git(url: str, ref: str | None, dest: str | os.PathLike, *, plugin: str | None = None) -> Path:
    """Shallow-clone ``url`` at ``ref`` (default branch when None) into the new directory
    ``dest``, check it out, delete ``.git`` and return ``dest``."""
    git = shutil.which("git")
    if git is None:
        raise RegistryError("git is not installed", reason="git-failed", plugin=plugin,
                            fix="install git, or download the plugin and install it from a directory")
    repo = Path(dest)
    clone = [git, *GIT_SAFE_CONFIG, "clone", "--quiet", "--no-checkout", "--depth", "1", "--no-tags",
             "--single-branch"]
    if ref:
        clone += ["--branch", ref]
    _run(clone + ["--", url, str(repo)], f"cloning `{url}`", plugin)
    _run([git, *GIT_SAFE_CONFIG, "-C", str(repo), "checkout", "--quiet"], f"checking out `{url}`", plugin)
    shutil.rmtree(repo / ".git")
    return repo


def _run(argv: list[str], what: str, plugin: str | None) -> None:
    try:
        proc = subprocess.run(argv, env=git_env(), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=GIT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise RegistryError(f"{what} took longer than {GIT_TIMEOUT:.0f}s", reason="git-failed", plugin=plugin,
                            fix="check the URL and your network") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        last = next((line for line in reversed(err) if line.strip()), f"exit code {proc.returncode}")
        raise RegistryError(f"{what} failed: {last[:200]}", reason="git-failed", plugin=plugin,
                            fix="check the URL, the branch or tag, and that the repository is readable")


__all__ = ["Source", "parse_source", "fetch_git", "git_env"]
