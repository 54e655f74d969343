"""Update: semver, requires, downgrades, same-version changes and capability growth; remove."""

from __future__ import annotations

import json

import pytest
from registry_helpers import snapshot, write_plugin

from promptline.enforcer.audit import read_records
from promptline.loaders._approval import ApprovalStore
from promptline.loaders._registry import RegistryError, SemVer, publish


def _publish(env, version, **kw):
    return publish(write_plugin(env.src, version=version, **kw), env.index, key=env.key_path)


def _version(env, pid="demo"):
    return json.loads((env.plugins / pid / "plugin.yaml").read_text())["version"]


@pytest.mark.parametrize("a, b", [("1.0.0-alpha", "1.0.0-alpha.1"), ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
                                  ("1.0.0-beta.2", "1.0.0-beta.11"), ("1.0.0-rc.1", "1.0.0"),
                                  ("1.9.0", "1.10.0"), ("0.9.9", "1.0.0")])
def test_semver_precedence(a, b):
    assert SemVer(a) < SemVer(b)
    assert SemVer("1.0.0+build.1") == SemVer("1.0.0")


def test_update_from_index_to_newest_compatible(env, http_index):
    _publish(env, "0.1.0")
    reg = env.registry(index=http_index)
    reg.install("demo")
    assert reg.update("demo") is None                     # up to date
    _publish(env, "0.2.0")
    _publish(env, "0.10.0")                               # semver, not string order
    _publish(env, "0.11.0", requires=">=99")              # needs a newer promptline: skipped
    _publish(env, "1.0.0-rc.1")                           # pre-releases only when asked for
    done = reg.update("demo")
    assert done is not None and done.version == "0.10.0" == _version(env)
    assert reg.update("demo") is None


def test_downgrade_refused_unless_forced(env):
    _publish(env, "0.1.0")
    _publish(env, "0.2.0")
    reg = env.registry()
    reg.install("demo")
    assert _version(env) == "0.2.0"
    before = snapshot(env.home)
    with pytest.raises(RegistryError, match="older than the installed 0.2.0; refusing to downgrade") as exc:
        reg.update("demo", wanted="0.1.0")
    assert exc.value.reason == "downgrade"
    assert snapshot(env.home) == before
    reg.update("demo", wanted="0.1.0", force=True)
    assert _version(env) == "0.1.0"


def test_wanted_version_that_requires_a_newer_promptline(env):
    _publish(env, "0.1.0")
    _publish(env, "0.2.0", requires=">=99")
    reg = env.registry()
    reg.install("demo")
    with pytest.raises(RegistryError, match="works with promptline") as exc:
        reg.update("demo", wanted="0.2.0")
    assert exc.value.reason == "incompatible"


def test_same_version_with_different_content_is_refused(env):
    src = write_plugin(env.src)
    reg = env.registry(env.open_policy)
    reg.install(str(src), yes=True)
    assert reg.update("demo") is None
    write_plugin(env.src, note="sneaky")
    with pytest.raises(RegistryError, match="with the same version number"):
        reg.update("demo", yes=True)
    assert "sneaky" not in (env.plugins / "demo" / "demo.py").read_text()


def test_capability_growth_asks_again_and_shows_the_diff(env):
    src = write_plugin(env.src)
    reg = env.registry(env.open_policy)
    reg.install(str(src), yes=True)
    write_plugin(env.src, version="0.2.0", network=("https://api.example.com", "https://evil.example.net"))
    plan = reg.prepare_update("demo")
    with plan:
        assert plan.approval_needed and plan.diff.grows
        assert plan.diff.lines() == ["+ network: https://evil.example.net"]
    before = snapshot(env.home)
    with pytest.raises(RegistryError, match="not approved"):
        reg.update("demo", confirm=lambda p: False)
    assert snapshot(env.home) == before and _version(env) == "0.1.0"
    seen = []
    reg.update("demo", confirm=lambda p: seen.append(p.diff.lines()) or True)
    assert seen == [["+ network: https://evil.example.net"]]
    assert _version(env) == "0.2.0"
    assert "network: https://evil.example.net" in ApprovalStore(env.approvals).get("demo").capabilities


def test_capability_growth_from_a_trusted_publisher_still_asks(env):
    _publish(env, "0.1.0")
    reg = env.registry(env.trusting_policy)
    reg.install("demo")                                   # pre-approved publisher: no question
    _publish(env, "0.2.0", read=("~/Documents/",))
    with pytest.raises(RegistryError, match="no terminal"):
        reg.update("demo")
    assert reg.update("demo", yes=True).version == "0.2.0"     # signed by a trusted key: --yes may answer


def test_capability_growth_of_unsigned_remote_code_refuses_yes(env):
    publish(write_plugin(env.src), env.index, unsigned=True)
    reg = env.registry(env.open_policy, confirm_unsigned=lambda u: True)    # a person at a terminal
    reg.install("demo", confirm=lambda p: True)
    publish(write_plugin(env.src, version="0.2.0", read=("~/Documents/",)), env.index, unsigned=True)
    with pytest.raises(RegistryError) as exc:
        reg.update("demo", yes=True)
    assert exc.value.reason == "yes-refused"


def test_shrinking_capabilities_from_the_same_publisher_needs_no_question(env):
    _publish(env, "0.1.0", read=("~/Documents/",))
    reg = env.registry(env.trusting_policy)
    reg.install("demo")
    _publish(env, "0.2.0")
    assert reg.update("demo").version == "0.2.0"


def test_update_of_a_plugin_not_installed(env):
    with pytest.raises(RegistryError, match="not installed") as exc:
        env.registry().update("ghost")
    assert exc.value.reason == "not-installed"


# -- remove -------------------------------------------------------------------------------


class FakeManager:
    def __init__(self):
        self.unloaded = []

    def unload(self, plugin_id):
        self.unloaded.append(plugin_id)
        return True


def test_remove_shuts_down_deletes_and_audits(env):
    src = write_plugin(env.src)
    reg = env.registry(env.open_policy)
    reg.install(str(src), yes=True)
    pm = FakeManager()
    gone = reg.remove("demo", manager=pm)
    assert pm.unloaded == ["demo"] and gone.version == "0.1.0"
    assert not (env.plugins / "demo").exists()
    assert "demo" not in reg.installed()
    assert ApprovalStore(env.approvals).get("demo") is None
    assert not [p for p in env.plugins.iterdir() if p.name.startswith(".promptline-staging-")]
    records = [r for r in read_records(env.audit) if r.get("kind") == "lifecycle"]
    assert (records[-1]["plugin"], records[-1]["event"], records[-1]["detail"]) == \
        ({"id": "demo", "version": "0.1.0"}, "unloaded", "removed")


def test_remove_keep_approval(env):
    reg = env.registry(env.open_policy)
    reg.install(str(write_plugin(env.src)), yes=True)
    reg.remove("demo", keep_approval=True)
    assert ApprovalStore(env.approvals).get("demo") is not None


def test_remove_unknown(env):
    with pytest.raises(RegistryError, match="not installed") as exc:
        env.registry().remove("ghost")
    assert exc.value.reason == "not-installed"
