"""The plugin API: what a plugin author implements and what the host calls.

A plugin is a class deriving from one or more of :class:`ToolPlugin`, :class:`ModelPlugin`,
:class:`PromptPlugin` and :class:`ContextPlugin` (all :class:`Plugin`). Any hook may be a
plain method or an ``async def``; the host awaits whatever it gets back.

    class Calculator(Tool):
        name = "calculate"
        description = "Evaluate an arithmetic expression"
        parameters = {"type": "object",
                      "properties": {"expression": {"type": "string"}},
                      "required": ["expression"]}

        def execute(self, args):
            return ToolResult.success(str(evaluate(args["expression"])))

    class MathPlugin(ToolPlugin):
        def tools(self):
            return [Calculator()]

The host side (:func:`invoke_tool`, :func:`call_with_recovery`) validates arguments with
JSON Schema before ``execute`` runs, and turns exceptions and malformed return values into
error :class:`ToolResult` values, so a broken plugin never raises into the host.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal, TypeVar

from ._errors import LoaderError, ToolError

T = TypeVar("T")

TOOL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
"""Tool names: what MCP clients accept and what fits in a policy's `request.tool`."""

MAX_RESULT_CHARS = 8 * 1024 * 1024   # a tool's text content; more is a malformed result
MAX_ERROR_CHARS = 2_000              # exception text copied into an error result
MAX_TOOL_RETRIES = 2                 # RecoveryAction.RETRY is honoured at most this often

EMPTY_OBJECT_SCHEMA: Mapping[str, Any] = MappingProxyType({"type": "object", "properties": {}})


# ---------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one tool call.

    ``content`` is text for the model; ``data`` is optional JSON-serializable structured
    output; ``error`` is set exactly when ``ok`` is false.
    """

    ok: bool
    content: str = ""
    data: Any = None
    error: ToolError | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.ok, bool):
            raise TypeError("ToolResult.ok must be a bool")
        if not isinstance(self.content, str):
            raise TypeError("ToolResult.content must be a str")
        if self.ok and self.error is not None:
            raise ValueError("a successful ToolResult carries no error")
        if not self.ok and self.error is None:
            object.__setattr__(self, "error", ToolError(self.content or "tool failed"))

    @classmethod
    def success(cls, content: str = "", data: Any = None) -> ToolResult:
        return cls(ok=True, content=content, data=data)

    @classmethod
    def failure(cls, error: ToolError | str, *, tool: str | None = None,
                kind: str = "failed") -> ToolResult:
        if isinstance(error, str):
            error = ToolError(error, tool=tool, kind=kind)
        return cls(ok=False, content=error.message, error=error)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "content": self.content}
        if self.data is not None:
            out["data"] = self.data
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out

    @classmethod
    def from_dict(cls, value: Any, *, tool: str | None = None) -> ToolResult:
        """Parse :meth:`to_dict` output (e.g. from a sandboxed plugin); anything malformed
        becomes an error result rather than an exception."""
        return coerce_result(value, tool=tool)


@dataclass(frozen=True)
class RecoveryAction:
    """What to do after a tool call failed; returned by ``ToolPlugin.on_tool_error``.

    ``RecoveryAction.PROPAGATE`` returns the error to the caller (the default),
    ``RecoveryAction.RETRY`` calls the tool again (at most ``MAX_TOOL_RETRIES`` times),
    ``RecoveryAction.fallback(result)`` answers with ``result`` instead.
    """

    kind: Literal["propagate", "retry", "fallback"]
    result: ToolResult | None = None

    PROPAGATE: ClassVar[RecoveryAction]
    RETRY: ClassVar[RecoveryAction]

    def __post_init__(self) -> None:
        if self.kind not in ("propagate", "retry", "fallback"):
            raise ValueError(f"unknown recovery action `{self.kind}`")
        if (self.kind == "fallback") != isinstance(self.result, ToolResult):
            raise ValueError("a fallback recovery action carries exactly one ToolResult")

    @classmethod
    def fallback(cls, result: ToolResult) -> RecoveryAction:
        return cls("fallback", result)


RecoveryAction.PROPAGATE = RecoveryAction("propagate")
RecoveryAction.RETRY = RecoveryAction("retry")


@dataclass(frozen=True)
class PluginConfig:
    """What a plugin receives in ``initialize``: its id, its settings (the manifest's
    ``config:`` defaults overlaid with the user's), and a private data directory."""

    plugin_id: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    data_dir: Path | None = None
    tool_caller: Any = field(default=None, repr=False, compare=False)   # set by the host

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(_plain_copy(dict(self.settings))))

    def call_tool(self, name: str, args: Mapping[str, Any] | None = None) -> ToolResult:
        """Call a tool of one of this plugin's manifest ``dependencies`` (``"dep.tool"``)
        through the host: decided as this plugin's ``tool.call``, then run by the
        dependency with its own grants. Never raises; a refusal is an error result."""
        if self.tool_caller is None:
            return ToolResult.failure(ToolError("no host to call other plugins through", tool=name,
                                                kind="unknown-tool"))
        try:
            result = self.tool_caller(name, dict(args or {}))
        except Exception as exc:  # noqa: BLE001 - a failing call is an error result
            return ToolResult.failure(ToolError(f"calling `{name}` failed: {exc}", tool=name))
        return result if isinstance(result, ToolResult) else ToolResult.from_dict(result, tool=name)

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.settings[key]


