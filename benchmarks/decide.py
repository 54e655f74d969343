"""Decision benchmark (docs/design.md §12, issue 2 "Benchmark").

    python benchmarks/decide.py               # 100,000 requests (about 20% distinct)
    python benchmarks/decide.py --quick       # 5,000 requests: a smoke run

The workload (``benchmarks/workload.py``) is generated from a fixed seed and written as real
YAML files (one org policy + 20 plugin.yaml) into a temp dir; our engine loads those files.
The same rules are encoded, from the same rule data, as a hand-written plain-Python checker
(the floor), as Cedar policies (``cedarpy``) and as a Casbin model (``pycasbin``
FastEnforcer with custom functions). Every engine decides every request; all must agree with
ours. Timings are per decision (``perf_counter_ns`` around each call), over the cache-miss
stream (each distinct request once, ``use_cache=False``) and, for our engine, the cache-hit
stream (stream requests already in the decision cache) and the full stream with the cache on.
Each timed pass is run ``--rounds`` times with the engine order rotated; the best round is
reported (the machines are noisy). There is no pass/fail on timings.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from workload import Atom, RuleSpec, Workload, make_workload, rule_cel, write_files  # noqa: E402

from promptline.policy import Request, available_backends, load_policy_set  # noqa: E402

VERDICTS = ("allow", "deny", "ask")
QUICK_REQUESTS = 1500   # --quick: 300 distinct requests, every engine decides all of them


# -- helpers shared by the hand-written encodings ----------------------------------------------

def ipv4_int(host: str) -> int | None:
    """Strict dotted-quad IPv4 (as ``ipaddress`` accepts it) -> int; anything else -> None."""
    parts = host.split(".")
    if len(parts) != 4:
        return None
    n = 0
    for p in parts:
        if not p.isdigit() or not p.isascii() or (len(p) > 1 and p[0] == "0"):
            return None
        v = int(p)
        if v > 255:
            return None
        n = (n << 8) | v
    return n


def cidr_range(cidr: str) -> tuple[int, int]:
    base, bits = cidr.split("/")
    n = ipv4_int(base)
    mask = (0xFFFFFFFF << (32 - int(bits))) & 0xFFFFFFFF
    return n & mask, mask


def _selected(patterns: tuple[str, ...], plugin: str) -> bool:
    import fnmatch
    return any(p == "*" or fnmatch.fnmatchcase(plugin, p) for p in patterns)


# -- plain Python: the floor -----------------------------------------------------------------

def _atom_pred(a: Atom) -> Callable[[Request], bool]:
    """One atom as a closure over the request (hand-written, no CEL)."""
    k, arg = a.kind, a.arg
    if k == "within":
        d, ds = arg.rstrip("/") or "/", arg.rstrip("/") + "/"
        return lambda r: r.path == d or r.path.startswith(ds)
    if k == "eq":
        return lambda r: r.path == arg
    if k == "glob":
        if arg.startswith("/**/*"):
            suffix = arg[5:]
            return lambda r: r.path.startswith("/") and r.path.endswith(suffix)
        name = "/" + arg[4:]
        return lambda r: r.path.endswith(name)
    if k == "host":
        if arg.startswith("*."):
            sfx, n = arg[1:], len(arg) - 1
            return lambda r: r.host.endswith(sfx) and len(r.host) > n
        return lambda r: r.host == arg
    if k == "cidr":
        net, mask = cidr_range(arg)

        def in_net(r: Request) -> bool:
            ip = ipv4_int(r.host)
            return ip is not None and ip & mask == net
        return in_net
    if k == "env":
        if arg.endswith("*"):
            pre = arg[:-1]
            return lambda r: r.name.startswith(pre)
        if arg.startswith("*"):
            suf = arg[1:]
            return lambda r: r.name.endswith(suf) and r.name != ""
        return lambda r: r.name == arg
    if k == "true":
        return lambda r: True
    raise ValueError(k)


def _rule_pred(rule: RuleSpec) -> Callable[[Request], bool]:
    preds = [_atom_pred(a) for a in rule.atoms]
    port = rule.port
    if len(preds) == 1:
        p0 = preds[0]
        if port is None:
            return p0
        return lambda r: r.port == port and p0(r)
    if port is None:
        return lambda r: any(p(r) for p in preds)
    return lambda r: r.port == port and any(p(r) for p in preds)


class PlainReq:
    """The plain checker's own request: six slots, no canonicalisation (the workload's
    requests are already canonical)."""

    __slots__ = ("action", "plugin", "path", "host", "port", "name")

    def __init__(self, action: str, plugin: str, path: str, host: str, port: int, name: str) -> None:
        self.action, self.plugin, self.path, self.host, self.port, self.name = action, plugin, path, host, port, name


class PlainEngine:
    """Hand-written checker: rules pre-indexed by (plugin, action), one closure per rule; the
    request it judges is built from the raw fields inside the timed call."""

    name = "plain Python"

    def __init__(self, w: Workload, protected: list[str]) -> None:
        rules = [RuleSpec(f"builtin:{i}", "deny", ("fs.write",), (Atom("within", p),))
                 for i, p in enumerate(protected)] + w.all_rules()
        self.index: dict[tuple[str, str], tuple[list, list, list]] = {}
        actions = sorted({a for r in rules for a in r.actions})
        for p in w.plugins:
            for act in actions:
                groups: tuple[list, list, list] = ([], [], [])
                for r in rules:
                    if act in r.actions and _selected(r.plugins, p.id):
                        groups[("deny", "ask", "allow").index(r.effect)].append(_rule_pred(r))
                self.index[(p.id, act)] = groups

    def decide(self, raw: tuple) -> str:
        r = PlainReq(*raw)
        groups = self.index.get((r.plugin, r.action))
        if groups is None:
            return "deny"
        deny, ask, allow = groups
        for p in deny:
            if p(r):
                return "deny"
        for p in ask:
            if p(r):
                return "ask"
        for p in allow:
            if p(r):
                return "allow"
        return "deny"


# -- Cedar -----------------------------------------------------------------------------------

def _cstr(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cedar_atom(a: Atom) -> str:
    k, arg = a.kind, a.arg
    if k == "within":
        d = arg.rstrip("/") or "/"
        return f"(context.path == {_cstr(d)} || context.path like {_cstr(d + '/*')})"
    if k == "eq":
        return f"context.path == {_cstr(arg)}"
    if k == "glob":
        # /**/*.ext -> last component ends with .ext; /**/name -> last component is name
        pat = "/*" + arg[5:] if arg.startswith("/**/*") else "*/" + arg[4:]
        return f"context.path like {_cstr(pat)}"
    if k == "host":
        if arg.startswith("*."):
            return f"(context.host like {_cstr(arg)} && context.host != {_cstr(arg[1:])})"
        return f"context.host == {_cstr(arg)}"
    if k == "cidr":
        return f'(context.isip && ip(context.host).isInRange(ip({_cstr(arg)})))'
    if k == "env":
        if "*" in arg:
            return f"(context.name like {_cstr(arg)})"
        return f"context.name == {_cstr(arg)}"
    if k == "true":
        return "true"
    raise ValueError(k)


class CedarEngine:
    """Cedar: deny rules are ``forbid``; ask and allow rules are ``permit`` told apart by
    their ``@id``. Forbid wins in Cedar; an Allow whose reasons include an ask policy is ASK."""

    name = "cedarpy"

    def __init__(self, w: Workload, protected: list[str]) -> None:
        import cedarpy
        self._cedarpy = cedarpy
        rules = [RuleSpec(f"builtin:{i}", "deny", ("fs.write",), (Atom("within", p),))
                 for i, p in enumerate(protected)] + w.all_rules()
        plugin_ids = [p.id for p in w.plugins]
        texts = []
        for r in rules:
            cond = " || ".join(_cedar_atom(a) for a in r.atoms)
            if r.port is not None:
                cond = f"({cond}) && context.port == {r.port}"
            acts = ", ".join(f'Action::{_cstr(a)}' for a in r.actions)
            if r.plugins == ("*",):
                principal = "principal"
            else:
                chosen = [p for p in plugin_ids if _selected(r.plugins, p)]
                if len(chosen) == 1:
                    principal = f"principal == Plugin::{_cstr(chosen[0])}"
                else:
                    principal = "principal"
                    members = ", ".join(f"Plugin::{_cstr(p)}" for p in chosen)
                    cond = f"[{members}].contains(principal) && ({cond})"
            kind = "forbid" if r.effect == "deny" else "permit"
            texts.append(f'@id({_cstr(r.effect + ":" + r.id)})\n{kind}({principal}, action in [{acts}], '
                         f"resource) when {{ {cond} }};")
        self.text = "\n".join(texts)
        self.policies = cedarpy.PolicySet.from_str(self.text)
        self.entities = cedarpy.Entities.from_json_str("[]")
        self.errors = 0

    def decide(self, raw: tuple) -> str:
        action, plugin, path, host, port, name = raw
        req = {"principal": f'Plugin::"{plugin}"', "action": f'Action::"{action}"',
               "resource": 'Resource::"x"',
               "context": {"path": path, "host": host, "isip": ipv4_int(host) is not None,
                           "port": port, "name": name}}
        res = self._cedarpy.is_authorized(req, self.policies, self.entities)
        diag = res.diagnostics
        if diag.errors:
            self.errors += 1
        if not res.allowed:
            return "deny"
        for rid in diag.id_annotations_by_reason.values():
            if rid.startswith("ask:"):
                return "ask"
        return "allow"


# -- Casbin ----------------------------------------------------------------------------------

CASBIN_MODEL = """
[request_definition]
r = sub, act, path, host, port, name

