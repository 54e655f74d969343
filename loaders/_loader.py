"""The Loader interface: one way to run a plugin (in process, in a child process, in wasm).

A Loader turns a discovered, verified, approved plugin into a LoadedPlugin. The
PluginManager picks the loader from the plugin's effective sandbox (``PluginInfo.sandbox``),
never a weaker one: a missing loader is an error, not a fallback.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from promptline.sdk import PluginConfig, PromptTemplate, ToolResult, ToolSpec

from ._discovery import DiscoveredPlugin
from ._errors import ToolError

DEFAULT_CALL_TIMEOUT = 30.0   # seconds a tool call may take before it becomes an error result


@dataclass(frozen=True)
class LoadContext:
    """Everything a loader may use to start one plugin."""

    plugin: DiscoveredPlugin
    info: Any                     # policy.PluginInfo: effective sandbox, trusted, directory
    enforcer: Any                 # enforcer.Enforcer: decisions, audit log
    config: PluginConfig
    files: Mapping[str, bytes] | None = None   # verified bytes {relpath: data}, when verified
    policy_files: Sequence[str] = ()           # the policy files in force (children re-load them)
    audit_log_path: str | None = None          # children append their decisions here
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    """A model plugin's provider as the host sees it: its name and whether it can be used now."""

    name: str
    available: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "available": self.available, "reason": self.reason}

    @classmethod
    def from_dict(cls, value: Any) -> ModelInfo:
        """Parse a child's answer; anything malformed is an unavailable model."""
        if not isinstance(value, dict):
            return cls("", False, "malformed answer")
        name, available, reason = value.get("name"), value.get("available"), value.get("reason", "")
        if not isinstance(name, str) or not isinstance(available, bool) or not isinstance(reason, str):
            return cls("", False, "malformed answer")
        return cls(name[:128], available, reason[:512])


def describe_model(provider: Any, available: Any) -> ModelInfo:
    """ModelInfo from a provider object and what ``is_available`` returned (only True counts)."""
    name = getattr(provider, "name", "")
    name = name[:128] if isinstance(name, str) else ""
    if available is True:
        return ModelInfo(name, True)
    return ModelInfo(name, False, "is_available() returned False" if available is False
                     else f"is_available() returned `{type(available).__name__}`, not a bool")


class LoadedPlugin(ABC):
    """A running plugin as the manager sees it. Plugin failures never raise out of these
    methods: they come back as error ToolResults (or empty lists)."""

    id: str
    version: str
    sandbox: str

    @abstractmethod
    def tools(self) -> Sequence[ToolSpec]: ...

    @abstractmethod
    def call_tool(self, name: str, args: dict, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> ToolResult: ...

    def templates(self) -> Sequence[PromptTemplate]:
        return ()

    def get_context(self, query: str, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> str:
        return ""

    def model_info(self, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> ModelInfo | None:
        """For a model plugin: its provider's name and ``is_available()``; None for others."""
        return None

    def complete(self, prompt: str, *, timeout: float = DEFAULT_CALL_TIMEOUT, **options: Any) -> ToolResult:
        """A model plugin's completion, as a ToolResult (content = the text)."""
        return ToolResult.failure(ToolError(f"plugin `{self.id}` provides no model here", kind="unsupported"))

    @abstractmethod
    def shutdown(self) -> None: ...


class Loader(Protocol):
    kind: str   # "none" (in process) | "process" | "wasm": the sandbox it provides

    def load(self, ctx: LoadContext) -> LoadedPlugin: ...
