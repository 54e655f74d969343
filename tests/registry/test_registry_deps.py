"""Plugin dependencies: a three-plugin chain app -> mid -> leaf resolved from a real HTTP
index on 127.0.0.1; installs, updates and refusals (conflict, cycle, missing) are all or
nothing; remove refuses a needed plugin; the manager loads dependencies first."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from registry_helpers import snapshot, write_plugin

from promptline.enforcer.audit import read_records
from promptline.loaders._registry import Need, RegistryError, load_order, publish, resolve
from promptline.loaders._registry._index import Index, IndexEntry


def _plugin(env, pid, version, deps=None, **kw):
    root = write_plugin(env.src, pid, version=version, **kw)
    doc = json.loads((root / "plugin.yaml").read_text())
    doc["dependencies"] = deps or {}
    (root / "plugin.yaml").write_text(json.dumps(doc, indent=2) + "\n")
    return root


def _publish(env, pid, version, deps=None, **kw):
    return publish(_plugin(env, pid, version, deps, **kw), env.index, key=env.key_path)


def _installed(env):
    out = {}
    for d in sorted(env.plugins.iterdir()):
        if not d.name.startswith("."):
            out[d.name] = json.loads((d / "plugin.yaml").read_text())["version"]
    return out


def _chain(env):
    _publish(env, "leaf", "1.0.0")
    _publish(env, "leaf", "1.4.0")
    _publish(env, "leaf", "2.0.0")                       # outside mid's range
    _publish(env, "mid", "1.0.0", {"leaf": ">=1.2,<2"})
    _publish(env, "app", "1.0.0", {"mid": ">=1,<2"})


def test_three_plugin_chain_installs_from_http_index(env, http_index):
    _chain(env)
    reg = env.registry(index=http_index)
    with reg.prepare_install_set("app") as plans:
        assert [(p.plugin_id, p.version) for p in plans.plans] == [("leaf", "1.4.0"), ("mid", "1.0.0"),
                                                                  ("app", "1.0.0")]
        assert all(p.checks and p.checks[0].capability == "load the plugin" for p in plans.plans)
        done = plans.commit(approved=True)
    assert [r.id for r in done] == ["leaf", "mid", "app"]
    assert _installed(env) == {"app": "1.0.0", "leaf": "1.4.0", "mid": "1.0.0"}
    state = json.loads((env.plugins / ".promptline-registry.json").read_text())["plugins"]
    assert state["leaf"]["source"]["location"] == http_index
    events = [r["plugin"]["id"] for r in read_records(env.audit) if r.get("event") == "verified"]
    assert events == ["leaf", "mid", "app"]


def test_one_question_for_the_whole_set(env, http_index):
    _chain(env)
    fetched = []                                                # untrusted: a person must approve
    reg = env.registry(env.open_policy, index=http_index,
                       confirm_unsigned=lambda u: fetched.append(u.entry.id) or True)
    asked = []
    done = reg.install_set("app", confirm=lambda plans: asked.append([p.plugin_id for p in plans.plans]) or True)
    assert asked == [["leaf", "mid", "app"]] and len(done) == 3
    assert sorted(fetched) == ["app", "leaf", "mid"], "each entry no trusted key signed was accepted before its fetch"
    reg.remove_with_dependents("leaf")
    before = snapshot(env.home)
    with pytest.raises(RegistryError, match="not approved"):
        reg.install_set("app", confirm=lambda plans: False)
    assert snapshot(env.home) == before
    with pytest.raises(RegistryError, match="cannot approve code no trusted key signed") as exc:
        reg.install_set("app", yes=True)
    assert exc.value.reason == "yes-refused" and snapshot(env.home) == before


def test_update_keeps_the_set_consistent(env, http_index):
    _chain(env)
    reg = env.registry(index=http_index)
    reg.install_set("app", yes=True)
    # mid 1.1.0 needs leaf >=2; app admits mid <2: updating app brings mid and leaf along
    _publish(env, "mid", "1.1.0", {"leaf": ">=2,<3"})
    _publish(env, "mid", "2.0.0", {"leaf": ">=2,<3"})       # app does not admit it
    done = reg.update_set("mid", yes=True)
    assert [(r.id, r.version) for r in done] == [("leaf", "2.0.0"), ("mid", "1.1.0")]
    assert _installed(env) == {"app": "1.0.0", "leaf": "2.0.0", "mid": "1.1.0"}
    assert reg.update_set("mid", yes=True) == []              # 2.0.0 is newer but app excludes it
    # asking for it by name is a conflict naming the chain; nothing changes
    before = snapshot(env.home)
    with pytest.raises(RegistryError) as exc:
        reg.update_set("mid", wanted="2.0.0", yes=True)
    assert exc.value.reason == "dependency-conflict"
    assert "installed app 1.0.0 -> mid `>=1,<2`" in str(exc.value)
    assert snapshot(env.home) == before


def test_conflict_is_refused_with_the_chain_and_nothing_installed(env, http_index):
    _publish(env, "leaf", "1.0.0")
    _publish(env, "leaf", "2.0.0")
    _publish(env, "mid", "1.0.0", {"leaf": ">=2"})
    _publish(env, "other", "1.0.0", {"leaf": "<2"})
    _publish(env, "app", "1.0.0", {"mid": ">=1", "other": ">=1"})
    reg = env.registry(index=http_index)
    before = snapshot(env.home)
    with pytest.raises(RegistryError) as exc:
        reg.install_set("app", yes=True)
    assert exc.value.reason == "dependency-conflict"
    msg = str(exc.value)
    assert "app 1.0.0 -> other 1.0.0 -> leaf `<2`" in msg and "app 1.0.0 -> mid 1.0.0" in msg, msg
    assert snapshot(env.home) == before


def test_older_version_chosen_when_the_newest_conflicts(env, http_index):
    _publish(env, "leaf", "1.0.0")
    _publish(env, "leaf", "2.0.0")
    _publish(env, "mid", "1.0.0", {"leaf": "<2"})
    _publish(env, "mid", "1.1.0", {"leaf": ">=2"})
    _publish(env, "app", "1.0.0", {"mid": ">=1", "leaf": "<2"})
    reg = env.registry(index=http_index)
    done = reg.install_set("app", yes=True)
    assert [(r.id, r.version) for r in done] == [("leaf", "1.0.0"), ("mid", "1.0.0"), ("app", "1.0.0")]


def test_cycle_and_missing_are_refused(env, http_index):
    _publish(env, "a", "1.0.0", {"b": ">=1"})
    _publish(env, "b", "1.0.0", {"c": ">=1"})
    _publish(env, "c", "1.0.0", {"a": ">=1"})
    _publish(env, "lonely", "1.0.0", {"ghost": ">=1"})
    reg = env.registry(index=http_index)
    before = snapshot(env.home)
    with pytest.raises(RegistryError, match=r"dependency cycle: a 1.0.0 -> b 1.0.0 -> c 1.0.0 -> a") as exc:
        reg.install_set("a", yes=True)
    assert exc.value.reason == "dependency-cycle"
    with pytest.raises(RegistryError, match=r"missing dependency: lonely 1.0.0 -> ghost `>=1`") as exc:
        reg.install_set("lonely", yes=True)
    assert exc.value.reason == "dependency-missing"
    assert snapshot(env.home) == before


def test_set_commit_is_all_or_nothing(env, http_index, monkeypatch):
    _chain(env)
    reg = env.registry(index=http_index)
    before = snapshot(env.home)
    approvals_before = env.approvals.read_bytes() if env.approvals.exists() else None
    real = reg.approvals.approve
    calls = []

    def flaky(subject):
        calls.append(subject.plugin_id)
        if subject.plugin_id == "app":
            raise OSError("disk full")
        return real(subject)

    monkeypatch.setattr(reg.approvals, "approve", flaky)
    reg2 = env.registry(env.open_policy, index=http_index, confirm_unsigned=lambda u: True)
    monkeypatch.setattr(reg2.approvals, "approve", flaky)
    with pytest.raises(OSError, match="disk full"):
        with reg2.prepare_install_set("app") as plans:
            plans.commit(approved=True)
    assert calls == ["leaf", "mid", "app"]
    after = snapshot(env.home)
    assert {k: v for k, v in after.items() if k != str(env.plugins)} == \
        {k: v for k, v in before.items() if k != str(env.plugins)}
    from promptline.loaders import ApprovalStore
    assert approvals_before is None and ApprovalStore(env.approvals).entries() == {}   # approvals undone
    # honest control: the same set installs when nothing fails
    monkeypatch.setattr(reg2.approvals, "approve", real)
    assert len(reg2.install_set("app", yes=False, confirm=lambda p: True)) == 3


def test_remove_refuses_a_needed_plugin(env, http_index):
    _chain(env)
    reg = env.registry(index=http_index)
    reg.install_set("app", yes=True)
    with pytest.raises(RegistryError, match="needed by `mid`, `app`") as exc:
        reg.remove("leaf")
    assert exc.value.reason == "needed" and _installed(env) == {"app": "1.0.0", "leaf": "1.4.0", "mid": "1.0.0"}
    gone = reg.remove_with_dependents("leaf")
    assert [g.id for g in gone] == ["app", "mid", "leaf"] and _installed(env) == {}


def test_cli_install_update_remove(env, http_index):
    from click.testing import CliRunner

    from promptline.cli import main
    _chain(env)
    run = CliRunner().invoke
    args = env.cli_args() + ["--index", http_index]
    r = run(main, ["plugin", "install", "app", "--yes", *args])
    assert r.exit_code == 0, r.output
    assert "`app` brings its dependencies: leaf 1.4.0, mid 1.0.0" in r.output
    assert r.output.count("what it asks for") == 3
    r = run(main, ["plugin", "remove", "mid", *args])
    assert r.exit_code == 1 and "needed by `app`" in r.output and "--with-dependents" in r.output
    _publish(env, "mid", "1.1.0", {"leaf": ">=2,<3"})
    r = run(main, ["plugin", "update", "mid", "--yes", *args])
    assert r.exit_code == 0, r.output
    assert "updated `leaf` 1.4.0 -> 2.0.0" in r.output and "updated `mid` 1.0.0 -> 1.1.0" in r.output
    r = run(main, ["plugin", "remove", "mid", "--with-dependents", *args])
    assert r.exit_code == 0 and "removed `app`" in r.output and "removed `mid`" in r.output
    assert _installed(env) == {"leaf": "2.0.0"}


def test_index_entry_signature_covers_dependencies(env):
    _chain(env)
    idx = Index.open(env.index)
    entry = idx.versions("mid")[0]
    assert entry.dependencies == (("leaf", ">=1.2,<2"),)
    entry.verify([env.pub], require_signature=True)
    from dataclasses import replace
    forged = replace(entry, dependencies=(("leaf", ">=0"),))
    with pytest.raises(RegistryError, match="signature is not valid"):
        forged.verify([env.pub], require_signature=True)


def test_manager_loads_dependencies_first_and_refuses_missing(env, http_index, tmp_path):
    from promptline.loaders import PluginManager
    _chain(env)
    reg = env.registry(env.open_policy, index=http_index, confirm_unsigned=lambda u: True)
    reg.install_set("app", confirm=lambda p: True)
    loaded = []
    with PluginManager(policy_files=[str(env.open_policy)], search_path=[str(env.plugins)],
                       approvals=reg.approvals, entry_points=False, audit_log=False,
                       loaders={"process": _Recorder(loaded)}) as pm:
        report = pm.load_all()
        assert loaded == ["leaf", "mid", "app"], report
    loaded.clear()
    with PluginManager(policy_files=[str(env.open_policy)], search_path=[str(env.plugins)],
                       approvals=reg.approvals, entry_points=False, audit_log=False,
                       loaders={"process": _Recorder(loaded)}) as pm:
        pm.load_all(only=["mid"])                     # `tool call mid.x` starts mid and what it needs
        assert loaded == ["leaf", "mid"]
    # a missing dependency: mid and app are refused
    import shutil
    shutil.rmtree(env.plugins / "leaf")
    loaded.clear()
    with PluginManager(policy_files=[str(env.open_policy)], search_path=[str(env.plugins)],
                       approvals=reg.approvals, entry_points=False, audit_log=False,
                       loaders={"process": _Recorder(loaded)}) as pm:
        report = pm.load_all()
    assert loaded == []
    why = dict(report.refused)
    assert "its dependency `leaf` is not installed" in why["mid"]
    assert "its dependency `mid` cannot load" in why["app"]


class _Recorder:
    """A loader that records the order plugins are loaded in (the manager logic under test)."""

    def __init__(self, out):
        self.out = out

    def load(self, ctx):
        self.out.append(ctx.plugin.id)
        return _Loaded(ctx.plugin.id, ctx.plugin.version)


class _Loaded:
    def __init__(self, pid, version):
        self.id, self.version = pid, version

    def tools(self):
        return []

    def shutdown(self):
        pass


# ---------------------------------------------------------------------------------------
# The resolver, explored


def _index(graph: dict[tuple[str, str], dict[str, str]]) -> Index:
    plugins: dict[str, dict[str, IndexEntry]] = {}
    for (pid, ver), deps in graph.items():
        plugins.setdefault(pid, {})[ver] = IndexEntry(pid, ver, f"a/{pid}-{ver}.tar.gz", "0" * 64, 1, "sha256:x",
                                                      dependencies=tuple(sorted(deps.items())))
    return Index("mem", plugins)


NAMES = ["p0", "p1", "p2", "p3"]
VERS = ["1.0.0", "1.1.0", "2.0.0"]
SPECS = ["", ">=1", "<2", ">=1.1", "==1.0.0", ">=2"]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.tuples(st.sampled_from(NAMES), st.sampled_from(VERS)),
                       st.dictionaries(st.sampled_from(NAMES), st.sampled_from(SPECS), max_size=2),
                       min_size=1, max_size=10),
       st.sampled_from(NAMES))
def test_resolver_result_is_consistent_or_refused(graph, root):
    """Whatever the graph: either every need holds in the result (newest-first search), or
    one RegistryError with a dependency reason."""
    from promptline.loaders._registry._versions import spec_admits, version_spec
    graph = {k: {d: s for d, s in v.items() if d != k[0]} for k, v in graph.items()}
    idx = _index(graph)
    try:
        picks = resolve(idx, [Need(root, "")], current="0.1.0", installed={})
    except RegistryError as exc:
        assert exc.reason in ("dependency-conflict", "dependency-cycle", "dependency-missing", "incompatible")
        return
    chosen = {p.plugin: p for p in picks}
    assert root in chosen
    for p in picks:
        for dep, spec in p.dependencies:
            assert dep in chosen and spec_admits(version_spec(spec), chosen[dep].version)
    order = [p.plugin for p in picks]
    for p in picks:
        for dep, _ in p.dependencies:
            assert order.index(dep) < order.index(p.plugin)
    got, bad = load_order({p.plugin: dict(p.dependencies) for p in picks})
    assert not bad and set(got) == set(order)


def test_index_with_a_bad_dependency_range_is_refused(env):
    _chain(env)
    doc = json.loads((env.index / "index.json").read_text())
    doc["plugins"]["mid"]["versions"]["1.0.0"]["dependencies"] = {"leaf": "not a range"}
    (env.index / "index.json").write_text(json.dumps(doc))
    with pytest.raises(RegistryError, match="depends on `leaf` `not a range`, which is not a version range") as exc:
        Index.open(env.index)
    assert exc.value.reason == "bad-index"
