"""The core's API: check, require, guard (context manager, sync and async decorator), use,
install, audit mode, ask without/with a prompter, the audit log."""

from __future__ import annotations

import asyncio
import sys

import pytest

from promptline import enforcer
from promptline.enforcer import Enforcer, PolicyViolation, _hook
from promptline.policy import Request, Verdict


def test_all_matches_public_names():
    public = {n for n in dir(enforcer) if not n.startswith("_") and n != "audit"}
    assert public - {"EVENT_TABLE"} <= set(enforcer.__all__) | {n for n in public if n.islower() and hasattr(getattr(enforcer, n), "__path__")}
    for name in enforcer.__all__:
        assert hasattr(enforcer, name)


def test_check_allows_granted_and_denies_with_hint(plugins):
    enf = plugins.make({"filesystem": {"read": [str(plugins.data) + "/"]}}, install=False)
    ok = enf.check("p1", Request("fs.read", "p1", path=str(plugins.data / "a.txt")))
    assert ok.allowed and ok.rule.origin.endswith("plugin.yaml:1")
    no = enf.check("p1", Request("fs.read", "p1", path="/etc/hostname"))
    assert no.verdict is Verdict.DENY and "filesystem.read" in no.hint


def test_check_never_raises_on_a_broken_policy(plugins):
    class Broken:
        version = "x"
        plugins = {}

        def decide(self, request):
            raise RuntimeError("boom")
    enf = Enforcer(Broken())
    d = enf.check("p1", Request("fs.read", "p1", path="/x"))
    assert d.verdict is Verdict.DENY and "boom" in d.errors[0]


def test_require_message_names_plugin_action_resource_rule_and_hint(plugins):
    rules = [{"id": "no-secret", "effect": "deny", "actions": ["fs.read"],
              "when": f'request.path == "{plugins.data}/secret.txt"', "message": "not that one"}]
    enf = plugins.make({"filesystem": {"read": [str(plugins.data) + "/"]}}, rules=rules, install=False)
    with pytest.raises(PolicyViolation) as info:
        enf.require("p1", Request("fs.read", "p1", path=str(plugins.data / "secret.txt")))
    msg = str(info.value)
    assert "`p1`" in msg and "fs.read" in msg and "secret.txt" in msg
    assert "no-secret" in msg and "policy.yaml:" in msg and "not that one" in msg
    assert isinstance(info.value, PermissionError) and info.value.decision.rule.id == "no-secret"
    with pytest.raises(PolicyViolation) as info:
        enf.require("p1", Request("fs.read", "p1", path="/etc/hostname"))
    assert 'capabilities.filesystem.read: ["/etc/"]' in str(info.value)


def test_guard_context_manager_and_decorators(plugins):
    enf = plugins.make({})

    @enf.guard("p1")
    def sync():
        return enf.current_plugin()

    @enf.guard("p1")
    async def coro():
        await asyncio.sleep(0)
        return enf.current_plugin()

    with enf.guard("p1"):
        assert enf.current_plugin() == "p1"
    assert enf.current_plugin() is None
    assert sync() == "p1"
    assert asyncio.run(coro()) == "p1"
    with enf.guard("p1"), pytest.raises(PolicyViolation):
        open("/etc/hostname")
    open("/etc/hostname").close()


def test_plugin_cannot_switch_to_another_plugin(plugins):
    enf = plugins.make({}, extra={"p2": {"filesystem": {"read": ["/etc/"]}}})
    with enf.guard("p1"), pytest.raises(PermissionError):
        with enf.guard("p2"):
            pass


def test_use_swaps_policy_atomically(plugins):
    enf = plugins.make({})
    with enf.guard("p1"), pytest.raises(PolicyViolation):
        open(plugins.data / "a.txt")
    granted = plugins.make({"filesystem": {"read": [str(plugins.data) + "/"]}}, install=False)
    enf.use(granted.policy_set)
    with enf.guard("p1"):
        assert open(plugins.data / "a.txt").read() == "alpha"


def test_use_and_install_refused_from_plugin_code(plugins):
    enf = plugins.make({})
    with enf.guard("p1"):
        with pytest.raises(PolicyViolation):
            enf.use(enf.policy_set)
        with pytest.raises(PolicyViolation):
            enf.install()


def test_install_is_idempotent_and_active(plugins):
    enf = plugins.make({})
    enf.install()
    enf.install()
    assert enf.installed and _hook.installed()
    assert len(_hook._installed) == 1


def test_enforcer_attributes_are_read_only(plugins):
    enf = plugins.make({}, install=False)
    with pytest.raises(AttributeError):
        enf._snap = None


def test_audit_mode_allows_and_logs_would_deny(plugins, fake_log):
    enf = plugins.make({}, mode="audit", audit_log=fake_log)
    with enf.guard("p1"):
        open("/etc/hostname").close()
    assert ("p1", "fs.read", "/etc/hostname", "allow", True) in fake_log.records


def test_denies_are_logged_before_the_call_fails(plugins, fake_log):
    enf = plugins.make({}, audit_log=fake_log)
    with enf.guard("p1"), pytest.raises(PolicyViolation):
        open("/etc/hostname")
    assert fake_log.records[-1][:4] == ("p1", "fs.read", "/etc/hostname", "deny")


def test_real_audit_log_records_a_deny(plugins, tmp_path):
    from promptline.enforcer.audit import AuditLog
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    enf = plugins.make({}, audit_log=log)
    with enf.guard("p1"), pytest.raises(PolicyViolation):
        open("/etc/hostname")
    enf.uninstall()
    log.close()
    text = (tmp_path / "audit.jsonl").read_text()
    assert '"/etc/hostname"' in text and '"deny"' in text


ASK = [{"id": "ask-etc", "effect": "ask", "actions": ["fs.read"], "when": 'request.path == "/etc/hostname"'}]


def test_ask_without_prompter_is_deny(plugins):
    enf = plugins.make({"filesystem": {"read": ["/etc/"]}}, rules=ASK)
    with enf.guard("p1"), pytest.raises(PolicyViolation):
        open("/etc/hostname")


def test_ask_goes_to_the_prompter(plugins):
    asked = []

    from promptline.enforcer import Answer

    class Yes:
        def ask(self, plugin_id, request, decision):
            asked.append((plugin_id, request.path, decision.verdict))
            return Answer.ONCE

    enf = plugins.make({"filesystem": {"read": ["/etc/"]}}, rules=ASK, prompter=Yes())
    with enf.guard("p1"):
        open("/etc/hostname").close()
        open("/etc/hostname").close()
    assert asked == [("p1", "/etc/hostname", Verdict.ASK)] * 2  # prompt-once is not cached


def test_host_code_is_never_decided(plugins):
    enf = plugins.make({})
    open("/etc/hostname").close()
    assert enf.current_plugin() is None


def test_nested_event_inside_the_hook_is_refused(plugins):
    enf = plugins.make({})
    tid = __import__("_thread").get_ident()
    with enf.guard("p1"):
        _hook.BUSY[tid] = _hook.DECIDE
        try:
            with pytest.raises(PermissionError):
                sys.audit("open", "/etc/hostname", "r", 0)
        finally:
            del _hook.BUSY[tid]
