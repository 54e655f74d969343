"""PolicySet: an immutable, versioned set of compiled rules that decides requests.

Order (docs/design.md §4): any matching deny -> DENY; any matching ask without a remembered
answer -> ASK; any matching allow -> ALLOW; otherwise DENY by default. A deny (or ask) whose
evaluation errors counts as matching (fail closed); an allow that errors does not match.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
import hashlib
import os
import stat
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._baseline import baseline_rules
from ._canon import private_realpath
from ._capabilities import expand_path, glob, is_glob, refresh_resolutions, user_home, within
from ._cel import get_backend
from ._compile import (
    CompiledRule,
    builtin_rules,
    clear_compile_caches,
    compile_cached,
    compile_policy,
    forget_directories,
    loaded_file,
    manifest_rules,
    remember_file,
)
from ._decision import DecidedBy, Decision, Effect, RuleRef, Verdict
from ._errors import CelCompileError, CelEvalError, PolicyError
from ._fastpath import ERROR, NATIVE_TIER_BACKENDS, translate_val
from ._fused import NONE, FusedMatcher
from ._keys import key_id_of, key_ids
from ._limits import DEFAULT_LIMITS, EffectiveLimits, Limits, effective_limits
from ._models import SETTING_NAMES, Manifest, PolicyFile, parse_manifest, parse_policy
from ._request import Request
from ._yaml import Located, load_yaml, read_text

CACHE_SIZE = 8192      # decisions per cache generation (PolicySet.decide); at most twice this kept
SHARED_SIZE = 4096     # shared default denies kept per plan (they vary by hint)
FUSE_MIN = 8           # rules in a native group from which they are matched as one fused index
CHUNK = 8              # rules per combined CEL program (cel-cpp allows 32 levels of nesting)
LAYERS = ("org", "project", "user")
LAYER_RANK = {"org": 0, "project": 1, "user": 2}   # manifest rules and defaults rank after all


@dataclass(frozen=True)
class EffectiveSettings:
    """Settings after merging layers (org < project < user unless the org locked them)."""

    require_signature: bool = False
    trusted_keys: tuple[str, ...] = ()
    approve: str = "review"
    sandbox_minimum: str = "none"
    trust: tuple[str, ...] = ()
    mode: str = "enforce"
    plugin_modes: Mapping[str, str] = field(default_factory=dict)
    audit_allows: bool = False
    mask_fields: tuple[str, ...] = ()
    limits: Limits | None = None                              # caps on every plugin's limits
    locked: tuple[str, ...] = ()
    set_by: Mapping[str, str] = field(default_factory=dict)   # setting -> layer that set it


@dataclass(frozen=True)
class PluginInfo:
    """What the policy knows of a plugin: its manifest and where it lives."""

    id: str
    version: str
    directory: str
    sandbox: str
    trusted: bool
    manifest: Manifest
    publisher: str = ""
    signed: bool = False
    minimum: str = "none"
    limits: EffectiveLimits = DEFAULT_LIMITS    # asked in the manifest, capped by the policy

    @property
    def below_minimum(self) -> bool:
        """True when the plugin cannot run at the policy's `sandbox_minimum`."""
        return SANDBOX_RANK[self.sandbox] < SANDBOX_RANK[self.minimum]

    def to_cel(self) -> dict[str, Any]:
        caps = self.manifest.capabilities
        return {"id": self.id, "version": self.version, "publisher": self.publisher,
                "signed": self.signed, "sandbox": self.sandbox, "trusted": self.trusted,
                "capabilities": {
                    "network": list(caps.network),
                    "filesystem": {"read": list(caps.filesystem.read), "write": list(caps.filesystem.write)},
                    "environment": list(caps.environment), "process": list(caps.process),
                    "native": caps.native}}


def unknown_plugin_cel(plugin_id: str) -> dict[str, Any]:
    """The `plugin` variable for a plugin without a manifest: nothing declared, nothing trusted."""
    return {"id": plugin_id, "version": "", "publisher": "", "signed": False, "sandbox": "",
            "trusted": False, "capabilities": {"network": [], "filesystem": {"read": [], "write": []},
                                               "environment": [], "process": [], "native": False}}


@dataclass(frozen=True)
class RuleTrace:
    """One line of `explain`: a rule, whether it applied, matched, and why."""

    rule: RuleRef
    cel: str
    considered: bool
    matched: bool
    why: str


@dataclass(frozen=True)
class Explanation:
    decision: Decision
    request: Request
    traces: tuple[RuleTrace, ...]


