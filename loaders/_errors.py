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

from policy._errors import PromptLineError


class LoaderError(PromptLineError):
    """A plugin cannot be discovered, verified or loaded; ``plugin`` names it when known."""

    code = "loader"

    def __init__(self, message: str, *, plugin: str | None = None, fix: str | None = None) -> None:
        self.message = message
        self.plugin = plugin
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        text = f"plugin `{self.plugin}`: {self.message}" if self.plugin else self.message
        if self.fix:
            text += f" — {self.fix}"
        return text


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


class ToolError(PromptLineError):
    """A tool call failed. Plugin authors raise it from ``execute``; the host builds it for
    invalid arguments, exceptions, timeouts and malformed results.

    ``kind`` is a stable code: ``invalid-arguments``, ``failed`` (raised by the tool),
    ``exception`` (any other exception), ``timeout``, ``malformed-result``, ``denied``,
    ``unavailable``. ``field`` names the offending argument for ``invalid-arguments``.
    """

    code = "tool"

    def __init__(self, message: str, *, tool: str | None = None, kind: str = "failed",
                 field: str | None = None, retryable: bool = False) -> None:
        self.message = message
        self.tool = tool
        self.kind = kind
        self.field = field
        self.retryable = retryable
        super().__init__(self.render())

    def render(self) -> str:
        return f"tool `{self.tool}`: {self.message}" if self.tool else self.message

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "message": self.message}
        if self.tool:
            out["tool"] = self.tool
        if self.field is not None:
            out["field"] = self.field
        if self.retryable:
            out["retryable"] = True
        return out

    @classmethod
    def from_dict(cls, data: Any, *, tool: str | None = None) -> "ToolError":
        if not isinstance(data, dict) or not isinstance(data.get("message"), str):
            return cls(f"malformed error value `{_short(data)}`", tool=tool, kind="malformed-result")
        kind = data.get("kind") if isinstance(data.get("kind"), str) else "failed"
        field = data.get("field") if isinstance(data.get("field"), str) else None
        return cls(data["message"], tool=data.get("tool") if isinstance(data.get("tool"), str) else tool,
                   kind=kind, field=field, retryable=data.get("retryable") is True)

    def __reduce__(self):  # picklable across process boundaries
        return (_rebuild_tool_error, (self.to_dict(),))


def _rebuild_tool_error(data: dict[str, Any]) -> ToolError:
    return ToolError.from_dict(data)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["LoaderError", "SignatureError", "ApprovalRequired", "ApprovalStoreError", "ToolError"]
