"""Property: an archive from an index is downloaded only when a key the policy trusts signed
its entry, or the user accepted it before the fetch (``allow_unsigned``, or yes to
``confirm_unsigned``), for the plugin and for each dependency it brings; refused otherwise,
with nothing left in the temporary directory. Explored over every signature state of a
plugin and of its dependency, require_signature, allow_unsigned and every answer of the
prompt (yes, no, a non-bool, a prompt that raises). Real indexes, real signatures."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_helpers import write_plugin, write_policy

from promptline.loaders._registry import Index, Registry, RegistryError, publish

FLAVORS = ("unsigned", "untrusted", "trusted")


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, key, other_key):
    """One index per (app flavor, leaf flavor): app 1.0.0 needs leaf."""
    base = tmp_path_factory.mktemp("gate")
    out = {}
    for app in FLAVORS:
        for leaf in FLAVORS:
            idx = base / f"{app}-{leaf}"
            for pid, flavor, deps in (("leaf", leaf, {}), ("app", app, {"leaf": ">=1"})):
                root = write_plugin(base / f"src-{app}-{leaf}", pid, version="1.0.0")
                doc = json.loads((root / "plugin.yaml").read_text())
                doc["dependencies"] = deps
                (root / "plugin.yaml").write_text(json.dumps(doc))
                kw = {"unsigned": True} if flavor == "unsigned" else \
                    {"key": (key if flavor == "trusted" else other_key)[0]}
                publish(root, idx, **kw)
            out[(app, leaf)] = idx
    return out


def _raises(_):
    raise RuntimeError("the terminal went away")


ANSWERS = {"none": None, "yes": lambda u: True, "no": lambda u: False, "truthy": lambda u: 1, "raises": _raises}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(app=st.sampled_from(FLAVORS), leaf=st.sampled_from(FLAVORS), require=st.booleans(),
       allow=st.booleans(), answer=st.sampled_from(sorted(ANSWERS)))
def test_an_archive_is_fetched_only_when_trusted_or_accepted(indexes, key, tmp_path, monkeypatch,
                                                            app, leaf, require, allow, answer):
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    tmpdir = work / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    policy = write_policy(work / "policy.yaml", trusted=(key[1],), require_signature=require)
    asked: list[str] = []
    fetched: list[str] = []
    prompt = ANSWERS[answer]
    confirm = None if prompt is None else (lambda u: asked.append(u.entry.id) or prompt(u))
    real = Index.download
    monkeypatch.setattr(Index, "download", lambda self, entry, dest: fetched.append(entry.id) or real(self, entry, dest))
    reg = Registry(work / "plugins", policy_files=[str(policy)], approvals=work / "approvals.yaml",
                   index=str(indexes[(app, leaf)]), allow_unsigned=allow, confirm_unsigned=confirm)

    def may_fetch(flavor: str) -> bool:
        return flavor == "trusted" or (not require and (allow or answer == "yes"))

    expected = [pid for pid, flavor in (("app", app), ("leaf", leaf))]
    stop = next((i for i, (pid, flavor) in enumerate(zip(expected, (app, leaf))) if not may_fetch(flavor)), None)
    try:
        with reg.prepare_install_set("app") as plans:
            assert stop is None, (app, leaf, require, allow, answer)
            assert sorted(p.plugin_id for p in plans.plans) == ["app", "leaf"]
    except RegistryError as exc:
        assert stop is not None, exc
        assert exc.reason == ("signature" if require else "unsigned"), exc
    assert fetched == expected[:stop], (fetched, app, leaf, require, allow, answer)
    if allow or require:
        assert asked == [], "no question when the answer is known"
    else:   # asked exactly for the entries no trusted key signed, up to the first refusal
        reached = expected if stop is None else expected[:stop + 1]
        assert asked == ([] if prompt is None else
                         [p for p, f in zip(expected, (app, leaf)) if p in reached and f != "trusted"])
    assert os.listdir(tmpdir) == [], "staging left behind"
    assert not (work / "plugins").exists() or os.listdir(work / "plugins") == []
