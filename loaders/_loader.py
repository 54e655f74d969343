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
from ._model import ModelInfo

DEFAULT_CALL_TIMEOUT = 30.0   # seconds a tool call may take before it becomes an error result
START_TIMEOUT = 20.0          # seconds a plugin has to start: import (or spawn), initialize, list its tools


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