class _Group:
    """Rules of one effect for one (plugin, action). Evaluated natively when every rule is in
    the fast subset (see _fastpath) — through one fused index (see _fused) when the group has
    at least FUSE_MIN rules, the rules it cannot absorb one by one — else as chunked combined
    CEL programs."""

    __slots__ = ("rules", "programs", "native", "fused", "rest")

    def __init__(self, rules: list[CompiledRule], backend, plugin_cel: dict | None = None,
                 shared: dict | None = None) -> None:
        self.rules = rules
        self.programs = []
        self.native = None
        self.fused = None
        self.rest: list = []
        if plugin_cel is not None:
            maybe = [translate_val(r.cel, plugin_cel) for r in rules]
            vals = [v for v in maybe if v is not None]
            if len(vals) == len(maybe):
                self.native = [(v.get, r) for v, r in zip(vals, rules)]
                if len(rules) >= FUSE_MIN:
                    # the rules for every plugin (policy files: they come first) and the
                    # plugin's own, each its own index; the first part is shared by every
                    # plugin whose group starts with the same translations
                    k = next((i for i, r in enumerate(rules) if r.plugins != ("*",)), len(rules))
                    self.fused = [(start, _matcher(vals[start:end], shared))
                                  for start, end in ((0, k), (k, len(rules))) if end > start]
                    self.rest = [(i, v.get, r) for i, (v, r) in enumerate(zip(vals, rules))
                                 if v.dnf is None]
                return
        for start in range(0, len(rules), CHUNK):
            chunk = rules[start:start + CHUNK]
            if len(chunk) == 1:
                self.programs.append((start, 1, chunk[0].program, True))
                continue
            text = "-1"
            for j in range(len(chunk) - 1, -1, -1):
                text = f"({chunk[j].cel}) ? {start + j} : ({text})"
            try:
                self.programs.append((start, len(chunk), compile_cached(backend, text, False, prechecked=True), False))
            except CelCompileError:
                # too deep or too costly combined: evaluate these rules one by one
                self.programs.extend((start + j, 1, r.program, True) for j, r in enumerate(chunk))

    def first_native(self, request: Request, errors: list[str], fail_closed: bool) -> CompiledRule | None:
        fused = self.fused
        if fused is not None:
            # the first absorbed rule that matches; the others before it decide first, in
            # order, exactly as the loop below would meet them
            best = NONE
            for start, matcher in fused:
                hit = matcher.first(request)
                if hit != NONE:
                    best = start + hit
                    break
            for i, fn, rule in self.rest:
                if i >= best:
                    break
                result = fn(request)
                if result is True:
                    return rule
                if result is ERROR:
                    errors.append(f"rule `{rule.id}` ({rule.ref.origin}): evaluation error")
                    if fail_closed:
                        return rule
            return self.rules[best] if best != NONE else None
        for fn, rule in self.native:  # type: ignore[union-attr]
            result = fn(request)
            if result is True:
                return rule
            if result is ERROR:
                errors.append(f"rule `{rule.id}` ({rule.ref.origin}): evaluation error")
                if fail_closed:
                    return rule
        return None

    def first(self, activation: dict, errors: list[str], fail_closed: bool) -> CompiledRule | None:
        for start, n, program, single in self.programs:
            try:
                result = program.evaluate(activation)
            except CelEvalError:
                hit = self._slow(start, n, activation, errors, fail_closed)
                if hit is not None:
                    return hit
                continue
            if single:
                if result is True:
                    return self.rules[start]
                if result is not False:
                    errors.append(f"rule `{self.rules[start].id}`: result is not a bool")
                    if fail_closed:
                        return self.rules[start]
            elif isinstance(result, int) and result >= 0:
                return self.rules[result]
        return None

    def _slow(self, start: int, n: int, activation: dict, errors: list[str],
              fail_closed: bool) -> CompiledRule | None:
        for rule in self.rules[start:start + n]:
            try:
                ok = rule.program.evaluate(activation)
            except CelEvalError as exc:
                errors.append(f"rule `{rule.id}` ({rule.ref.origin}): {exc}")
                if fail_closed:
                    return rule
                continue
            if ok is True:
                return rule
        return None


def _matcher(vals: list, shared: dict | None) -> FusedMatcher:
    """The fused index of these translations (Val objects: one per rule text and plugin
    facts), shared between plans through ``shared`` (keyed by the Vals themselves)."""
    key = tuple(vals)
    m = shared.get(key) if shared is not None else None
    if m is None:
        m = FusedMatcher([(i, v.dnf) for i, v in enumerate(vals) if v.dnf is not None])
        if shared is not None:
            shared[key] = m
    return m


