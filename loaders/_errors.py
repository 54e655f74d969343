"""Exceptions of the plugin loaders.

    PromptLineError (policy)          base of every error this project raises on purpose
     ├── LoaderError                  a plugin cannot be discovered, verified or loaded
     │    ├── SignatureError          a plugin's signature is missing, untrusted or broken
     │    ├── ApprovalRequired        a plugin waits for the user's approval
     │    └── ApprovalStoreError      the approvals file cannot be read or written
     └── ToolError                    a tool call failed (bad arguments, exception, bad result)

Messages follow the project's rules (policy/_errors.py): one line, lowercase start, user
input in backticks, ``what is wrong — how to fix it``.
"""

from __future__ import annotations

from typing import Any

from promptline.sdk import LoaderError, ToolError


class SignatureError(LoaderError):
    """A signature check failed. ``reason`` is a stable code; ``path``, ``expected`` and
    ``found`` say which file (or key) was expected to be what, and what was there instead.

    Reasons: ``unsigned``, ``malformed``, ``untrusted-key``, ``bad-signature``,
    ``file-changed``, ``file-added``, ``file-removed``, ``file-renamed``, ``symlink``, ``special-file``,
    ``bad-name``, ``too-large``, ``unreadable``, ``bad-key``.
    """

    code = "signature"

    def __init__(self, message: str, *, reason: str, plugin: str | None = None,
                 path: str | None = None, expected: str | None = None,
                 found: str | None = None, fix: str | None = None) -> None:
        self.reason = reason
        self.path = path
        self.expected = expected
        self.found = found
        if expected is not None and found is not None:
            message = f"{message}: expected {expected}, found {found}"
        super().__init__(message, plugin=plugin, fix=fix)


class ApprovalRequired(LoaderError):
    """A plugin is new or asks for more than the user approved; ``status`` says which."""

    code = "approval-required"

    def __init__(self, message: str, *, plugin: str, status: Any = None, fix: str | None = None) -> None:
        self.status = status
        super().__init__(message, plugin=plugin, fix=fix)


class ApprovalStoreError(LoaderError):
    """The approvals file is unreadable or malformed (fail closed: nothing counts as approved)."""

    code = "approval-store"


__all__ = ["LoaderError", "SignatureError", "ApprovalRequired", "ApprovalStoreError", "ToolError"]
