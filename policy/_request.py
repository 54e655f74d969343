"""Requests: what a plugin (or the core on its behalf) wants to do."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ._canon import host_spellings, program_path
from ._capabilities import expand_path

ACTIONS = (
    "plugin.load", "tool.call", "fs.read", "fs.write", "net.resolve", "net.connect",
    "net.bind", "env.read", "env.write", "process.exec", "native.load",
)
"""Every action a request may carry (docs/design.md §5)."""

_ACTION_SET = frozenset(ACTIONS)

REQUEST_FIELDS = ("action", "plugin", "path", "host", "port", "scheme", "url", "name",
                  "argv", "tool", "args")
"""Fields visible to CEL as ``request.<field>``; absent fields read as empty values."""

_STR_FIELDS = ("action", "plugin", "path", "host", "scheme", "url", "name", "tool", "args")
MAX_FIELD_CHARS = 65536   # characters of one field read from the wire
MAX_ARGV = 256            # argv items read from the wire

_setattr = object.__setattr__

PLUGIN_FIELDS = ("id", "version", "publisher", "signed", "sandbox", "trusted", "capabilities")
"""Fields visible to CEL as ``plugin.<field>``."""


@dataclass(frozen=True, init=False)
class Request:
    """One guarded operation, attributed to a plugin, in canonical form (docs/design.md §5a).

    On construction: ``path`` gets ``~`` expanded, made absolute and ``..`` folded lexically
    (the enforcer resolves symlinks first, in POSIX order, and passes the lexical spelling
    as an alias); ``host`` is canonical (``policy._canon.host_spellings``; its other
    spellings become aliases); for ``process.exec`` the program is the file the kernel will
    run (``path``, else ``argv[0]`` looked up in ``$PATH``; ``realpath``). A NUL in any
    field is refused with ``ValueError``.

    ``aliases`` are other spellings of the resource (the ``path`` of ``fs.*``,
    ``process.exec`` and ``native.load``, the ``host`` of ``net.*``): a deny or ask rule
    matches when it matches the request or any alias; an allow only judges the request.
    """

    action: str
    plugin: str
    path: str = ""
    host: str = ""
    port: int = 0
    scheme: str = ""
    url: str = ""
    name: str = ""
    argv: tuple[str, ...] = ()
    tool: str = ""
    args: str = ""  # canonical JSON text of tool arguments, so the request stays hashable
    aliases: tuple[str, ...] = ()
    _key: tuple = field(default=(), init=False, repr=False, compare=False)
    _given: str = field(default="", init=False, repr=False, compare=False)

    # A hand-written __init__: the fields are stored with one assignment of the instance
    # dict instead of one object.__setattr__ per field (a frozen dataclass's own __init__),
    # and an already-canonical request (absolute normal path, canonical host) is not
    # rewritten. The checks and canonical forms are exactly those documented above.
    def __init__(self, action: str, plugin: str, path: str = "", host: str = "", port: int = 0,
                 scheme: str = "", url: str = "", name: str = "", argv: tuple[str, ...] = (),
                 tool: str = "", args: str = "", aliases: tuple[str, ...] = ()) -> None:
        if action not in _ACTION_SET:
            raise ValueError(f"unknown action `{action}` — use one of {', '.join(ACTIONS)}")
        if type(argv) is not tuple:
            argv = tuple(argv)
        if type(aliases) is not tuple:
            aliases = tuple(aliases)
        try:   # one check for every str field: a NUL anywhere, or a field that is not a str
            clean = "\x00" not in (action + plugin + path + host + scheme + url + name + tool + args)
        except TypeError:
            clean = False
        if not clean or argv or aliases or type(port) is not int:
            _refuse_nul(action, plugin, path, host, port, scheme, url, name, argv, tool, args, aliases)
        given_aliases = aliases
        given = ""
        if action == "process.exec":
            program = path or (argv[0] if argv else "")
            resolved = canonical_program(program)
            if resolved != path:
                if path:
                    aliases = aliases + (path,)
                path = resolved
        elif path and not (path[0] == "/" and "/." not in path and "//" not in path
                           and (len(path) == 1 or path[-1] != "/")):
            # already-normal absolute paths skip this; the spelling as given (absolute, `..`
            # not folded) is kept for the enforcer, which resolves it in POSIX order
            given = given_path(path)
            path = expand_path(path)
        if host:
            spellings = host_spellings(host)
            host = spellings[0]
            if len(spellings) > 1:
                aliases = aliases + spellings[1:]
        if aliases:
            main = host if action.startswith("net.") else path
            aliases = tuple(a for a in dict.fromkeys(aliases) if a and a != main)
            if aliases == given_aliases:
                aliases = given_aliases
        # the cache key: every field; the short form when only the common ones are set
        # (a 6-tuple never equals a 12-tuple, so the key stays one-to-one)
        if scheme or url or argv or tool or args or aliases:
            _setattr(self, "__dict__", {
                "action": action, "plugin": plugin, "path": path, "host": host, "port": port,
                "scheme": scheme, "url": url, "name": name, "argv": argv, "tool": tool,
                "args": args, "aliases": aliases, "_given": given,
                "_key": (action, plugin, path, host, port, scheme, url, name, argv, tool, args,
                         aliases)})
        else:
            # the empty fields (all str or tuple by now) read their class defaults, "" and ()
            fields = {"action": action, "plugin": plugin, "path": path, "host": host,
                      "port": port, "name": name, "_key": (action, plugin, path, host, port, name)}
            if given:
                fields["_given"] = given
            _setattr(self, "__dict__", fields)

    def variants(self) -> tuple[Request, ...]:
        """The request once per alias (the alias in the resource field), for deny and ask."""
        if not self.aliases:
            return ()
        key = "host" if self.action.startswith("net.") else "path"
        out = []
        for alias in self.aliases:
            fields = {f: getattr(self, f) for f in REQUEST_FIELDS}
            fields[key] = alias
            out.append(Request(**fields))
        return tuple(out)

    @classmethod
    def tool_call(cls, plugin: str, tool: str, args: Any = None) -> Request:
        return cls("tool.call", plugin, tool=tool,
                   args=json.dumps(args if args is not None else {}, sort_keys=True, default=str))

    @property
    def given_path(self) -> str:
        """The path as given, made absolute but with ``..`` not folded (what the kernel
        resolves); ``path`` when it was already normal."""
        return self._given or self.path

    @property
    def key(self) -> tuple:
        """Hashable normalized form, used as the decision-cache key."""
        return self._key

    @property
    def resource(self) -> str:
        """A one-line description of what is accessed (for messages and the audit log)."""
        a = self.action
        if a.startswith("fs."):
            return self.path
        if a.startswith("net."):
            if self.url:
                return self.url
            return f"{self.host}:{self.port}" if self.port else self.host
        if a.startswith("env."):
            return self.name
        if a == "process.exec":
            return " ".join(self.argv) or self.path
        if a == "native.load":
            return self.name or self.path
        if a == "tool.call":
            return self.tool
        return self.plugin

    def to_cel(self) -> dict[str, Any]:
        """The ``request`` variable as CEL sees it."""
        try:
            args = json.loads(self.args) if self.args else {}
        except ValueError:
            args = {}
        return {"action": self.action, "plugin": self.plugin, "path": self.path,
                "host": self.host, "port": self.port, "scheme": self.scheme, "url": self.url,
                "name": self.name, "argv": list(self.argv), "tool": self.tool, "args": args}

    def to_dict(self) -> dict[str, Any]:
        """Non-empty fields only (for JSON output and the audit log)."""
        out: dict[str, Any] = {}
        for f in REQUEST_FIELDS + ("aliases",):
            v = getattr(self, f)
            if v not in ("", 0, ()):
                out[f] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, data: Any, *, plugin: str | None = None) -> Request:
        """The inverse of :meth:`to_dict`, validated (wire input is hostile): ValueError
        names the first bad field. ``plugin`` overrides whatever plugin the data names (a
        sandboxed child speaks only for itself)."""
        if type(data) is not dict:
            raise ValueError("a request must be an object")
        extra = set(data) - set(REQUEST_FIELDS) - {"aliases"}
        if extra:
            raise ValueError(f"unknown request field `{sorted(extra)[0][:40]}`")
        fields: dict[str, Any] = {}
        for name in _STR_FIELDS:
            value = data.get(name, "")
            if type(value) is not str or len(value) > MAX_FIELD_CHARS:
                raise ValueError(f"`{name}` must be a string of at most {MAX_FIELD_CHARS} characters")
            fields[name] = value
        port = data.get("port", 0)
        if type(port) is not int or not 0 <= port <= 65535:
            raise ValueError("`port` must be an integer in 0..65535")
        argv = data.get("argv", [])
        if type(argv) is not list or len(argv) > MAX_ARGV or not all(type(a) is str for a in argv):
            raise ValueError(f"`argv` must be a list of at most {MAX_ARGV} strings")
        aliases = data.get("aliases", [])   # only ever make a deny or ask more likely
        if type(aliases) is not list or len(aliases) > MAX_ARGV or not all(
                type(a) is str and len(a) <= MAX_FIELD_CHARS for a in aliases):
            raise ValueError(f"`aliases` must be a list of at most {MAX_ARGV} strings")
        if plugin is not None:
            fields["plugin"] = plugin
        return cls(port=port, argv=tuple(argv), aliases=tuple(aliases), **fields)


PSEUDO_PROGRAMS = frozenset({"fork", "kill", "webbrowser"})
"""``process.exec`` paths the enforcer uses for operations that run no new program
(``os.fork``, ``os.kill``, ``webbrowser.open``); never looked up in ``$PATH``."""


def canonical_program(program: str) -> str:
    """The program a ``process.exec`` request is judged by: the file the kernel will run
    (``policy._canon.program_path``), or a pseudo-program name as it is."""
    if not program or program in PSEUDO_PROGRAMS:
        return program
    return program_path(program)


def _refuse_nul(action, plugin, path, host, port, scheme, url, name, argv, tool, args,
                aliases) -> None:
    values = dict(zip(_STR_FIELDS, (action, plugin, path, host, scheme, url, name, tool, args)))
    try:
        joined = "".join(values.values())
    except TypeError:
        joined = None
    if joined is None or "\x00" in joined:
        for f, value in values.items():
            if type(value) is not str:
                raise ValueError(f"request field `{f}` must be a str, got {type(value).__name__}")
            if "\x00" in value:
                raise ValueError(f"request field `{f}` contains a NUL character — no file, host "
                                 "or name contains one; pass the value without it")
    for f, items in (("argv", argv), ("aliases", aliases)):
        if items:
            for item in items:
                if type(item) is not str or "\x00" in item:
                    raise ValueError(f"request field `{f}` holds a non-string or a NUL "
                                     "character — pass a list of plain strings")
    if type(port) is not int:
        raise ValueError(f"request field `port` must be an int, got {type(port).__name__}")



def given_path(path: str) -> str:
    """``~`` expanded and made absolute, nothing folded."""
    if path.startswith("~"):
        path = expand_path(path.split("/", 1)[0]) + ("/" + path.split("/", 1)[1] if "/" in path else "")
    if not path.startswith("/"):
        path = os.path.join(os.getcwd(), path)
    return path