@dataclass
class _Plan:
    plugin_cel: dict
    deny: _Group
    ask: _Group
    remembered: _Group
    allow: _Group
    audit_layer: int | None   # rank of the layer that put this plugin in audit mode, or None
    needs_plugin: bool        # some rule reads `plugin`: only then is it converted per request
    native: bool = False      # every group runs natively: requests without aliases take the short path
    outcomes: dict = field(default_factory=dict)   # id(rule) or hint -> shared error-free Decision


class PolicySet:
    """Immutable compiled policy. Build with :func:`load_policy_set`; decide with :meth:`decide`."""

    def __init__(self, rules: list[CompiledRule], settings: EffectiveSettings,
                 plugins: Mapping[str, PluginInfo], version: str, sources: tuple[str, ...],
                 backend) -> None:
        self._rules = tuple(rules)
        self.settings = settings
        self.plugins = MappingProxyType(dict(plugins))
        self.version = version
        self.sources = sources
        self.backend = backend
        self._plans: dict[tuple[str, str], _Plan] = {}
        self._plan_lock = threading.Lock()
        self._fused: dict[tuple, FusedMatcher] = {}   # fused indexes shared between plans
        # two generations: a hit in the young one is a plain lookup; a hit in the old one is
        # promoted; a full young generation becomes the old one (the old one is dropped)
        self._cache: dict[tuple, Decision] = {}
        self._old: dict[tuple, Decision] = {}
        self._by_action: dict[str, list[CompiledRule]] = {}
        for r in self._rules:
            for a in r.actions:
                self._by_action.setdefault(a, []).append(r)

    @property
    def rules(self) -> tuple[CompiledRule, ...]:
        return self._rules

    def __repr__(self) -> str:
        return f"<PolicySet version={self.version} rules={len(self._rules)} backend={self.backend.name}>"

    # -- deciding ------------------------------------------------------------------------

    def decide(self, request: Request, *, use_cache: bool = True) -> Decision:
        """Decide one request. Never raises for evaluation errors (they fail closed)."""
        if use_cache:
            hit = self._cache.get(request._key)   # the hot path: one lookup
            if hit is not None:
                return hit
            return self._decide_cached(request)
        return self._decide(request)

    def _decide_cached(self, request: Request) -> Decision:
        key = request._key
        young = self._cache
        hit = self._old.get(key)
        if hit is None:
            hit = self._decide(request)
        if len(young) >= CACHE_SIZE:   # no cliff: the CACHE_SIZE keys used last stay cached
            self._old = young
            young = self._cache = {}
        young[key] = hit
        return hit

    def _applicable(self, plugin: str, action: str) -> list[CompiledRule]:
        return [r for r in self._by_action.get(action, ())
                if any(p == "*" or p == plugin or fnmatch.fnmatchcase(plugin, p) for p in r.plugins)]

    def _plan(self, plugin: str, action: str) -> _Plan:
        key = (plugin, action)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        with self._plan_lock, _collector_paused():   # a plan allocates like a load
            plan = self._plans.get(key)
            if plan is None:
                rules = self._applicable(plugin, action)
                deny = [r for r in rules if r.ref.effect is Effect.DENY]
                deny.sort(key=lambda r: (not r.builtin, r.ref.mode == "audit"))
                info = self.plugins.get(plugin)
                pcel = info.to_cel() if info else unknown_plugin_cel(plugin)
                nat = pcel if self.backend.name in NATIVE_TIER_BACKENDS else None
                sh = self._fused
                plan = _Plan(
                    plugin_cel=pcel,
                    deny=_Group(deny, self.backend, nat, sh),
                    ask=_Group([r for r in rules if r.ref.effect is Effect.ASK], self.backend, nat, sh),
                    remembered=_Group([r for r in rules if r.ref.effect is Effect.ALLOW and r.remembered],
                                      self.backend, nat, sh),
                    allow=_Group([r for r in rules if r.ref.effect is Effect.ALLOW], self.backend, nat, sh),
                    audit_layer=self._audit_layer(plugin),
                    needs_plugin=any("plugin" in r.cel for r in rules),
                )
                plan.native = all(g.native is not None for g in (plan.deny, plan.ask, plan.remembered, plan.allow))
                self._plans[key] = plan
        return plan

    def _audit_layer(self, plugin: str) -> int | None:
        s = self.settings
        for pattern, mode in s.plugin_modes.items():
            if fnmatch.fnmatchcase(plugin, pattern):
                return LAYER_RANK[s.set_by.get("plugin_modes", "org")] if mode == "audit" else None
        return LAYER_RANK[s.set_by.get("mode", "org")] if s.mode == "audit" else None

    def _decide(self, request: Request) -> Decision:
        plan = self._plans.get((request.plugin, request.action)) or self._plan(request.plugin, request.action)
        errors: list[str] = []
        if plan.native and not request.aliases:
            return self._decide_with(plan, request, errors, None)
        box: list = []
        variants = request.variants() if request.aliases else ()

        def evaluate(req: Request, group: _Group, fail_closed: bool) -> CompiledRule | None:
            if group.native is not None:
                return group.first_native(req, errors, fail_closed)
            if req is request:   # the CEL activation is built once, and only if a group needs it
                if not box:
                    box.append(self._activation(plan, request))
                return group.first(box[0], errors, fail_closed)
            return group.first(self._activation(plan, req), errors, fail_closed)

        def first(group: _Group, fail_closed: bool) -> CompiledRule | None:
            if group.native is not None and not variants:
                return group.first_native(request, errors, fail_closed)
            hit = evaluate(request, group, fail_closed)
            if hit is None and fail_closed and variants and group.rules:
                # deny and ask judge every spelling of the resource (docs/design.md §5a)
                for v in variants:
                    hit = evaluate(v, group, fail_closed)
                    if hit is not None:
                        break
            return hit

        try:
            return self._decide_with(plan, request, errors, first)
        except CelEvalError as exc:
            return Decision(Verdict.DENY, DecidedBy.DEFAULT, self.version,
                            errors=(f"request cannot be evaluated: {exc}",), hint=grant_hint(request))

    def _activation(self, plan: _Plan, request: Request):
        data = {"request": request.to_cel()}
        if plan.needs_plugin:
            data["plugin"] = plan.plugin_cel
        return self.backend.prepare(data)

    def _decide_with(self, plan: _Plan, request: Request, errors: list[str], first) -> Decision:
        """Deny, then ask (a remembered answer lifts it), then allow, then default deny.
        ``first(group, fail_closed)`` finds a group's first matching rule; None: every group
        is native and the request has no aliases (the short path)."""
        audit_hit: RuleRef | None = None
        deny = (plan.deny.first_native(request, errors, True) if plan.deny.rules else None) if first is None \
            else first(plan.deny, True)
        if deny is not None:
            if deny.ref.mode == "audit" and not deny.builtin:
                audit_hit = deny.ref
            else:
                return self._rule_outcome(plan, deny, Verdict.DENY, errors, True)
        ask = (plan.ask.first_native(request, errors, True) if plan.ask.rules else None) if first is None \
            else first(plan.ask, True)
        if ask is not None:
            remembered = plan.remembered.first_native(request, errors, False) if first is None \
                else first(plan.remembered, False)
            if remembered is not None:
                if audit_hit is None:
                    return self._rule_outcome(plan, remembered, Verdict.ALLOW, errors, False)
                return self._outcome(plan, Verdict.ALLOW, (remembered.ref,), errors, "", True, False, False)
            if ask.ref.mode == "audit":
                audit_hit = audit_hit or ask.ref
            else:
                return self._rule_outcome(plan, ask, Verdict.ASK, errors, True)
        allow = plan.allow.first_native(request, errors, False) if first is None else first(plan.allow, False)
        if allow is not None:
            if audit_hit is None:
                return self._rule_outcome(plan, allow, Verdict.ALLOW, errors, False)
            return self._outcome(plan, Verdict.ALLOW, (allow.ref, audit_hit), errors, "", True, False, False)
        hint = grant_hint(request)
        if audit_hit is None and not errors:
            hit = plan.outcomes.get(hint)
            if hit is not None:
                return hit
            decision = self._outcome(plan, Verdict.DENY, (), errors, hint, False, True, False, DecidedBy.DEFAULT)
            if len(plan.outcomes) < SHARED_SIZE:
                plan.outcomes[hint] = decision
            return decision
        return self._outcome(plan, Verdict.DENY, (audit_hit,) if audit_hit else (), errors,
                             hint, False, True, False, DecidedBy.DEFAULT)

    def _rule_outcome(self, plan: _Plan, rule: CompiledRule, verdict: Verdict, errors: list[str],
                      refusal: bool) -> Decision:
        """"<verdict> by rule X", no audit rule involved: one shared value per rule and plan."""
        if not errors:
            hit = plan.outcomes.get(id(rule))
            if hit is not None:
                return hit
        decision = self._outcome(plan, verdict, (rule.ref,), errors, "", False, refusal, rule.builtin)
        if not errors:
            plan.outcomes[id(rule)] = decision
        return decision

    def _outcome(self, plan: _Plan, verdict: Verdict, rules: tuple[RuleRef, ...], errors: list[str],
                 hint: str, would_deny: bool, refusal: bool, builtin: bool,
                 by: DecidedBy = DecidedBy.RULE) -> Decision:
        decision = Decision(verdict, by, self.version, rules, tuple(errors), hint=hint,
                            would_deny=would_deny)
        return self._refuse(plan, decision, builtin) if refusal else decision

    @staticmethod
    def _refuse(plan: _Plan, decision: Decision, builtin: bool) -> Decision:
        """Audit mode turns a refusal into a logged allow, but a layer's audit mode never
        lifts a deny of a higher layer (an org deny stays a deny under a project's audit mode)."""
        if plan.audit_layer is None or builtin:
            return decision
        rule = decision.rule
        if rule is None or LAYER_RANK.get(rule.layer, 3) >= plan.audit_layer:
            return Decision(Verdict.ALLOW, DecidedBy.MODE_AUDIT, decision.policy_version,
                            decision.rules, decision.errors, decision.hint, would_deny=True)
        return decision

    # -- explaining ----------------------------------------------------------------------

    def explain(self, request: Request) -> Explanation:
        """The decision plus every rule: whether it applied to this plugin/action and matched."""
        decision = self.decide(request, use_cache=False)
        info = self.plugins.get(request.plugin)
        traces = []
        try:
            activation = self.backend.prepare({"request": request.to_cel(),
                                               "plugin": info.to_cel() if info else unknown_plugin_cel(request.plugin)})
        except CelEvalError as exc:
            return Explanation(decision, request, (RuleTrace(RuleRef("request", Effect.DENY, "builtin", "<request>"),
                                                             "", True, True, f"error: {exc}"),))
        for r in self._rules:
            if request.action not in r.actions:
                traces.append(RuleTrace(r.ref, r.cel, False, False, f"action `{request.action}` not selected"))
                continue
            if not any(p == "*" or fnmatch.fnmatchcase(request.plugin, p) for p in r.plugins):
                traces.append(RuleTrace(r.ref, r.cel, False, False, f"plugin `{request.plugin}` not selected"))
                continue
            try:
                result = r.program.evaluate(activation)
            except CelEvalError as exc:
                fc = r.ref.effect is not Effect.ALLOW
                traces.append(RuleTrace(r.ref, r.cel, True, fc,
                                        f"error: {exc} ({'counts as matching' if fc else 'counts as not matching'})"))
                continue
            if result is not True and r.ref.effect is not Effect.ALLOW and request.aliases:
                spelling = self._alias_match(r, request, info)
                if spelling is not None:
                    traces.append(RuleTrace(r.ref, r.cel, True, True,
                                            f"condition is true for the other spelling `{spelling}`"))
                    continue
            traces.append(RuleTrace(r.ref, r.cel, True, result is True,
                                    "condition is true" if result is True else "condition is false"))
        return Explanation(decision, request, tuple(traces))

    def _alias_match(self, rule: CompiledRule, request: Request, info) -> str | None:
        """The first alias of ``request`` for which the deny/ask ``rule`` matches, if any."""
        pcel = info.to_cel() if info else unknown_plugin_cel(request.plugin)
        for alias, variant in zip(request.aliases, request.variants()):
            try:
                if rule.program.evaluate(self.backend.prepare({"request": variant.to_cel(),
                                                               "plugin": pcel})) is True:
                    return alias
            except CelEvalError:
                return alias
        return None


