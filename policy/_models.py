"""The manifest (plugin.yaml) and policy-file schemas, validated strictly with pydantic."""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ._errors import PolicyError
from ._license import spdx_license
from ._limits import Limits
from ._request import ACTIONS
from ._versions import is_semver, parse_requires
from ._yaml import Located, load_yaml, load_yaml_file, read_text

API_VERSION = "promptline/v1"
SUPPORTED_API_VERSIONS = (API_VERSION,)
MAX_RULES = 5_000          # per policy file; far beyond any real policy
MAX_CAPABILITY_ENTRIES = 500  # per capability list in a manifest

PLUGIN_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\Z")
RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\Z")
ENV_PATTERN = re.compile(r"^(\*|[A-Za-z_][A-Za-z0-9_]*\*?|\*[A-Za-z0-9_]+)\Z")
PLUGIN_GLOB = re.compile(r"^[a-z0-9*?\[\]!-]{1,64}\Z")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


def _no_control(value: str, what: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{what} contains a control character")
    return value


class Filesystem(_Strict):
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()

    @field_validator("read", "write")
    @classmethod
    def _paths(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(v) > MAX_CAPABILITY_ENTRIES:
            raise ValueError(f"more than {MAX_CAPABILITY_ENTRIES} entries")
        for p in v:
            _no_control(p, "path")
            if not p:
                raise ValueError("empty path")
            if not (p.startswith("/") or p.startswith("~") or p.startswith("**")):
                raise ValueError(f"path `{p}` must be absolute or start with `~`")
        return v


class Capabilities(_Strict):
    network: tuple[str, ...] = ()
    filesystem: Filesystem = Filesystem()
    environment: tuple[str, ...] = ()
    process: tuple[str, ...] = ()
    native: bool = False

    @field_validator("network")
    @classmethod
    def _network(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from ._netspec import parse_net
        if len(v) > MAX_CAPABILITY_ENTRIES:
            raise ValueError(f"more than {MAX_CAPABILITY_ENTRIES} entries")
        for entry in v:
            parse_net(entry)
        return v

    @field_validator("environment")
    @classmethod
    def _env(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not ENV_PATTERN.match(name):
                raise ValueError(f"environment entry `{name}` must be a NAME or a `PREFIX_*` pattern")
        return v

    @field_validator("process")
    @classmethod
    def _process(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            _no_control(p, "program")
            if not p:
                raise ValueError("empty program name")
        return v


class Entry(_Strict):
    python: str | None = None
    command: tuple[str, ...] | None = None
    wasm: str | None = None
    library: str | None = None     # a shared library with the C ABI of examples/native-tools

    @model_validator(mode="after")
    def _exactly_one(self) -> Entry:
        given = [k for k in ("python", "command", "wasm", "library") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("entry needs exactly one of `python`, `command`, `wasm`, `library`")
        if self.library is not None:
            parts = self.library.split("/")
            if self.library.startswith("/") or ".." in parts or not re.match(r"^[\w./+-]+\.so(\.\d+)*\Z", self.library):
                raise ValueError("entry.library must be a `.so` file inside the plugin, like `libtools.so`")
        if self.python is not None and not re.match(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?\Z", self.python):
            raise ValueError("entry.python must look like `module.path:ClassName`")
        if self.command is not None and not self.command:
            raise ValueError("entry.command must name a program")
        return self

    @property
    def kind(self) -> str:
        if self.library is not None:
            return "library"
        return "python" if self.python is not None else "command" if self.command is not None else "wasm"


class Manifest(_Strict):
    """A plugin's declaration of what it is and what it needs (docs/design.md §3)."""

    apiVersion: Literal["promptline/v1"] = API_VERSION  # type: ignore[assignment]
    id: str
    name: str = ""
    version: str
    description: str = ""
    publisher: str = ""
    requires: str = ""
    types: tuple[Literal["tool", "model", "prompt", "context"], ...] = ("tool",)
    entry: Entry
    sandbox: Literal["none", "process", "container", "wasm"] = "process"
    capabilities: Capabilities = Capabilities()
    config: dict[str, Any] = Field(default_factory=dict)
    limits: Limits = Limits()          # resource limits asked (policy/_limits.py), capped by policy

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not PLUGIN_ID.match(v):
            raise ValueError(f"plugin id `{v}` must be 1-64 of [a-z0-9-], not starting or ending with `-`")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not is_semver(v):
            raise ValueError(f"version `{v}` is not semantic versioning (MAJOR.MINOR.PATCH)")
        return v

    @field_validator("requires")
    @classmethod
    def _requires(cls, v: str) -> str:
        if v:
            parse_requires(v)
        return v

    @model_validator(mode="after")
    def _library_is_native(self) -> Manifest:
        """A library entry is native code: `capabilities.native` is implied (and approved as such)."""
        if self.entry.library is not None and not self.capabilities.native:
            return self.model_copy(update={"capabilities": self.capabilities.model_copy(update={"native": True})})
        return self

    # -- marketplace metadata and plugin dependencies (docs/registry.md) --------------
    author: str = ""
    homepage: str = ""
    repository: str = ""
    issues: str = ""
    license: str = ""
    keywords: tuple[str, ...] = ()
    dependencies: dict[str, str] = Field(default_factory=dict)   # plugin id -> PEP 440 specifier

    @field_validator("homepage", "repository", "issues")
    @classmethod
    def _link(cls, v: str) -> str:
        if v and not re.match(r"^https?://[^\s<>\"'`]+$", v):
            raise ValueError(f"link `{v[:60]}` must be an http:// or https:// URL")
        return v

    @field_validator("author")
    @classmethod
    def _line(cls, v: str) -> str:
        return _no_control(v, "text")

    @field_validator("license")
    @classmethod
    def _license(cls, v: str) -> str:
        return spdx_license(v) if v else v

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for k in v:
            if not re.match(r"^[a-z0-9][a-z0-9 ._+-]{0,39}$", k):
                raise ValueError(f"keyword `{k[:40]}` must be 1-40 of lower-case letters, digits, ` ._+-`")
        return v

    @field_validator("dependencies")
    @classmethod
    def _dependencies(cls, v: dict[str, str]) -> dict[str, str]:
        for dep, spec in v.items():
            if not PLUGIN_ID.match(dep):
                raise ValueError(f"dependency `{dep[:64]}` is not a plugin id")
            if spec:
                parse_requires(spec)
        return v

    @model_validator(mode="after")
    def _not_self(self) -> Manifest:
        if self.id in self.dependencies:
            raise ValueError(f"plugin `{self.id}` cannot depend on itself")
        return self


class Settings(_Strict):
    require_signature: bool | None = None
    trusted_keys: tuple[str, ...] | None = None
    approve: Literal["review", "declared", "policy-only"] | None = None
    sandbox_minimum: Literal["none", "process", "container", "wasm"] | None = None
    trust: tuple[str, ...] | None = None          # plugin id globs trusted to run in process
    mode: Literal["enforce", "audit"] | None = None
    plugin_modes: dict[str, Literal["enforce", "audit"]] | None = None
    audit_allows: bool | None = None
    mask_fields: tuple[str, ...] | None = None
    limits: Limits | None = None       # caps on every plugin's `limits:` (lower layers only lower them)
    locked: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _locked_known(self) -> Settings:
        for name in self.locked:
            if name not in SETTING_NAMES:
                raise ValueError(f"cannot lock unknown setting `{name}`")
        for key in self.trusted_keys or ():
            if not re.match(r"^ed25519:[A-Za-z0-9+/=_-]{40,60}\Z", key):
                raise ValueError(f"trusted key `{key[:40]}` must look like `ed25519:<base64>`")
        return self


SETTING_NAMES = ("require_signature", "trusted_keys", "approve", "sandbox_minimum", "trust",
                 "mode", "plugin_modes", "audit_allows", "mask_fields", "limits")


class Match(_Strict):
    """A rule's structured condition: request fields that must equal these values exactly
    (all of them). The compiler writes each value into CEL as a string literal
    (``cel_string``), so a value is always data; ``path`` (``~`` allowed) and ``host`` are
    compared in the normal form a request has (``..`` folded, host lower-case)."""

    path: StrictStr | None = None
    host: StrictStr | None = None
    port: StrictInt | None = Field(default=None, ge=0, le=65535)
    scheme: StrictStr | None = None
    url: StrictStr | None = None
    name: StrictStr | None = None
    argv: tuple[StrictStr, ...] | None = None
    tool: StrictStr | None = None
    plugin: StrictStr | None = None

    @field_validator("path", "host", "scheme", "url", "name", "tool", "plugin")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        if v is not None:
            _no_surrogates(v)
        return v

    @field_validator("argv")
    @classmethod
    def _argv(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for item in v or ():
            _no_surrogates(item)
        return v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and not (v.startswith("/") or v == "~" or v.startswith("~/")):
            raise ValueError(f"path `{v}` must be absolute (start with `/` or `~/`)")
        return v

    @model_validator(mode="after")
    def _some(self) -> Match:
        if not self.fields():
            raise ValueError("`match` needs at least one field, e.g. `match: {path: /data/x}`")
        return self

    def fields(self) -> tuple[tuple[str, str | int | tuple[str, ...]], ...]:
        """(field, value) for every field given, in declaration order."""
        return tuple((k, v) for k in type(self).model_fields if (v := getattr(self, k)) is not None)


def _no_surrogates(value: str) -> None:
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("contains undecodable characters (lone surrogates)")


class Rule(_Strict):
    id: str
    effect: Literal["deny", "ask", "allow"]
    actions: tuple[str, ...] = ()   # empty: every action
    plugins: tuple[str, ...] = ("*",)
    when: str = "true"
    match: Match | None = None      # exact request fields; AND-ed with `when` when both given
    message: str = ""
    description: str = ""
    mode: Literal["enforce", "audit"] = "enforce"

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not RULE_ID.match(v):
            raise ValueError(f"rule id `{v}` must be letters, digits and `_.:-`")
        return v

    @field_validator("actions")
    @classmethod
    def _actions(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for a in v:
            if a not in ACTIONS and not (a.endswith(".*") and any(x.startswith(a[:-1]) for x in ACTIONS)):
                raise ValueError(f"unknown action `{a}`; use one of {', '.join(ACTIONS)} or a prefix like `fs.*`")
        return v

    @field_validator("plugins")
    @classmethod
    def _plugins(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            if not PLUGIN_GLOB.match(p):
                raise ValueError(f"plugin selector `{p}` must be a plugin id or glob like `db-*`")
        return v


class PolicyFile(_Strict):
    """One admin-written policy file (docs/design.md §4)."""

    apiVersion: str
    kind: Literal["Policy"]
    layer: Literal["org", "project", "user"]
    description: str = ""
    settings: Settings = Settings()
    rules: tuple[Rule, ...] = ()

    @field_validator("apiVersion")
    @classmethod
    def _api(cls, v: str) -> str:
        if v not in SUPPORTED_API_VERSIONS:
            raise ValueError(f"unsupported apiVersion `{v}`; this PromptLine reads {', '.join(SUPPORTED_API_VERSIONS)}")
        return v

    @field_validator("rules")
    @classmethod
    def _rules(cls, v: tuple[Rule, ...]) -> tuple[Rule, ...]:
        if len(v) > MAX_RULES:
            raise ValueError(f"more than {MAX_RULES} rules")
        return v


# ---------------------------------------------------------------------------------------
# Loading with file:line:column errors

_FIXES = {
    "extra_forbidden": "remove it or check its spelling",
    "missing": "add it",
    "literal_error": "use one of the allowed values",
    "string_type": "write it as a quoted string",
    "bool_type": "write true or false",
    "tuple_type": "write a YAML list",
    "dict_type": "write a YAML mapping",
    "model_type": "write a YAML mapping",
}


def validation_error(exc: ValidationError, located: Located, what: str) -> PolicyError:
    """Turn pydantic's first error into one PolicyError pointing at the offending YAML."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x in ("function-after", "function-before")))
    # pydantic adds union/literal branch names to loc; keep only real keys/indexes
    clean: list[Any] = []
    node = located.data
    for part in loc:
        if isinstance(node, dict) and part in node:
            clean.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            clean.append(part)
            node = node[part]
        elif err["type"] in ("extra_forbidden", "missing"):
            clean.append(part)
            break
        else:
            break
    dotted = ".".join(str(p) for p in clean) or what
    kind = err["type"]
    if kind == "extra_forbidden":
        message = f"unknown key `{dotted}`"
    elif kind == "missing":
        message = f"missing required key `{dotted}`"
    else:
        msg = err["msg"]
        msg = msg.removeprefix("Value error, ")
        message = f"`{dotted}`: {msg[:1].lower()}{msg[1:]}"
    fix = (err.get("ctx") or {}).get("fix") or _FIXES.get(kind)
    if kind == "literal_error":
        fix = f"use {err['ctx'].get('expected', 'an allowed value')}" if err.get("ctx") else fix
    path = tuple(clean[:-1]) if kind == "missing" else tuple(clean)
    return located.error(path, message, fix or "see the schema in the README")


def _require_mapping(located: Located, what: str) -> dict:
    if not isinstance(located.data, dict):
        raise located.error((), f"a {what} must be a YAML mapping, got {type(located.data).__name__}",
                            f"start the file with the keys of a {what}")
    return located.data


def parse_manifest(located: Located) -> Manifest:
    data = _require_mapping(located, "manifest")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, located, "manifest") from None


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate a plugin.yaml; raise PolicyError with file:line:column."""
    return parse_manifest(load_yaml_file(path))


def load_manifest_located(path: str | os.PathLike) -> tuple[Manifest, Located]:
    located = load_yaml_file(path)
    return parse_manifest(located), located


def parse_policy(located: Located) -> PolicyFile:
    data = _require_mapping(located, "policy")
    if "apiVersion" not in data:
        raise located.error((), "missing required key `apiVersion`", f"add `apiVersion: {API_VERSION}`")
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, located, "policy") from None


def load_policy_file(path: str | os.PathLike) -> tuple[PolicyFile, Located]:
    located = load_yaml_file(path)
    return parse_policy(located), located


__all__ = ["Manifest", "PolicyFile", "Rule", "Settings", "Capabilities", "Filesystem", "Entry",
           "load_manifest", "load_policy_file", "parse_manifest", "parse_policy", "read_text",
           "load_yaml"]
