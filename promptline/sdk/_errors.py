"""Errors a plugin author meets: ``ToolError`` (raise it from ``execute``) and
``LoaderError`` (a plugin class does not match its manifest or is not a valid plugin).

Messages follow the project's rules: one line, lowercase start, user input in backticks,
``what is wrong — how to fix it``.
"""

from __future__ import annotations

from typing import Any

from promptline.policy import PromptLineError


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
    def from_dict(cls, data: Any, *, tool: str | None = None) -> ToolError:
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


__all__ = ["LoaderError", "ToolError"]