[policy_definition]
p = sub, act, fn, arg, port, rid

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub == p.sub && r.act == p.act && (p.port == "" || p.port == r.port) && check(p.fn, p.arg, r.path, r.host, r.name)
"""


def casbin_check(fn: str, arg: str, path: str, host: str, name: str) -> bool:
    """The custom matcher function: one atom (same semantics as the helpers)."""
    if fn == "within":
        return path == arg or path.startswith(arg + "/")
    if fn == "eq":
        return path == arg
    if fn == "suffix":
        return path.startswith("/") and path.endswith(arg)
    if fn == "host":
        return host == arg
    if fn == "hostsuf":
        return host.endswith(arg) and len(host) > len(arg)
    if fn == "cidr":
        ip = ipv4_int(host)
        if ip is None:
            return False
        net, mask = cidr_range(arg)
        return ip & mask == net
    if fn == "env":
        return name == arg
    if fn == "envpre":
        return name.startswith(arg)
    if fn == "envsuf":
        return name.endswith(arg) and name != ""
    return fn == "true"


def _casbin_atom(a: Atom) -> tuple[str, str]:
    k, arg = a.kind, a.arg
    if k == "within":
        return "within", arg.rstrip("/") or "/"
    if k == "glob":
        return ("suffix", arg[5:]) if arg.startswith("/**/*") else ("suffix", "/" + arg[4:])
    if k == "host":
        return ("hostsuf", arg[1:]) if arg.startswith("*.") else ("host", arg)
    if k == "env":
        if arg.endswith("*"):
            return "envpre", arg[:-1]
        if arg.startswith("*"):
            return "envsuf", arg[1:]
        return "env", arg
    return k, arg


class CasbinEngine:
    """pycasbin FastEnforcer (policies indexed by (sub, act)) with a custom ``check`` function.
    Casbin's effects are allow/deny only, so the three stages are three action keys:
    ``<action>|deny``, ``<action>|ask``, ``<action>|allow`` — the first that matches decides."""

    name = "pycasbin"

    def __init__(self, w: Workload, protected: list[str]) -> None:
        import logging

        import casbin
        logging.getLogger("casbin").setLevel(logging.ERROR)
        from casbin.model import FastModel
        fm = FastModel([0, 1])
        fm.load_model_from_text(CASBIN_MODEL)
        self.e = casbin.FastEnforcer(fm, cache_key_order=[0, 1])
        self.e.add_function("check", casbin_check)
        rules = [RuleSpec(f"builtin:{i}", "deny", ("fs.write",), (Atom("within", p),))
                 for i, p in enumerate(protected)] + w.all_rules()
        lines = []
        for r in rules:
            for pid in (p.id for p in w.plugins if _selected(r.plugins, p.id)):
                for act in r.actions:
                    for a in r.atoms:
                        fn, arg = _casbin_atom(a)
                        lines.append([pid, f"{act}|{r.effect}", fn, arg,
                                      "" if r.port is None else str(r.port), r.id])
        self.e.add_policies(lines)
        self.n_lines = len(lines)

    def decide(self, raw: tuple) -> str:
        action, plugin, path, host, port, name = raw
        e, port_s = self.e, str(port)
        for stage in ("deny", "ask", "allow"):
            if e.enforce(plugin, f"{action}|{stage}", path, host, port_s, name):
                return stage
        return "deny"


# -- ours ------------------------------------------------------------------------------------

class OursEngine:
    def __init__(self, backend: str, policy_path: str, manifests: list[str]) -> None:
        self.backend = backend
        self.name = f"ours {backend}"
        self.policy_path, self.manifests = policy_path, manifests
        self.ps = load_policy_set([policy_path], manifests, backend=backend)

    def reload(self) -> None:
        self.ps = load_policy_set([self.policy_path], self.manifests, backend=self.backend)

    def decide(self, raw: tuple) -> str:
        a, p, path, host, port, name = raw
        # `_value_`: the member's own attribute (Enum's `.value` property costs ~0.1 µs)
        return self.ps.decide(Request(a, p, path=path, host=host, port=port, name=name),
                              use_cache=False).verdict._value_

    def decide_cached(self, r: Request) -> str:
        return self.ps.decide(r).verdict._value_


class CelProgramEngine:
    """cel-expr-python with ONE program per (plugin, action): ``deny rules ? "deny" : ask
    rules ? "ask" : allow rules ? "allow" : "deny"``, the same rules (``workload.rule_cel``)
    and helper functions as ours; the activation is built from the raw fields in the call."""

    name = "cel-expr-python 1 prog"

    def __init__(self, w: Workload, protected: list[str]) -> None:
        from promptline.policy import get_backend
        self.backend = be = get_backend("cel-expr-python")
        rules = [RuleSpec(f"builtin:{i}", "deny", ("fs.write",), (Atom("within", p),))
                 for i, p in enumerate(protected)] + w.all_rules()
        actions = sorted({a for r in rules for a in r.actions})
        self.index = {}
        for p in w.plugins:
            for act in actions:
                stages = {"deny": [], "ask": [], "allow": []}
                for r in rules:
                    if act in r.actions and _selected(r.plugins, p.id):
                        stages[r.effect].append(f"({rule_cel(r)})")
                text = '"deny"'
                for stage in ("allow", "ask", "deny"):
                    if stages[stage]:
                        text = f'({_balanced_or(stages[stage])}) ? "{stage}" : ({text})'
                self.index[(p.id, act)] = be.compile(text, prechecked=True)

    def decide(self, raw: tuple) -> str:
        a, p, path, host, port, name = raw
        prog = self.index.get((p, a))
        if prog is None:
            return "deny"
        return prog.evaluate(self.backend.prepare({"request": {
            "action": a, "plugin": p, "path": path, "host": host, "port": port, "scheme": "", "url": "",
            "name": name, "argv": [], "tool": "", "args": {}}}))


def _balanced_or(parts: list[str]) -> str:
    """``a || b || ...`` nested as a balanced tree (cel-cpp limits the nesting depth)."""
    if len(parts) == 1:
        return parts[0]
    mid = len(parts) // 2
    return f"({_balanced_or(parts[:mid])}) || ({_balanced_or(parts[mid:])})"


# -- timing ----------------------------------------------------------------------------------

def time_each(fn: Callable[[object], str], reqs: list) -> tuple[list[int], list[str]]:
    """Nanoseconds per call and the results, GC paused."""
    pc = time.perf_counter_ns
    out = [0] * len(reqs)
    res = [""] * len(reqs)
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for i, r in enumerate(reqs):
            t0 = pc()
            v = fn(r)
            out[i] = pc() - t0
            res[i] = v
    finally:
        if gc_was:
            gc.enable()
    return out, res


def pct(ns: list[int], q: float) -> float:
    s = sorted(ns)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


def best(rounds: list[list[int]]) -> tuple[float, float, float]:
    """(p50, p99, mean) in µs: the minimum of each over the rounds."""
    return (min(pct(r, 0.50) for r in rounds), min(pct(r, 0.99) for r in rounds),
            min(statistics.fmean(r) / 1000.0 for r in rounds))


def cache_hit_rate(stream: list[int], capacity: int) -> float:
    """The hit rate of the PolicySet's decision cache on ``stream``: two generations of
    ``capacity`` keys, a hit in the old one promoted, a full young one becoming the old one."""
    young: dict[int, None] = {}
    old: dict[int, None] = {}
    hits = 0
    for k in stream:
        if k in young:
            hits += 1
            continue
        if k in old:
            hits += 1
        if len(young) >= capacity:
            old, young = young, {}
        young[k] = None
    return hits / len(stream) if stream else 0.0


def timed_build(fn: Callable[[], object], rounds: int) -> tuple[object, float]:
    best_ms, obj = float("inf"), None
    for _ in range(rounds):
        t0 = time.perf_counter()
        obj = fn()
        best_ms = min(best_ms, (time.perf_counter() - t0) * 1000)
    return obj, best_ms


# -- run -------------------------------------------------------------------------------------

def run(n_requests: int = 100_000, rounds: int = 3, celpy_sample: int = 2000, seed: int | None = None,
        out=sys.stdout, timing: bool = True) -> dict:
    from promptline.policy import _policyset
    w = make_workload(n_requests) if seed is None else make_workload(n_requests, seed)
    tmp = tempfile.mkdtemp(prefix="promptline-bench-")
    policy_path, manifests = write_files(w, tmp)
    distinct = [Request(a, p, path=path, host=host, port=port, name=name)
                for (a, p, path, host, port, name) in w.distinct]
    stream = [distinct[i] for i in w.stream]
    raws = [tuple(x) for x in w.distinct]   # what every engine gets in the timed miss calls
    protected = [policy_path]   # the built-in protection our engine adds: writing the policy file

    def log(*a):
        print(*a, file=out, flush=True)

    actions = Counter(r.action.split(".")[0] for r in stream)
    log(f"workload: seed {w.seed}; {len(w.plugins)} plugins with "
        f"{min(p.n_caps for p in w.plugins)}-{max(p.n_caps for p in w.plugins)} capabilities "
        f"({sum(p.n_caps for p in w.plugins)} total); {len(w.rules)} org rules "
        f"({', '.join(f'{n} {e}' for e, n in Counter(r.effect for r in w.rules).items())}); "
        f"{len(stream):,} requests, {len(distinct):,} distinct ({len(distinct) / len(stream):.0%}); "
        f"mix {', '.join(f'{k} {v / len(stream):.0%}' for k, v in sorted(actions.items()))}")
    log(f"files: {policy_path} + {len(manifests)} plugin.yaml under {tmp}")

    # -- build every engine (compile time: best of `rounds`) -----------------------------------
    backends = [b for b in ("cel-expr-python", "cel-python") if b in available_backends()]
    engines: dict[str, object] = {}
    compile_ms: dict[str, float] = {}
    plan_ms: dict[str, float] = {}
    pairs = list({(r.plugin, r.action): r for r in distinct}.values())
    for b in backends:
        eng, ms = timed_build(lambda b=b: OursEngine(b, policy_path, manifests), rounds)
        engines[eng.name] = eng
        compile_ms[eng.name] = ms
        # plans (combined CEL programs per (plugin, action)) are compiled lazily on first use
        t0 = time.perf_counter()
        for r in pairs:
            eng.ps.decide(r, use_cache=False)
        plan_ms[eng.name] = (time.perf_counter() - t0) * 1000
    for cls in (PlainEngine, CelProgramEngine, CedarEngine, CasbinEngine):
        eng, ms = timed_build(lambda cls=cls: cls(w, protected), rounds)
        engines[eng.name] = eng
        compile_ms[eng.name] = ms
    ref_name = "ours cel-expr-python" if "ours cel-expr-python" in engines else f"ours {backends[0]}"
    _ = engines[ref_name]   # KeyError here if the reference engine is missing

    # -- decisions and agreement on every request; this pass is also timing round 1 -----------
    # (cel-python, the reference backend at ~1-10 ms a decision, runs the first
    # `celpy_sample` distinct requests; every other engine runs all of them)
    celpy_n = min(len(distinct), celpy_sample)
    decisions: dict[str, list[str]] = {}
    miss: dict[str, list[list[int]]] = {}
    # our engine with the decision cache on, over the whole stream (the cache is still empty:
    # the plan warm-up above used use_cache=False), must decide alike too
    cached: dict[str, list[str]] = {}
    for b in backends:
        if b != "cel-python":   # same cache code; cel-python misses cost ~1-10 ms each
            cached[b] = time_each(engines[f"ours {b}"].decide_cached, stream)[1]
    for name, eng in engines.items():
        reqs = raws[:celpy_n] if name == "ours cel-python" else raws
        times, decisions[name] = time_each(eng.decide, reqs)
        miss[name] = [times]
    expected = decisions[ref_name]
    verdicts = Counter(expected[i] for i in w.stream)
    log("verdicts (ours, over the stream): " + ", ".join(
        f"{v} {verdicts[v] / len(stream):.1%}" for v in VERDICTS))
    mismatches: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    checked: dict[str, int] = {}
    for name, got in decisions.items():
        checked[name] = sum(1 for i in w.stream if i < len(got))
        bad = [i for i in w.stream if i < len(got) and got[i] != expected[i]]
        mismatches[name] = len(bad)
        examples[name] = [f"{distinct[i]!r}: ours {expected[i]}, {name} {got[i]}"
                          for i in sorted(set(bad))[:3]]
    for b, got in cached.items():
        name = f"ours {b} (cache on)"
        bad = [k for k, i in enumerate(w.stream) if got[k] != expected[i]]
        mismatches[name] = len(bad)
        checked[name] = len(stream)
        examples[name] = [f"{stream[k]!r}: ours {expected[w.stream[k]]}, cached {got[k]}" for k in bad[:3]]
    cedar_errors = engines["cedarpy"].errors

    result = {"mismatches": mismatches, "verdicts": dict(verdicts), "n_requests": len(stream),
              "n_distinct": len(distinct), "cedar_errors": cedar_errors, "examples": examples,
              "compile_ms": compile_ms, "plan_ms": plan_ms, "checked": checked}
    if not timing:
        _report_agreement(log, mismatches, checked, examples, cedar_errors, len(stream))
        return result

    # -- timing: cache-miss stream (each distinct request once), rounds 2.. -----------------
    order = [n for n in engines if n != "ours cel-python"]
    for _round in range(1, rounds):
        order = order[1:] + order[:1]   # rotate so no engine always runs first/last
        for name in order:
            miss[name].append(time_each(engines[name].decide, raws)[0])

    # -- timing: cache-hit stream and full stream (our engine) ---------------------------------
    cap = _policyset.CACHE_SIZE
    hit: dict[str, list[list[int]]] = {}
    full: dict[str, list[list[int]]] = {}
    hot = [r for i, r in zip(w.stream, stream) if i < cap]   # requests whose key fits in the cache
    hot_set = {i for i in w.stream if i < cap}
    for b in backends:
        name = f"ours {b}"
        eng = engines[name]
        hit[name], full[name] = [], []
        # cel-python: warming 8,192 misses at ~1-10 ms each would take minutes; use the
        # stream requests among the first 500 distinct instead
        keys = hot_set if b != "cel-python" else {i for i in hot_set if i < 500}
        reqs = hot if b != "cel-python" else [distinct[i] for i in w.stream if i < 500]
        for _round in range(rounds if b != "cel-python" else 1):
            eng.reload()
            for i in keys:
                eng.decide_cached(distinct[i])
            hit[name].append(time_each(eng.decide_cached, reqs)[0])
            if b != "cel-python":
                eng.reload()
                for r in pairs:   # compile the lazy plans first: this column is about deciding
                    eng.ps.decide(r, use_cache=False)
                full[name].append(time_each(eng.decide_cached, stream)[0])
    hit_rate = cache_hit_rate(w.stream, cap)

    # -- report --------------------------------------------------------------------------------
    rows = []
    for name in engines:
        p50, p99, mean = best(miss[name])
        h = best(hit[name]) if name in hit else None
        f = best(full[name]) if full.get(name) else None
        rows.append((name, compile_ms[name], plan_ms.get(name), p50, p99, h, f,
                     mismatches.get(name, 0)))
    log("")
    log(f"{'engine':<22} {'compile ms':>10} {'+plans ms':>9} | {'miss p50':>8} {'miss p99':>8} | "
        f"{'hit p50':>7} {'hit p99':>7} | {'stream mean':>11} | {'mismatches':>10}")
    log("-" * 112)
    fmt = lambda v, w=7: f"{v:>{w}.1f}" if v is not None else f"{'—':>{w}}"  # noqa: E731
    for name, c, pm, p50, p99, h, f, mm in rows:
        log(f"{name:<22} {c:>10.1f} {fmt(pm, 9)} | {p50:>8.1f} {p99:>8.1f} | "
            f"{fmt(h[0] if h else None)} {fmt(h[1] if h else None)} | "
            f"{fmt(f[2] if f else None, 11)} | {mm:>10}")
    log("-" * 112)
    log(f"µs per decision; miss = each of the {len(distinct):,} distinct requests once with "
        f"use_cache=False (cel-python: first {celpy_n:,}, one round); hit = the "
        f"{len(hot):,} stream requests whose key is among the first {cap:,} distinct (cache warmed; "
        f"cel-python: those among the first 500 distinct, one round); stream mean = all {len(stream):,} requests, cache on, "
        f"cold start (two-generation cache of {cap:,} keys each: {hit_rate:.0%} hits on this stream). Best of {rounds} rounds.")
    log(f"compile = load_policy_set (YAML + validation + CEL compile) or building the encoding; "
        f"+plans = first decision per (plugin, action) pair ({len(pairs)} pairs), where our "
        f"combined programs are compiled lazily.")
    result["table"] = rows
    result["hit_rate"] = hit_rate

    # -- fixed cost: a one-rule allow-all policy, request built in the call -------------------
    allow_all = os.path.join(tmp, "allow-all.yaml")
    with open(allow_all, "w") as fh:
        fh.write("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules:\n"
                 "  - id: all\n    effect: allow\n    when: 'true'\n")
    fixed_ours = OursEngine(ref_name.split(" ", 1)[1], allow_all, [])
    for r in pairs:
        fixed_ours.ps.decide(r, use_cache=False)

    def plain_allow_all(raw: tuple) -> str:
        PlainReq(*raw)
        return "allow"

    fixed_rounds = [time_each(fixed_ours.decide, raws)[0] for _ in range(rounds)]
    plain_fixed_rounds = [time_each(plain_allow_all, raws)[0] for _ in range(rounds)]
    build_rounds = [time_each(lambda raw: Request(raw[0], raw[1], path=raw[2], host=raw[3], port=raw[4],
                                                  name=raw[5]), raws)[0] for _ in range(rounds)]
    fixed, plain_fixed, build = best(fixed_rounds)[0], best(plain_fixed_rounds)[0], best(build_rounds)[0]
    cold = cold_load(manifests)

    # -- targets -------------------------------------------------------------------------------
    ours = best(miss[ref_name])[0]
    plain = best(miss["plain Python"])[0]
    prog = best(miss["cel-expr-python 1 prog"])[0]
    cedar = best(miss["cedarpy"])[0]
    casb = best(miss["pycasbin"])[0]
    hit_p50 = best(hit[ref_name])[0]
    log("")
    log("fixed cost (one-rule allow-all policy, request built in the call, p50 µs): "
        f"ours {fixed:.2f} | plain Python {plain_fixed:.2f} | of which Request(...) alone {build:.2f}")
    log(f"cold load (fresh process): backend set-up {cold['setup_ms']:.1f} ms (import + first compile), "
        f"then shipped policies ({cold['policies']}) + {cold['manifests']} manifests: "
        f"{cold['load_ms']:.1f} ms; a second load {cold['reload_ms']:.1f} ms")
    log("")
    log("targets (issue 15; cache miss p50, requests built inside the timed call for every engine):")
    log(f"  {ref_name} / plain Python           = {ours / plain:.2f}x   (target <= 2x)  "
        f"{'MET' if ours <= 2 * plain else 'NOT MET'}")
    log(f"  {ref_name} / cel-expr-python 1 prog = {ours / prog:.2f}x   (target < 1x)   "
        f"{'MET' if ours < prog else 'NOT MET'}")
    log(f"  cedarpy / {ref_name}   = {cedar / ours:.1f}x   (target > 1x)  {'MET' if ours < cedar else 'NOT MET'}")
    log(f"  pycasbin / {ref_name}  = {casb / ours:.1f}x   (target > 1x)  {'MET' if ours < casb else 'NOT MET'}")
    log(f"  fixed cost per decision = {fixed:.2f} µs   (target <= 1 µs)  {'MET' if fixed <= 1 else 'NOT MET'}")
    log(f"  cache hit p50 = {hit_p50:.2f} µs   (target <= 0.3 µs)  {'MET' if hit_p50 <= 0.3 else 'NOT MET'}")
    log(f"  cold load after set-up = {cold['load_ms']:.1f} ms   (target <= 50 ms)  "
        f"{'MET' if cold['load_ms'] <= 50 else 'NOT MET'}")
    if "ours cel-python" in engines:
        log(f"  ours cel-python / {ref_name} = {best(miss['ours cel-python'])[0] / ours:.0f}x (reference backend)")
    _report_agreement(log, mismatches, checked, examples, cedar_errors, len(stream))
    return result


COLD = r"""
import json, sys, time
t0 = time.perf_counter()
from promptline.policy import load_policy_set
from promptline.policy import get_backend
get_backend("cel-expr-python").compile("true", expect_bool=True)
t1 = time.perf_counter()
policies, manifests = sys.argv[1].split(","), sys.argv[2].split(",")
load_policy_set(policies, manifests, backend="cel-expr-python")
t2 = time.perf_counter()
load_policy_set(policies, manifests, backend="cel-expr-python")
t3 = time.perf_counter()
print(json.dumps({"setup_ms": (t1 - t0) * 1000, "load_ms": (t2 - t1) * 1000, "reload_ms": (t3 - t2) * 1000}))
"""


def cold_load(manifests: list[str]) -> dict:
    """Load the shipped policies + the workload's manifests in a fresh interpreter."""
    import json
    import subprocess
    root = os.path.dirname(HERE)
    policies = [os.path.join(root, "policies", f) for f in ("default.yaml", "org-strict.yaml",
                                                             "project-rollout.yaml")]
    out = subprocess.run([sys.executable, "-c", COLD, ",".join(policies), ",".join(manifests)],
                         capture_output=True, text=True, check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    res.update(policies=", ".join(os.path.basename(p) for p in policies), manifests=len(manifests))
    return res


def _report_agreement(log, mismatches, checked, examples, cedar_errors, n) -> None:
    log("")
    log(f"agreement with ours (cel-expr-python, cache off) on the {n:,} requests:")
    for name, m in mismatches.items():
        scope = "all requests" if checked[name] == n else \
            f"{checked[name]:,} requests (the first --celpy-sample distinct ones)"
        log(f"  {name:<32} {m} mismatches on {scope}")
        for ex in examples.get(name, []):
            log(f"      {ex}")
    log(f"  cedar evaluation errors: {cedar_errors}")
    log("  restrictions so that every encoding is exact: rule = OR of helper tests [AND port]; globs only "
        "`/**/*.ext` and `/**/name` (Cedar's `like` * crosses `/`); IPv4 hosts and CIDRs only; no "
        "wildcards inside literals. " + ("ALL AGREE" if not any(mismatches.values()) else "DISAGREEMENT"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100_000, help="requests in the stream (default 100000)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: {QUICK_REQUESTS} requests, 1 round, cel-python decides all")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds, best reported (default 3)")
    ap.add_argument("--celpy-sample", type=int, default=2000,
                    help="distinct requests decided (timed and checked) on the slow cel-python backend "
                         "(default 2000; --quick: all)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--no-timing", action="store_true", help="only check agreement")
    args = ap.parse_args(argv)
    n, rounds, sample = args.requests, args.rounds, args.celpy_sample
    if args.quick:
        n, rounds, sample = min(n, QUICK_REQUESTS), 1, n
    print(f"command: python benchmarks/decide.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    res = run(n, rounds, sample, args.seed, timing=not args.no_timing)
    return 0 if not any(res["mismatches"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
