"""The registry's error: one class, a stable ``reason`` code per kind of refusal.

    LoaderError (loaders._errors)
     └── RegistryError          a plugin cannot be fetched, staged, verified, installed,
                                published, updated or removed

Reasons: ``bad-source``, ``fetch-failed``, ``git-failed``, ``bad-index``, ``not-found``,
``checksum``, ``signature``, ``index-mismatch``, ``bad-archive``, ``too-large``,
``incompatible``, ``downgrade``, ``already-installed``, ``not-installed``,
``not-approved``, ``unsigned`` (an index entry no trusted key signed, not accepted),
``yes-refused``, ``exists``, ``bad-manifest``, ``bad-policy``, ``io``.
"""

from __future__ import annotations

from .._errors import LoaderError


class RegistryError(LoaderError):
    """A registry operation was refused; nothing was changed. ``reason`` is a stable code;
    ``details``: lines worth showing above the error (untrusted text: escape them)."""

    code = "registry"

    def __init__(self, message: str, *, reason: str, plugin: str | None = None,
                 fix: str | None = None, details: tuple[str, ...] = ()) -> None:
        self.reason = reason
        self.details = details
        super().__init__(message, plugin=plugin, fix=fix)


__all__ = ["RegistryError"]