_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class PromptTemplate:
    """A reusable prompt. ``{{ name }}`` marks a variable; nothing else is interpreted, so
    rendering never evaluates attribute access or code (unlike ``str.format``)."""

    name: str
    template: str
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not TOOL_NAME.match(self.name):
            raise ValueError(f"template name `{self.name}` must be 1-64 of letters, digits, `_.-`")
        if not isinstance(self.template, str):
            raise TypeError("PromptTemplate.template must be a str")

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_VARIABLE.findall(self.template)))

    def render(self, **values: Any) -> str:
        missing = [v for v in self.variables if v not in values]
        if missing:
            raise ValueError(f"template `{self.name}` needs {', '.join(f'`{m}`' for m in missing)}")
        return _VARIABLE.sub(lambda m: str(values[m.group(1)]), self.template)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "template": self.template, "variables": list(self.variables)}


# ---------------------------------------------------------------------------------------
# What plugin authors implement


class Tool(ABC):
    """One callable tool. ``parameters`` is a JSON Schema for the arguments object."""

    name: str = ""
    description: str = ""
    parameters: Mapping[str, Any] = EMPTY_OBJECT_SCHEMA

    @abstractmethod
    def execute(self, args: dict[str, Any]) -> ToolResult | Awaitable[ToolResult]:
        """Run the tool with arguments already validated against ``parameters``."""


class LanguageModel(ABC):
    """A model provider's client."""

    name: str = ""

    @abstractmethod
    def complete(self, prompt: str, **options: Any) -> str | Awaitable[str]:
        """Return the model's completion of ``prompt``."""


class Plugin(ABC):
    """Base of every plugin. ``id``, ``name``, ``version`` and ``description`` default to the
    manifest's values (the host fills in what the class leaves empty); ``requires`` is a
    PEP 440 specifier of PromptLine versions."""

    id: str = ""
    name: str = ""
    version: str = ""
    description: str = ""
    requires: str = ">=0.1.0"

    config: PluginConfig

    def initialize(self, config: PluginConfig) -> None | Awaitable[None]:
        """Called once after loading, before any other hook."""
        self.config = config

    def shutdown(self) -> None | Awaitable[None]:  # noqa: B027 - optional hook, not abstract
        """Called once before unloading; release what ``initialize`` acquired."""


class ToolPlugin(Plugin):
    """A plugin offering tools."""

    @abstractmethod
    def tools(self) -> Sequence[Tool]:
        """The tools this plugin provides."""

    def on_tool_error(self, tool: str, error: ToolError) -> RecoveryAction | Awaitable[RecoveryAction]:
        """Decide what happens after ``tool`` failed with ``error``."""
        return RecoveryAction.PROPAGATE


class ModelPlugin(Plugin):
    """A plugin offering a language model provider."""

    @abstractmethod
    def provider(self) -> LanguageModel:
        """The provider's client."""

    def is_available(self) -> bool | Awaitable[bool]:
        return True


class PromptPlugin(Plugin):
    """A plugin offering prompt templates."""

    @abstractmethod
    def templates(self) -> Sequence[PromptTemplate]:
        """The templates this plugin provides."""


class ContextPlugin(Plugin):
    """A plugin that adds context (text) for a query."""

    @abstractmethod
    def get_context(self, query: str) -> str | Awaitable[str]:
        """Return context relevant to ``query``."""