def grant_hint(request: Request) -> str:
    """The manifest capability that would grant a default-denied request."""
    a = request.action
    if a == "fs.read" or a == "fs.write":
        kind = "read" if a == "fs.read" else "write"
        return f"capabilities.filesystem.{kind}: [\"{os.path.dirname(request.path) or request.path}/\"]"
    if a == "net.connect":
        return f"capabilities.network: [\"{request.host}:{request.port}\"]" if request.port else \
            f"capabilities.network: [\"{request.host}\"]"
    if a == "net.resolve":
        return f"capabilities.network: [\"{request.host}\"]"
    if a == "env.read":
        return f"capabilities.environment: [{request.name}]"
    if a == "process.exec":
        prog = request.argv[0] if request.argv else request.path
        return f"capabilities.process: [\"{prog}\"]"
    if a == "native.load":
        return "capabilities.native: true"
    return ""


# -- loading -------------------------------------------------------------------------------

def _check_safe_location(path: str, layer: str) -> None:
    """An org policy writable by others than its owner is refused (docs/design.md §4)."""
    if layer != "org":
        return
    for p in (path, os.path.dirname(os.path.abspath(path))):
        try:
            st = os.stat(p)
        except OSError:
            continue
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):   # a sticky /tmp too: others could add files
            raise PolicyError(f"org policy `{p}` is writable by group or others", file=path,
                              fix=f"run `chmod go-w {p}` so only its owner can change it")
        if st.st_uid not in (0, os.getuid()):
            raise PolicyError(f"org policy `{p}` is owned by uid {st.st_uid}, neither root nor this user",
                              file=path, fix=f"run `chown root {p}` (or your user) so no one else controls it")


