"""A pip-installed plugin's distribution, as its sandboxed child needs it.

An entry-point plugin's verified tree is its package directory (the one with plugin.yaml).
The rest of its distribution — sibling modules and packages, its ``.dist-info`` (so
``importlib.metadata.version()`` of its own distribution works) — is copied next to it,
read-only in the child, each file checked against the sha256 pip wrote in ``RECORD``.
Files outside the site directory (scripts, headers) and byte-code caches are left out.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from .._errors import LoaderError

MAX_DIST_BYTES = 64 * 1024 * 1024   # a distribution larger than this is refused


def site_dir(root: str | os.PathLike, package: str) -> Path:
    """The sys.path entry holding ``package`` whose directory is ``root``."""
    site = Path(root)
    for _ in package.split("."):
        site = site.parent
    return site


def distribution_files(root: str | os.PathLike, package: str, plugin_id: str) -> Iterator[tuple[str, bytes]]:
    """(relative path below the site dir, bytes) of every file of the distribution that ships
    ``package`` besides the package's own tree; nothing when no distribution lists it."""
    site = site_dir(root, package)
    pkg_path = package.replace(".", "/")
    manifest = f"{pkg_path}/plugin.yaml"
    for dist in importlib.metadata.distributions(path=[str(site)]):
        files = list(dist.files or ())
        if not any(str(f) == manifest for f in files):
            continue
        total = 0
        for f in files:
            rel = PurePosixPath(str(f))
            if rel.is_absolute() or ".." in rel.parts or "__pycache__" in rel.parts or rel.suffix == ".pyc":
                continue
            if str(rel).startswith(pkg_path + "/"):
                continue          # the verified tree, copied from the verified bytes
            path = site / Path(*rel.parts)
            try:
                data = path.read_bytes()
            except OSError:
                continue          # RECORD lists it, pip did not leave it: nothing to copy
            total += len(data)
            if total > MAX_DIST_BYTES:
                raise LoaderError(f"the distribution of `{package}` is larger than {MAX_DIST_BYTES >> 20} MiB",
                                  plugin=plugin_id, fix="ship a smaller distribution")
            if f.hash is not None and f.hash.mode == "sha256":
                want = f.hash.value
                got = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                if got != want:
                    raise LoaderError(f"`{path}` does not match the hash its distribution's RECORD lists",
                                      plugin=plugin_id, fix="reinstall the plugin with pip")
            yield str(rel), data
        return


__all__ = ["distribution_files", "site_dir"]
