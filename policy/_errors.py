"""Exceptions of the policy language.

    PromptLineError                 base of every error this project raises on purpose
     └── PolicyError                a policy or manifest cannot be loaded or compiled
          └── CelCompileError       a CEL expression does not parse or type-check

Errors follow one format: ``file:line:column: what is wrong — how to fix it``; the
message is one line, lowercase start, user input in backticks.
"""

from __future__ import annotations


class PromptLineError(Exception):
    """Base class of all PromptLine errors; ``code`` is a stable identifier."""

    code = "promptline"


class PolicyError(PromptLineError):
    """A policy file or manifest is invalid. Carries its source location and a fix."""

    code = "policy"

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: int | None = None, fix: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.fix = fix
        super().__init__(self.render())

    @property
    def location(self) -> str:
        parts = [self.file or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def render(self) -> str:
        text = f"{self.location}: {self.message}"
        if self.fix:
            text += f" — {self.fix}"
        return text


class CelCompileError(PolicyError):
    """A CEL expression failed to parse or type-check; line/column are within the expression."""

    code = "cel-compile"


class CelEvalError(PromptLineError):
    """A CEL expression failed at evaluation time (or returned a non-bool)."""

    code = "cel-eval"
