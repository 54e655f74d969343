"""Compile manifests and policy files into CEL rules.

Manifest strings are data: they reach CEL only through ``cel_string`` (an escaped literal),
never spliced raw. Admin ``when:`` expressions are compiled and type-checked at load time and
their errors are reported at the file's own line and column.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from ._capabilities import directory_spellings, expand_path, is_glob, normalize_host, user_home
from ._cel import CelProgram, cel_string, get_backend
from ._cel._inline import resolution_key
from ._cel._static import check
from ._decision import Effect, RuleRef
from ._errors import CelCompileError, CelEvalError, PolicyError
from ._fastpath import NATIVE_TIER_BACKENDS, prepare, translatable
from ._models import Manifest, Match, PolicyFile, Rule
from ._netspec import parse_net
from ._request import ACTIONS, canonical_program
from ._yaml import Located


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to evaluate: selector (actions, plugins), CEL text and program, origin."""

    ref: RuleRef
    actions: frozenset[str]
    plugins: tuple[str, ...]
    cel: str
    program: CelProgram
    remembered: bool = False   # a remembered prompt answer (user grants file)
    builtin: bool = False      # built-in protection, never lifted by audit mode

    @property
    def id(self) -> str:
        return self.ref.id


def expand_actions(actions: tuple[str, ...]) -> frozenset[str]:
    if not actions:
        return frozenset(ACTIONS)
    out: set[str] = set()
    for a in actions:
        if a.endswith(".*"):
            out.update(x for x in ACTIONS if x.startswith(a[:-1]))
        else:
            out.add(a)
    return frozenset(out)


PROGRAM_CACHE_SIZE = 65536  # compiled programs kept across reloads; least recently used go first
_programs: dict[tuple, CelProgram] = {}   # insertion order = recency (a hit is re-inserted)


def compile_cached(backend, cel: str, expect_bool: bool = True, prechecked: bool = False) -> CelProgram:
    """Compile once per (backend, text): a reload recompiles only the rules that changed.
    Programs are immutable, so sharing them between PolicySets is safe; errors are not cached.
    A checked rule is translated for the native tier from the same parse tree at once; one
    the native tier decides is handed to the backend only when first evaluated (LazyProgram)."""
    key = (backend.name, cel, expect_bool, resolution_key(cel))
    program = _programs.pop(key, None)
    if program is not None:
        _programs[key] = program
        return program
    if expect_bool and not prechecked and backend.name in NATIVE_TIER_BACKENDS and _deferrable(cel):
        program = _checked_lazily(backend, cel)
    else:
        program = backend.compile(cel, expect_bool=expect_bool, prechecked=prechecked)
        if expect_bool and not prechecked and backend.name in NATIVE_TIER_BACKENDS:
            prepare(cel)
    _programs[key] = program
    while len(_programs) > PROGRAM_CACHE_SIZE:
        try:
            del _programs[next(iter(_programs))]
        except (KeyError, StopIteration, RuntimeError):   # another thread got there first
            break
    return program


_LONG_NUMBER = re.compile(r"\d{16}")


def _deferrable(cel: str) -> bool:
    """Whether the backend's compile of ``cel`` may wait for its first evaluation: a text with
    no escape and no long number (the spellings where the backend's own lexer could refuse
    what the shared parser accepts) that passes the static check is one the backend compiles."""
    return "\\" not in cel and _LONG_NUMBER.search(cel) is None


def _checked_lazily(backend, cel: str) -> CelProgram:
    """The static check now (every load error at load); the backend compile now only when the
    native tier cannot decide the rule, else at first evaluation."""
    try:
        check(cel, expect_bool=True)
    except CelCompileError:
        return backend.compile(cel, expect_bool=True)   # raises, with the backend's first error
    if not translatable(cel):
        return backend.compile(cel, expect_bool=True)
    return LazyProgram(backend, cel)


_lazy_lock = threading.Lock()