def policy_directories(paths: Iterable[str | os.PathLike]) -> list[str]:
    """The directories among ``paths`` (each loads every *.yaml in it, so all of it is policy)."""
    return [os.fspath(p) for p in paths if os.path.isdir(os.fspath(p))]


def _spellings(path: str) -> set[str]:
    return {os.path.abspath(path), private_realpath(path)}


def _grant_reaches(grant: str, path: str) -> bool:
    """A write grant (directory or glob, ``~`` expanded) covers ``path`` in either spelling."""
    if is_glob(grant):
        return any(glob(s, grant) for s in _spellings(path))
    return any(within(s, grant) for s in _spellings(path))


def _refuse_writable_policy(files: list[tuple[PolicyFile, Located]], directories: list[str],
                            manifests: list[tuple[Manifest, Located | None]], home: str | None) -> None:
    """An org or project policy a plugin's write grant could reach is refused: the grant
    (Landlock in a sandbox, the hook in process) would let the plugin rewrite its own policy."""
    for manifest, located in manifests:
        for i, grant in enumerate(manifest.capabilities.filesystem.write):
            expanded = (home or user_home()) + grant[1:] if grant.startswith("~") else grant
            plain = expanded if is_glob(expanded) else expand_path(expanded)
            where_file = located.file if located else f"<manifest {manifest.id}>"
            where_line = located.where(("capabilities", "filesystem", "write", i))[0] if located else None
            for pf, plocated in files:
                if pf.layer in ("org", "project") and _grant_reaches(plain, plocated.file):
                    raise PolicyError(
                        f"the {pf.layer} policy `{plocated.file}` lies inside plugin "
                        f"`{manifest.id}`'s write grant `{grant}`", file=where_file, line=where_line,
                        fix="move the policy out of every plugin's write grants, or narrow the grant")
            for d in directories:
                inside = not is_glob(plain) and any(within(plain, x) for x in _spellings(d))
                if inside or _grant_reaches(plain, d):
                    raise PolicyError(
                        f"policy directory `{d}` is writable through plugin `{manifest.id}`'s "
                        f"write grant `{grant}` (a new file there would become policy)",
                        file=where_file, line=where_line,
                        fix="move the policy directory out of every plugin's write grants")


