"""Plugin dependencies: resolve a consistent set of versions from an index.

A manifest's ``dependencies: {other-plugin: ">=1.2,<2"}`` names plugins that must be
installed (and loaded first) for it to work. :func:`resolve` picks, for every plugin the
set needs, the newest version in the index that every plugin asking for it admits and
whose ``requires`` admits this PromptLine, keeping an installed version when it fits (and
never moving an installed plugin backwards). It backtracks over older versions when a
newer one leads to a conflict. A cycle, a conflict or a missing plugin ends in one
:class:`RegistryError` naming the chain of plugins that led there
(``app 1.0.0 -> mid 1.2.0 -> leaf``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ._errors import RegistryError
from ._index import Index, IndexEntry
from ._versions import SemVer, requires_ok, spec_admits, version_spec

MAX_STEPS = 20_000          # candidate versions tried before giving up (real sets need a handful)


@dataclass(frozen=True)
class Need:
    """``plugin`` must satisfy ``spec`` because of ``chain`` (who asks, outermost first)."""

    plugin: str
    spec: str
    chain: tuple[str, ...] = ()

    def describe(self) -> str:
        path = " -> ".join((*self.chain, self.plugin))
        return f"{path} `{self.spec}`" if self.spec else path


@dataclass(frozen=True)
class Pick:
    """One plugin of the resolved set: its version, dependencies and the index entry to
    fetch (None when it stays as installed or was given)."""

    plugin: str
    version: str
    dependencies: tuple[tuple[str, str], ...]
    entry: IndexEntry | None


class _Failed(Exception):
    def __init__(self, error: RegistryError) -> None:
        self.error = error


def resolve(index: Index | None, needs: list[Need], *, current: str,
            installed: Mapping[str, tuple[str, Mapping[str, str]]],
            fixed: Mapping[str, tuple[str, Mapping[str, str]]] | None = None,
            changing: frozenset[str] = frozenset()) -> list[Pick]:
    """The plugins to install or update so that every need holds, dependencies first.

    ``installed``: id -> (version, dependencies) of what is in the plugin directory;
    ``fixed``: plugins whose new version is already chosen (e.g. a directory being
    installed); ``changing``: installed plugins that may move to another version (an
    update's target). Returns only plugins that change."""
    fixed = dict(fixed or {})
    state = _State(index, current, dict(installed), fixed, changing)
    assigned: dict[str, Pick] = {pid: Pick(pid, v, tuple(sorted(d.items())), None) for pid, (v, d) in fixed.items()}
    start = list(needs)
    for pid, (ver, deps) in fixed.items():
        start.extend(Need(dep, spec, (f"{pid} {ver}",)) for dep, spec in sorted(deps.items()))
        start.extend(state.dependents_needs(pid))
    try:
        result = state.solve(assigned, start)
    except _Failed as failed:
        raise failed.error from None
    order = _topological(result)
    return [result[p] for p in order if p not in fixed and result[p].entry is not None]


class _State:
    def __init__(self, index: Index | None, current: str, installed: dict, fixed: dict, changing: frozenset[str]):
        self.index, self.current, self.installed, self.fixed, self.changing = index, current, installed, fixed, changing
        self.steps = 0

    def dependents_needs(self, pid: str) -> list[Need]:
        """What the installed plugins that depend on ``pid`` ask of it (they stay as they are)."""
        out = []
        for other, (ver, deps) in sorted(self.installed.items()):
            if pid in deps and other not in self.fixed and other not in self.changing:
                out.append(Need(pid, deps[pid], (f"installed {other} {ver}",)))
        return out

    def solve(self, assigned: dict[str, Pick], needs: list[Need]) -> dict[str, Pick]:
        for need in needs:
            held = assigned.get(need.plugin)
            if held is not None and not spec_admits(version_spec(need.spec), held.version):
                raise _Failed(self._conflict(need, held, needs))
        pending = next((n.plugin for n in needs if n.plugin not in assigned), None)
        if pending is None:
            cycle = _cycle(assigned)
            if cycle:
                raise _Failed(RegistryError(f"dependency cycle: {cycle}", reason="dependency-cycle",
                                            plugin=cycle.split(" ")[0],
                                            fix="plugins cannot depend on each other in a circle; tell their "
                                                "authors"))
            return assigned
        on_it = [n for n in needs if n.plugin == pending]
        first_error: RegistryError | None = None
        for pick in self._candidates(pending, on_it):
            self.steps += 1
            if self.steps > MAX_STEPS:
                raise _Failed(RegistryError(f"the dependencies of {on_it[0].describe()} are too tangled to "
                                            f"resolve in {MAX_STEPS} steps", reason="dependency-conflict",
                                            plugin=pending, fix="pin versions with plugin@VERSION"))
            chain = (*on_it[0].chain, f"{pending} {pick.version}")
            more = [Need(dep, spec, chain) for dep, spec in pick.dependencies]
            if pick.entry is not None:
                more.extend(self.dependents_needs(pending))
            try:
                return self.solve({**assigned, pending: pick}, needs + more)
            except _Failed as failed:
                first_error = first_error or failed.error
        if first_error is not None:
            raise _Failed(first_error)
        raise _Failed(self._nothing_fits(pending, on_it))

    def _candidates(self, pid: str, on_it: list[Need]) -> list[Pick]:
        specs = [version_spec(n.spec) for n in on_it] + [version_spec(n.spec) for n in self.dependents_needs(pid)]
        have = self.installed.get(pid)
        out: list[Pick] = []
        if have is not None and pid not in self.changing:
            ver, deps = have
            if all(spec_admits(s, ver) for s in specs):
                out.append(Pick(pid, ver, tuple(sorted(deps.items())), None))
        if self.index is None or pid not in self.index.plugins:
            return out
        for entry in self.index.versions(pid):
            if have is not None and SemVer(entry.version) <= SemVer(have[0]) and pid not in self.changing:
                continue                   # never move an installed dependency backwards
            if out and out[0].version == entry.version:
                continue
            pre_ok = any(n.spec and SemVer(entry.version).prerelease for n in on_it if "-" in n.spec)
            if SemVer(entry.version).prerelease and not pre_ok:
                continue
            if all(spec_admits(s, entry.version) for s in specs) and requires_ok(entry.requires, self.current):
                out.append(Pick(pid, entry.version, entry.dependencies, entry))
        return out

    def _conflict(self, need: Need, held: Pick, needs: list[Need]) -> RegistryError:
        by = [n for n in needs if n.plugin == need.plugin and n is not need and
              spec_admits(version_spec(n.spec), held.version)]
        how = f"{by[0].describe()} chose {held.version}" if by else f"{need.plugin} is {held.version}"
        if held.entry is None and need.plugin in self.installed and need.plugin not in self.fixed:
            how = f"{need.plugin} {held.version} is installed"
        return RegistryError(f"dependency conflict: {need.describe()} cannot be met: {how}",
                             reason="dependency-conflict", plugin=need.plugin,
                             fix="pick versions that agree (plugin@VERSION), or ask the authors to widen their ranges")

    def _nothing_fits(self, pid: str, on_it: list[Need]) -> RegistryError:
        asks = "; ".join(n.describe() for n in on_it + self.dependents_needs(pid))
        if self.index is None or pid not in self.index.plugins:
            where = self.index.location if self.index is not None else "no index"
            return RegistryError(f"missing dependency: {asks}: `{pid}` is not in the index {where}",
                                 reason="dependency-missing", plugin=pid,
                                 fix=f"publish `{pid}` to the index, or install it first from its source")
        versions = [e.version for e in self.index.versions(pid)]
        specs = [version_spec(n.spec) for n in on_it + self.dependents_needs(pid)]
        admitted = [v for v in versions if all(spec_admits(s, v) for s in specs)]
        if admitted:
            return RegistryError(f"no version of `{pid}` that {asks} admits works with promptline {self.current} "
                                 f"(or it would move the installed one backwards)", reason="incompatible",
                                 plugin=pid, fix="upgrade promptline, or ask the author for a compatible release")
        return RegistryError(f"dependency conflict: no version of `{pid}` satisfies {asks} "
                             f"(the index has {', '.join(versions) or 'none'})", reason="dependency-conflict",
                             plugin=pid, fix="pick versions that agree, or ask the authors to widen their ranges")


def _cycle(picks: Mapping[str, Pick]) -> str:
    """The first dependency cycle among ``picks`` as ``a 1.0.0 -> b 1.0.0 -> a``, or ''."""
    state: dict[str, str] = {}

    def visit(pid: str, path: list[str]) -> str:
        if state.get(pid) == "active":
            start = path.index(pid)
            return " -> ".join([f"{p} {picks[p].version}" for p in path[start:]] + [pid])
        if state.get(pid) == "done" or pid not in picks:
            return ""
        state[pid] = "active"
        for dep, _ in picks[pid].dependencies:
            found = visit(dep, [*path, pid])
            if found:
                return found
        state[pid] = "done"
        return ""

    for pid in sorted(picks):
        found = visit(pid, [])
        if found:
            return found
    return ""


def _topological(picks: Mapping[str, Pick]) -> list[str]:
    """Dependencies before dependents (ties by id)."""
    out: list[str] = []
    seen: set[str] = set()

    def visit(pid: str) -> None:
        if pid in seen or pid not in picks:
            return
        seen.add(pid)
        for dep, _ in picks[pid].dependencies:
            visit(dep)
        out.append(pid)

    for pid in sorted(picks):
        visit(pid)
    return out


def dependency_closure(ids: set[str] | frozenset[str], dependencies: Mapping[str, Mapping[str, str]]) -> set[str]:
    """``ids`` and every plugin they depend on, directly or not (as far as ``dependencies`` knows)."""
    out, todo = set(ids), list(ids)
    while todo:
        for dep in dependencies.get(todo.pop(), {}):
            if dep not in out:
                out.add(dep)
                todo.append(dep)
    return out


def load_order(dependencies: Mapping[str, Mapping[str, str]],
               versions: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Plugin ids with their dependencies first, and the ids that cannot load with why
    (a missing dependency, one whose version (from ``versions``) the range excludes, a
    cycle, or a dependency that cannot load)."""
    bad: dict[str, str] = {}
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(pid: str, path: tuple[str, ...]) -> bool:
        if state.get(pid) == "done":
            return pid not in bad
        if state.get(pid) == "active":
            return False
        state[pid] = "active"
        ok = True
        for dep in sorted(dependencies[pid]):
            if dep not in dependencies:
                bad[pid] = f"its dependency `{dep}` is not installed"
                ok = False
            elif versions is not None and dependencies[pid][dep] and \
                    not spec_admits(version_spec(dependencies[pid][dep]), versions.get(dep, "")):
                bad[pid] = f"it needs `{dep}` `{dependencies[pid][dep]}`, found {versions.get(dep)}"
                ok = False
            elif dep in path or state.get(dep) == "active":
                bad[pid] = f"dependency cycle: {' -> '.join((*path, pid, dep))}"
                ok = False
            elif not visit(dep, (*path, pid)):
                bad.setdefault(pid, f"its dependency `{dep}` cannot load ({bad.get(dep, 'a cycle')})")
                ok = False
        state[pid] = "done"
        if ok:
            order.append(pid)
        return ok

    for pid in sorted(dependencies):
        visit(pid, ())
    return order, bad


__all__ = ["Need", "Pick", "resolve", "load_order", "dependency_closure"]