class LazyProgram:
    """A rule's backend program compiled when first evaluated (thread-safe). Its text passed
    the static check at load; should the backend still refuse it, every evaluation raises
    ``CelEvalError`` (the rule errs, which fails closed)."""

    __slots__ = ("source", "expect_bool", "_backend", "_program", "_error")

    def __init__(self, backend, source: str) -> None:
        self.source = source
        self.expect_bool = True
        self._backend = backend
        self._program: CelProgram | None = None
        self._error: str | None = None

    def evaluate(self, activation: Any) -> object:
        program = self._program
        if program is None:
            program = self._compile()
        return program.evaluate(activation)

    def _compile(self) -> CelProgram:
        with _lazy_lock:
            if self._program is None and self._error is None:
                try:
                    self._program = self._backend.compile(self.source, expect_bool=True)
                except CelCompileError as exc:
                    self._error = exc.message
        if self._program is None:
            raise CelEvalError(f"the backend cannot compile this rule: {self._error}")
        return self._program

    def __repr__(self) -> str:
        return f"<LazyProgram {self.source!r}>"


LOADED_FILES = 256   # policy files kept compiled by (path, bytes, backend, home); LRU
_files: dict[tuple, tuple] = {}


def loaded_file(path: str, text: str, backend_name: str, home: str | None) -> tuple | None:
    """(PolicyFile, Located, compiled rules) of a policy file loaded before with exactly
    these bytes, backend and home, or None. Everything in it is immutable."""
    key = (path, text, backend_name, home)
    hit = _files.pop(key, None)
    if hit is not None:
        _files[key] = hit
    return hit


def remember_file(path: str, text: str, backend_name: str, home: str | None, entry: tuple) -> None:
    _files[(path, text, backend_name, home)] = entry
    while len(_files) > LOADED_FILES:
        try:
            del _files[next(iter(_files))]
        except (KeyError, StopIteration, RuntimeError):   # another thread got there first
            break


def clear_compile_caches() -> None:
    """Forget compiled programs, recent CEL parse trees and native translations. Nothing
    depends on them for correctness; benchmarks use this to measure cold compiles."""
    from ._cel import _parser, _static
    from ._fastpath import clear_cache

    _programs.clear()
    _static._by_shape.clear()
    _files.clear()
    _parser._trees.clear()
    clear_cache()


def forget_directories(moved: frozenset[str]) -> None:
    """Forget the compiled programs, loaded files and native translations that may hold the
    old spellings of the rule directories ``moved`` (a process child resolving
    ``/proc/self`` to its own pid keeps every other compiled rule). A text is taken to name
    one when it contains it, or may spell it in a way a substring test cannot see (an escape)
    or take it from ``plugin`` (bound per plugin)."""
    from ._fastpath import forget

    def stale(cel: str) -> bool:
        return "\\" in cel or "plugin" in cel or any(d in cel for d in moved)

    for key in [k for k in list(_programs) if stale(k[1])]:
        _programs.pop(key, None)
    for key, entry in list(_files.items()):
        if any(stale(rule.cel) for rule in entry[2]):
            _files.pop(key, None)
    forget(stale)


def cel_parse_count() -> int:
    """How many times the CEL parser has run in this process."""
    from ._cel import _parser

    return _parser.parses


def _compile(backend, cel: str) -> CelProgram:
    return compile_cached(backend, cel, True)


def match_cel(match: Match, home: str | None = None) -> str:
    """The CEL of a rule's ``match``: ``request.F == <literal>`` for each field, AND-ed. Every
    string goes through ``cel_string``, so no value can change the expression's shape."""
    parts = []
    for name, value in match.fields():
        if isinstance(value, int):
            lit = str(int(value))
        elif isinstance(value, tuple):
            lit = "[" + ", ".join(cel_string(v) for v in value) + "]"
        elif name == "path":
            lit = cel_string(expand_path(value, home))
        elif name == "host":
            lit = cel_string(normalize_host(value))
        else:
            lit = cel_string(value)
        parts.append(f"request.{name} == {lit}")
    return " && ".join(parts)