PLUGIN_TYPES: Mapping[str, type[Plugin]] = MappingProxyType({
    "tool": ToolPlugin, "model": ModelPlugin, "prompt": PromptPlugin, "context": ContextPlugin,
})
"""Manifest ``types`` value -> the base class a plugin must derive from to provide it."""


def plugin_types(plugin: Plugin | type[Plugin]) -> frozenset[str]:
    """The manifest ``types`` a plugin (instance or class) implements."""
    cls = plugin if isinstance(plugin, type) else type(plugin)
    return frozenset(t for t, base in PLUGIN_TYPES.items() if issubclass(cls, base))


def bind_manifest(plugin: Plugin, manifest: Any) -> Plugin:
    """Fill the plugin's empty identity fields from its manifest; refuse a class whose
    declared ``id`` differs from the manifest's, or which lacks a declared type."""
    where = _qualname(type(plugin))
    declared = getattr(plugin, "id", "")
    if declared and declared != manifest.id:
        raise LoaderError(f"class `{where}` declares id `{declared}` but plugin.yaml says `{manifest.id}`",
                          plugin=manifest.id, fix="make them equal or drop `id` from the class")
    missing = set(manifest.types) - plugin_types(plugin)
    if missing:
        need = ", ".join(f"{PLUGIN_TYPES[t].__name__}" for t in sorted(missing))
        raise LoaderError(f"plugin.yaml declares types {', '.join(f'`{t}`' for t in sorted(missing))} "
                          f"but class `{where}` does not derive from {need}",
                          plugin=manifest.id, fix=f"derive `{where}` from {need} or fix `types:`")
    for attr in ("id", "name", "version", "description"):
        if not getattr(plugin, attr, ""):
            setattr(plugin, attr, getattr(manifest, attr, "") or "")
    return plugin


# ---------------------------------------------------------------------------------------
# Host side: checking tools, validating arguments, calling, coercing results


@dataclass(frozen=True)
class ToolSpec:
    """A checked description of a tool, as listed to clients (MCP ``tools/list``)."""

    name: str
    description: str
    parameters: Mapping[str, Any]

    def to_mcp(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "inputSchema": _plain_copy(dict(self.parameters))}


def tool_spec(tool: Tool, *, plugin: str | None = None) -> ToolSpec:
    """Check a tool's name, description and parameter schema; raise LoaderError naming the
    tool's class (the plugin author's code) when one is wrong."""
    where = _qualname(type(tool))
    if not isinstance(tool, Tool):
        raise LoaderError(f"`{where}` is not a Tool", plugin=plugin,
                          fix="derive it from promptline.Tool")
    name = getattr(tool, "name", None)
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise LoaderError(f"tool class `{where}` has name `{name}`", plugin=plugin,
                          fix="set `name` to 1-64 of letters, digits, `_.-`")
    description = getattr(tool, "description", "")
    if not isinstance(description, str):
        raise LoaderError(f"tool `{name}` (`{where}`): description is not a string", plugin=plugin,
                          fix="set `description` to a str")
    try:
        schema = _schema_dict(tool)
        compiled_validator(schema_key(schema))
    except (TypeError, ValueError) as exc:
        detail = str(exc)
        raise LoaderError(f"tool `{name}` (`{where}`): parameters is not a valid JSON Schema: "
                          f"{_clip(detail, 200)}", plugin=plugin,
                          fix="fix `parameters` (see https://json-schema.org)") from None
    if schema.get("type", "object") != "object":
        raise LoaderError(f"tool `{name}` (`{where}`): parameters must describe an object",
                          plugin=plugin, fix='use `{"type": "object", "properties": {...}}`')
    return ToolSpec(name, description, MappingProxyType(schema))