def expand_policy_paths(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Files as given; directories contribute their *.yaml files (not *.test.yaml), sorted."""
    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                if name.endswith((".yaml", ".yml")) and not name.endswith((".test.yaml", ".test.yml")):
                    out.append(os.path.join(p, name))
        else:
            out.append(p)
    return out


LOCK_COVERS = {"mode": ("mode", "plugin_modes")}
"""Locking ``mode`` locks ``plugin_modes`` too: a lower layer's ``plugin_modes: {"*": audit}``
would otherwise undo an enforced mode."""


def _merge_settings(files: list[tuple[PolicyFile, Located]]) -> EffectiveSettings:
    values: dict[str, Any] = {}
    locked: dict[str, str] = {}   # setting -> origin of the lock
    set_by: dict[str, str] = {}
    for layer in LAYERS:
        for pf, located in files:
            if pf.layer != layer:
                continue
            given = pf.settings.model_dump(exclude_none=True, exclude={"locked"})
            for name, value in given.items():
                if name == "limits":        # caps: a later layer can only lower them
                    value = Limits(**value)
                    if name in values and name not in locked:
                        value = values[name].tighter(value)
                if name in locked and values.get(name) != value:
                    raise located.error(("settings", name),
                                        f"setting `{name}` is locked by {locked[name]}",
                                        "remove it from this file (a lower layer cannot change a locked setting)")
                if name in ("trusted_keys", "trust", "mask_fields") and name in values and name not in locked:
                    value = tuple(dict.fromkeys(tuple(values[name]) + tuple(value)))
                values[name] = value
                set_by[name] = layer
            for name in pf.settings.locked:
                line = located.where(("settings", "locked"))[0]
                for covered in LOCK_COVERS.get(name, (name,)):
                    if covered not in locked:
                        locked[covered] = f"the {layer} policy {located.file}:{line}" + (
                            f" (locking `{name}` locks `{covered}` too)" if covered != name else "")
    return EffectiveSettings(**{k: v for k, v in values.items() if k in SETTING_NAMES},
                             locked=tuple(locked), set_by=set_by)


SANDBOX_RANK = {"none": 0, "process": 1, "container": 2, "wasm": 3}   # wasm: no sockets, no processes at all


def _publisher_trusted(publisher: str, trusted_ids: frozenset[str]) -> bool:
    """True when the verified publisher (a key id or a full key) is one of the trusted keys."""
    try:
        return key_id_of(publisher) in trusted_ids
    except ValueError:
        return False


def _sandbox(manifest: Manifest, trusted: bool, minimum: str) -> str:
    """The level a plugin runs at: what it declares, raised to `process` when it is not
    trusted (or is a command), and to the policy's minimum where its entry can run there.
    A plugin that cannot reach the minimum keeps a lower level here and is refused by the
    loader (see ``PluginInfo.below_minimum``)."""
    kind = manifest.entry.kind
    if kind == "wasm":
        return "wasm"
    level = manifest.sandbox
    if level == "wasm" or kind == "command" or (kind == "library" and level == "none") \
            or (level == "none" and not trusted):
        level = "process"   # a Python or command entry cannot run in wasm; commands need a child;
                            # a native library is never loaded into the host
    if SANDBOX_RANK[minimum] > SANDBOX_RANK[level] and minimum in ("process", "container"):
        level = "container" if minimum == "container" else "process"
    return level


def load_policy_set(policy_files: Iterable[str | os.PathLike] = (),
                    manifests: Iterable[str | os.PathLike | Manifest | tuple[str, str]] = (), *,
                    grants: str | os.PathLike | None = None,
                    backend: str | None = None,
                    protected_paths: Iterable[tuple[str, str]] = (),
                    plugin_facts: Mapping[str, Mapping[str, Any]] | None = None,
                    home: str | None = None, refuse_writable: bool = True) -> PolicySet:
    """Load, validate and compile policies and manifests into a new PolicySet.

    ``policy_files`` may name files or directories; ``manifests`` are plugin.yaml paths,
    ``(path, text)`` pairs of already-verified manifests, or Manifest objects, whose
    capabilities are granted; ``grants`` is the user's remembered
    answers file; ``protected_paths`` are (path, why) pairs no plugin may write;
    ``plugin_facts`` maps plugin id to runtime facts (signed, publisher, trusted — the host
    vouches for it, e.g. an in-code plugin; data_dir and work_dir,
    the plugin's own directories, see _baseline); an org or project policy file or directory
    that a manifest's write grant reaches is refused unless ``refuse_writable`` is False
    (policy unit tests, whose plugins are hypothetical). Raises PolicyError
    naming file:line:column; nothing is half-applied because the result is a new object.
    """
    with _collector_paused():
        return _load(policy_files, manifests, grants, backend, protected_paths, plugin_facts,
                     home, refuse_writable)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a load allocates: a load builds tens of
    thousands of short-lived trees and nodes, and the collections they trigger rescan every
    cached tree and program (over half of a 10,000-rule cold load). What a load leaves is
    bounded (1 MiB per file, 100,000 YAML nodes); collection resumes when the outermost load
    ends, even if another thread's load is still running. Plans (see ``_plan``) pause it too."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _load(policy_files, manifests, grants, backend, protected_paths, plugin_facts, home,
          refuse_writable) -> PolicySet:
    be = get_backend(backend)
    new_home, moved = refresh_resolutions()   # rule directories are resolved at load (§5a)
    if new_home:
        clear_compile_caches()    # programs and native translations hold the old spellings
    elif moved:
        forget_directories(moved)  # only those naming a directory that resolves elsewhere now
    digest = hashlib.sha256()
    files: list[tuple[PolicyFile, Located]] = []
    sources: list[str] = []
    policy_files = [os.fspath(p) for p in policy_files]
    directories = policy_directories(policy_files)
    compiled: list[tuple[list[CompiledRule] | None, str]] = []
    for path in expand_policy_paths(policy_files):
        text = read_text(path)        # one read: the version is the digest of the bytes parsed
        # a file whose bytes are unchanged since a load is not parsed or compiled again
        # (a reload costs what changed, file by file); cached forms are immutable
        known = loaded_file(path, text, be.name, home)
        if known is None:
            located = load_yaml(text, path)
            pf = parse_policy(located)
            file_rules = None
        else:
            pf, located, file_rules = known
        _check_safe_location(path, pf.layer)
        files.append((pf, located))
        compiled.append((file_rules, text))
        sources.append(path)
        digest.update(path.encode() + b"\0" + text.encode("utf-8", "surrogatepass") + b"\0")
    settings = _merge_settings(files)
    rules: list[CompiledRule] = []
    for (pf, located), (file_rules, text), path in zip(files, compiled, sources):
        if file_rules is None:
            file_rules = compile_policy(pf, located, be, home=home)
            remember_file(path, text, be.name, home, (pf, located, file_rules))
        rules.extend(file_rules)
    protected = [(p, "the policy file") for p in sources] + \
        [(d, "the policy directory") for d in directories]
    if grants is not None:
        gpath = os.fspath(grants)
        protected.append((gpath, "the grants file"))
        if os.path.exists(gpath):
            gtext = read_text(gpath)
            located = load_yaml(gtext, gpath)
            pf = parse_policy(located)
            if pf.layer != "user":
                raise located.error(("layer",), "the grants file must be `layer: user`", "set `layer: user`")
            rules.extend(compile_policy(pf, located, be, remembered=True, home=home))
            sources.append(gpath)
            digest.update(b"grants\0" + gtext.encode("utf-8", "surrogatepass"))
    protected.extend(protected_paths)
    rules[:0] = builtin_rules(protected, be)
    plugins: dict[str, PluginInfo] = {}
    facts = plugin_facts or {}
    trusted_ids = key_ids(settings.trusted_keys)
    parsed: list[tuple[Manifest, Located | None]] = []
    for m in manifests:
        if isinstance(m, Manifest):
            manifest, located, directory = m, None, ""  # type: ignore[assignment]
            digest.update(m.model_dump_json().encode())
        elif isinstance(m, tuple):
            # (path, text): a manifest whose bytes were already read (and verified) elsewhere
            mpath, text = os.fspath(m[0]), m[1]
            located = load_yaml(text, mpath)
            manifest = parse_manifest(located)
            directory = os.path.dirname(os.path.abspath(mpath))
            digest.update(b"manifest\0" + text.encode("utf-8", "surrogatepass"))
        else:
            text = read_text(m)
            located = load_yaml(text, os.fspath(m))
            manifest = parse_manifest(located)
            directory = os.path.dirname(os.path.abspath(os.fspath(m)))
            digest.update(b"manifest\0" + text.encode("utf-8", "surrogatepass"))
        if manifest.id in plugins:
            where = located.file if located else manifest.id
            raise PolicyError(f"plugin id `{manifest.id}` is declared twice", file=where,
                              fix="give each plugin a unique id")
        fact = facts.get(manifest.id, {})
        signed = bool(fact.get("signed", False))
        publisher = str(fact.get("publisher", manifest.publisher))
        trusted = bool(fact.get("trusted")) or any(fnmatch.fnmatchcase(manifest.id, p) for p in settings.trust) or (
            signed and bool(publisher) and _publisher_trusted(publisher, trusted_ids))
        plugins[manifest.id] = PluginInfo(manifest.id, manifest.version, directory,
                                          _sandbox(manifest, trusted, settings.sandbox_minimum),
                                          trusted, manifest, publisher, signed, settings.sandbox_minimum,
                                          effective_limits(manifest.limits, settings.limits))
        rules.extend(manifest_rules(manifest, located, be, home))
        rules.extend(baseline_rules(manifest, fact, be))   # after the grants: a granted read stops sooner
        parsed.append((manifest, located))
        digest.update(repr(sorted(fact.items())).encode())
    if refuse_writable:
        _refuse_writable_policy(files, directories, parsed, home)
    digest.update(be.name.encode())
    return PolicySet(rules, settings, plugins, digest.hexdigest()[:12], tuple(sources), be)