def _rule_program(rule: Rule, i: int, located: Located, backend, home: str | None) -> tuple[str, CelProgram]:
    """The CEL text and program of one rule: its ``when``, its ``match``, or both AND-ed."""
    if rule.match is None or "when" in rule.model_fields_set:
        try:
            program = _compile(backend, rule.when)
        except CelCompileError as exc:
            raise _relocate(exc, located, ("rules", i, "when"), rule.id, rule.when) from None
        if rule.match is None:
            return rule.when, program
    cel = match_cel(rule.match, home)
    if "when" in rule.model_fields_set:
        cel = f"{cel} && ({rule.when}\n)"   # the newline ends a trailing `// comment`
    try:
        return cel, _compile(backend, cel)
    except CelCompileError as exc:   # e.g. a value longer than a string literal may be
        raise located.error(("rules", i, "match"), f"rule `{rule.id}`: invalid `match`: {exc.message}",
                            exc.fix or "shorten the value") from None


def compile_policy(policy: PolicyFile, located: Located, backend=None, *,
                   remembered: bool = False, home: str | None = None) -> list[CompiledRule]:
    """Compile one policy file's rules; CEL errors are reported at file:line:column."""
    backend = backend or get_backend()
    out: list[CompiledRule] = []
    seen: dict[str, int] = {}
    for i, rule in enumerate(policy.rules):
        line, _ = located.where(("rules", i))
        if rule.id in seen:
            raise located.error(("rules", i, "id"), f"duplicate rule id `{rule.id}` (first on line {seen[rule.id]})",
                                "give every rule a unique id")
        seen[rule.id] = line or 0
        cel, program = _rule_program(rule, i, located, backend, home)
        ref = RuleRef(rule.id, Effect(rule.effect), policy.layer, f"{located.file}:{line}",
                      rule.message, rule.mode)
        out.append(CompiledRule(ref, expand_actions(rule.actions), rule.plugins, cel,
                                program, remembered=remembered))
    return out


def _relocate(exc: CelCompileError, located: Located, path: tuple, rule_id: str,
              source: str = "") -> PolicyError:
    """Map a line/column inside a `when:` expression to the policy file's line/column."""
    vline, vcol, style = located.values.get(path, (None, None, None))
    line, col = vline, vcol
    if vline is not None and exc.line is not None:
        if style in ("|", ">"):
            line, col = _block_position(located, vline, source, exc.line, exc.column or 1)
        else:
            line = vline + exc.line - 1
            if exc.line == 1 and exc.column is not None:
                col = vcol + exc.column - 1 + (1 if style in ("'", '"') else 0)  # type: ignore[operator]
            else:
                col = exc.column
    return PolicyError(f"rule `{rule_id}`: invalid `when` expression: {exc.message}",
                       file=located.file, line=line, column=col,
                       fix=exc.fix or "fix the CEL expression")