def validate_arguments(tool: Tool, args: Any) -> dict[str, Any]:
    """Validate ``args`` against the tool's JSON Schema and return a private copy.

    Raises ToolError (kind ``invalid-arguments``) naming the offending field, e.g.
    ``tool `calculate`: argument `expression` is required``.
    """
    name = getattr(tool, "name", "") or _qualname(type(tool))
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise ToolError(f"arguments must be an object, got {_json_type(args)}",
                        tool=name, kind="invalid-arguments")
    try:
        args = _plain_copy(dict(args))
        json.dumps(args, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise ToolError("arguments are not JSON data", tool=name, kind="invalid-arguments") from None
    try:
        validator = compiled_validator(schema_key(_schema_dict(tool)))
    except (TypeError, ValueError):
        raise ToolError("the tool's parameter schema is invalid", tool=name,
                        kind="invalid-arguments") from None
    from jsonschema.exceptions import best_match
    error = best_match(validator.iter_errors(args))
    if error is None:
        return args
    field_path, message = _describe(error)
    if field_path:
        text = f"argument `{field_path}` {message}"
    else:
        text = f"arguments {message}"
    raise ToolError(text, tool=name, kind="invalid-arguments", field=field_path or None)


def coerce_result(value: Any, *, tool: str | None = None) -> ToolResult:
    """Turn what a tool returned into a ToolResult; anything malformed becomes an error
    result (kind ``malformed-result``) that says what was expected and what came back.

    Accepted: a ToolResult, or a mapping in :meth:`ToolResult.to_dict` form.
    """
    if isinstance(value, ToolResult):
        result = value
    elif isinstance(value, Mapping):
        ok, content, data = value.get("ok"), value.get("content", ""), value.get("data")
        unknown = set(value) - {"ok", "content", "data", "error"}
        if not isinstance(ok, bool) or not isinstance(content, str) or unknown:
            return _malformed(tool, "a result object with `ok` (bool) and `content` (str)",
                              f"`{_clip(_safe_repr(value), 80)}`")
        if ok:
            result = ToolResult(True, content, data)
        else:
            err = ToolError.from_dict(value.get("error"), tool=tool) if "error" in value \
                else ToolError(content or "tool failed", tool=tool)
            if err.tool is None:
                err.tool = tool
            result = ToolResult(False, content or err.message, data, err)
    else:
        return _malformed(tool, "a ToolResult", f"`{type(value).__name__}`")
    if len(result.content) > MAX_RESULT_CHARS:
        return _malformed(tool, f"content of at most {MAX_RESULT_CHARS} characters",
                          f"{len(result.content)}")
    if result.data is not None:
        try:
            json.dumps(result.data, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return _malformed(tool, "JSON-serializable `data`", f"`{type(result.data).__name__}`")
    if result.error is not None and result.error.tool is None and tool:
        result.error.tool = tool
    return result


def error_result(exc: BaseException, *, tool: str | None = None) -> ToolResult:
    """An error ToolResult for an exception raised by plugin code (its text is clipped)."""
    if isinstance(exc, ToolError):
        if exc.tool is None:
            exc.tool = tool
        return ToolResult(False, exc.message, None, exc)
    detail = _clip(_safe_str(exc), MAX_ERROR_CHARS)
    message = f"raised `{type(exc).__name__}`" + (f": {detail}" if detail else "")
    return ToolResult.failure(ToolError(message, tool=tool, kind="exception"))


async def maybe_await(value: T | Awaitable[T]) -> T:
    """Await ``value`` if it is awaitable; plugin hooks may be sync or async."""
    if inspect.isawaitable(value):
        return await value
    return value


async def invoke_tool(tool: Tool, args: Any, *, timeout: float | None = None,
                      offload_sync: bool = False) -> ToolResult:
    """Validate, execute (sync or async) and coerce; never raises for plugin failures.

    ``timeout`` (seconds) turns a hang into an error result (kind ``timeout``).
    ``offload_sync`` runs a synchronous ``execute`` in a worker thread (contextvars such as
    the enforcer's plugin context are copied), so a blocking tool cannot stall the event
    loop and the timeout can fire; the thread itself cannot be killed, which is one more
    reason the default sandbox is a process. The enforcer's plugin context is the caller's job.
    """
    name = getattr(tool, "name", None) or _qualname(type(tool))
    try:
        clean = validate_arguments(tool, args)
    except ToolError as exc:
        return ToolResult(False, exc.message, None, exc)

    async def run() -> Any:
        if offload_sync and not inspect.iscoroutinefunction(tool.execute):
            import asyncio
            return await maybe_await(await asyncio.to_thread(tool.execute, clean))
        return await maybe_await(tool.execute(clean))

    try:
        if timeout is not None:
            import asyncio
            value = await asyncio.wait_for(run(), timeout)
        else:
            value = await run()
    except TimeoutError:
        return ToolResult.failure(ToolError(f"did not answer within {timeout:g} s", tool=name,
                                            kind="timeout", retryable=True))
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - plugin failures become results
        return error_result(exc, tool=name)
    return coerce_result(value, tool=name)


def invoke_tool_sync(tool: Tool, args: Any) -> ToolResult:
    """:func:`invoke_tool` for synchronous callers (tests, scripts) outside an event loop."""
    import asyncio  # not with the API: asyncio imports subprocess (and _posixsubprocess)
    return asyncio.run(invoke_tool(tool, args))


async def call_with_recovery(plugin: ToolPlugin, tool: Tool, args: Any, *,
                             invoke: Callable[[Tool, Any], Awaitable[ToolResult]] = invoke_tool,
                             max_retries: int = MAX_TOOL_RETRIES) -> ToolResult:
    """Call ``tool`` and let the plugin's ``on_tool_error`` decide what a failure becomes.

    ``invoke`` is the single-attempt call (the manager passes one that adds a timeout and
    the enforcer context). A failing or malformed ``on_tool_error`` means PROPAGATE.
    Invalid arguments are never retried: the same arguments would fail the same way.
    """
    name = getattr(tool, "name", "") or _qualname(type(tool))
    attempts = 0
    while True:
        result = await invoke(tool, args)
        if result.ok or result.error is None:
            return result
        if result.error.kind in ("invalid-arguments", "denied"):
            return result
        try:
            action = await maybe_await(plugin.on_tool_error(name, result.error))
        except (Exception, SystemExit):  # noqa: BLE001 - a broken handler changes nothing
            return result
        if not isinstance(action, RecoveryAction) or action.kind == "propagate":
            return result
        if action.kind == "fallback":
            assert action.result is not None
            return coerce_result(action.result, tool=name)
        attempts += 1
        if attempts > max_retries:
            return result


# ---------------------------------------------------------------------------------------
# internals


def _qualname(cls: type) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls.__name__)}"


def _schema_dict(tool: Tool) -> dict[str, Any]:
    schema = getattr(tool, "parameters", EMPTY_OBJECT_SCHEMA)
    if not isinstance(schema, Mapping):
        raise TypeError(f"parameters is {type(schema).__name__}, not a mapping")
    return _plain_copy(dict(schema))


def schema_key(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, allow_nan=False)


@functools.lru_cache(maxsize=1024)  # one compiled validator per distinct schema
def compiled_validator(key: str) -> Any:
    """The validator for a schema given as :func:`schema_key` text; ValueError if the schema
    is invalid. jsonschema is imported here, on the first schema, not with the API."""
    import jsonschema
    from jsonschema.validators import validator_for
    schema = json.loads(key)
    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise ValueError(exc.message) from None
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _describe(error: Any) -> tuple[str, str]:
    """(dotted field path, message) for one validation error, without echoing large input."""
    path = _field_path(error.absolute_path)
    instance = error.instance
    kind = error.validator
    if kind == "required" and isinstance(instance, Mapping):
        missing = [r for r in error.validator_value if r not in instance]
        if missing:
            return _join(path, missing[0]), "is required"
    if kind == "additionalProperties" and isinstance(instance, Mapping):
        known = set((error.schema or {}).get("properties", {}))
        extra = [k for k in instance if k not in known]
        if extra:
            return _join(path, str(extra[0])), "is not allowed"
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return path, f"must be {_article(expected)}, got {_json_type(instance)}"
    if kind == "enum":
        options = ", ".join(f"`{_clip(json.dumps(v), 40)}`" for v in error.validator_value[:10])
        return path, f"must be one of {options}"
    return path, _clip(error.message, 200)


def _field_path(parts: Sequence[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return f"`{type(value).__name__}`"


def _plain_copy(value: Any, depth: int = 0) -> Any:
    """A deep copy of JSON-like data as plain dicts and lists (tuples become lists)."""
    if depth > 100:
        raise ValueError("data nested more than 100 levels")
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): _plain_copy(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_copy(v, depth + 1) for v in value]
    return value


def _malformed(tool: str | None, expected: str, found: str) -> ToolResult:
    return ToolResult.failure(ToolError(f"returned a malformed result: expected {expected}, found {found}",
                                        tool=tool, kind="malformed-result"))


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a plugin's __str__ may itself raise
        return ""


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # noqa: BLE001
        return f"<{type(value).__name__}>"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "Plugin", "ToolPlugin", "ModelPlugin", "PromptPlugin", "ContextPlugin", "Tool", "ToolResult",
    "ToolError", "PluginConfig", "RecoveryAction", "LanguageModel", "PromptTemplate", "ToolSpec",
    "PLUGIN_TYPES", "plugin_types", "bind_manifest", "tool_spec", "validate_arguments",
    "coerce_result", "error_result", "maybe_await", "invoke_tool", "invoke_tool_sync",
    "call_with_recovery", "MAX_TOOL_RETRIES",
]