def _block_position(located: Located, header_line: int, source: str, line: int,
                    column: int) -> tuple[int, int | None]:
    """Position in the file of (line, column) of a block scalar's text (`|` or `>`): both
    styles join the content lines with one character, so offsets map line by line."""
    offset = sum(len(x) + 1 for x in source.split("\n")[:line - 1]) + column - 1
    try:
        with open(located.file, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return header_line + line, None
    body = lines[header_line:]
    indent = None
    for i, text in enumerate(body):
        if not text.strip():
            offset -= 1
            continue
        here = len(text) - len(text.lstrip(" "))
        if indent is None:
            indent = here
        elif here < indent:
            break
        content = text[indent:]
        if offset < len(content) + 1:
            return header_line + i + 1, indent + max(offset, 0) + 1
        offset -= len(content) + 1
    return header_line + line, None


def manifest_rules(manifest: Manifest, located: Located | None, backend=None,
                   home: str | None = None) -> list[CompiledRule]:
    """The allow rules a plugin's (approved) manifest grants."""
    backend = backend or get_backend()
    file = located.file if located else f"<manifest {manifest.id}>"
    caps = manifest.capabilities
    out: list[CompiledRule] = []

    def add(name: str, actions: tuple[str, ...], cel: str, path: tuple) -> None:
        line = located.where(path)[0] if located else None
        origin = f"{file}:{line}" if line else file
        ref = RuleRef(f"manifest:{manifest.id}:{name}", Effect.ALLOW, "manifest", origin)
        out.append(CompiledRule(ref, frozenset(actions), (manifest.id,), cel, _compile(backend, cel)))

    add("load", ("plugin.load", "tool.call"), "true", ("id",))
    for kind, action in (("read", "fs.read"), ("write", "fs.write")):
        for i, p in enumerate(getattr(caps.filesystem, kind)):
            add(f"filesystem.{kind}[{i}]", (action,), path_cel(p, home), ("capabilities", "filesystem", kind, i))
    for i, entry in enumerate(caps.network):
        spec = parse_net(entry)
        if spec.cidr:
            host = f"in_cidr(request.host, {cel_string(spec.cidr)})"
        else:
            host = f"host_matches(request.host, {cel_string(spec.host)})"
        path = ("capabilities", "network", i)
        add(f"network[{i}].resolve", ("net.resolve",), host, path)
        cel = host if spec.port is None else f"{host} && request.port == {int(spec.port)}"
        add(f"network[{i}]", ("net.connect",), cel, path)
    for i, name in enumerate(caps.environment):
        add(f"environment[{i}]", ("env.read",), f"env_matches(request.name, {cel_string(name)})",
            ("capabilities", "environment", i))
    for i, prog in enumerate(caps.process):
        # the file the kernel will execute, found as Request finds it (argv is only data)
        cel = f"request.path == {cel_string(canonical_program(prog))}"
        add(f"process[{i}]", ("process.exec",), cel, ("capabilities", "process", i))
    if caps.native:
        add("native", ("native.load",), "true", ("capabilities", "native"))
    return out


def path_cel(pattern: str, home: str | None = None) -> str:
    """CEL for a filesystem capability: a directory (component boundaries) or a glob."""
    if is_glob(pattern):
        expanded = pattern
        if pattern.startswith("~"):
            expanded = (home or user_home()) + pattern[1:]
        return f"glob(request.path, {cel_string(expanded)})"
    return f"within(request.path, {cel_string(expand_path(pattern, home))})"


def builtin_rules(protected: list[tuple[str, str]], backend=None) -> list[CompiledRule]:
    """Deny writes to the policy files and directories, grants, audit log, plugin dirs and
    keys (docs/design.md §4), by the path as given and as resolved at load; and deny renaming,
    removing or re-moding any ancestor of them (which would swap the protected path out)."""
    backend = backend or get_backend()
    out = []
    ancestors: dict[str, None] = {}
    for i, (path, why) in enumerate(protected):
        lexical = expand_path(path)
        cel = f"within(request.path, {cel_string(lexical)})"   # `within` also resolves it
        ref = RuleRef(f"builtin:protect[{i}]", Effect.DENY, "builtin", f"<built-in: {why}>",
                      f"{why} cannot be written by plugins")
        out.append(CompiledRule(ref, frozenset({"fs.write"}), ("*",), cel, _compile(backend, cel),
                                builtin=True))
        for spelling in directory_spellings(lexical):
            ancestors.update(dict.fromkeys(path_ancestors(spelling)))
    if ancestors:
        items = ", ".join(cel_string(a) for a in sorted(ancestors))
        cel = f"request.path in [{items}]"
        ref = RuleRef("builtin:protect-ancestors", Effect.DENY, "builtin",
                      "<built-in: ancestors of protected paths>",
                      "an ancestor of the policy, grants, audit log or plugin directories cannot "
                      "be renamed, removed or changed by plugins")
        out.append(CompiledRule(ref, frozenset({"fs.write"}), ("*",), cel,
                                compile_cached(backend, cel, True), builtin=True))
    return out


def path_ancestors(path: str) -> list[str]:
    """Every proper ancestor directory of an absolute ``path``, ``/`` included."""
    out = []
    p = path.rstrip("/")
    while p and p != "/":
        p = p.rsplit("/", 1)[0] or "/"
        out.append(p)
    return out
