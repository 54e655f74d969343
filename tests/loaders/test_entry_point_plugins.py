"""A pip-installed plugin (entry-point group `promptline.plugins`) loads end to end: a real
wheel, installed by pip into a target directory, discovered through importlib.metadata,
verified, and called in process and in the process sandbox."""

import importlib.metadata
import sys

import pytest
from wheel_helpers import build_wheel, pip_install_target

from promptline.enforcer.audit import AuditLog, read_records
from promptline.loaders import ApprovalStore, PluginManager


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    target = pip_install_target(build_wheel(base / "dist", sandbox="none"), base / "site")
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m == "hello_pl" or m.startswith(("hello_pl.", "hello_pl_extra"))]:
        del sys.modules[name]


def entry_points(site):
    return [ep for ep in importlib.metadata.entry_points(group="promptline.plugins")
            if ep.dist is not None and str(site) in str(ep.dist.locate_file(""))]


@pytest.mark.parametrize("trusted", [True, False], ids=["none", "process"])
def test_a_pip_installed_plugin_loads_and_answers(tmp_path, site, trusted):
    assert (site / "hello_pl-1.2.0.dist-info" / "entry_points.txt").is_file(), "pip wrote a real dist-info"
    eps = entry_points(site)
    assert [ep.name for ep in eps] == ["hello-pl"]
    pol = tmp_path / "policy.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings:\n"
                   + ("  trust: [hello-pl]\n" if trusted else "  trust: []\n"))
    (tmp_path / "log").mkdir()
    log = AuditLog(str(tmp_path / "log" / "audit.jsonl"))
    with PluginManager(policy_files=[str(pol)], search_path=[], config_path=False, entry_points=eps,
                       audit_log=log, approvals=ApprovalStore(str(tmp_path / "approvals.yaml")),
                       approve_all=True, call_timeout=20) as pm:
        report = pm.load_all()
        assert report.loaded == ["hello-pl"], report
        assert pm.plugins["hello-pl"].sandbox == ("none" if trusted else "process")
        result = pm.call_tool("hello-pl.hello", {"name": "ada"})
        # its package module, a sibling module of its distribution and its package data all reach it
        assert result.ok and result.content == "HELLO ADA / bonjour", result
        planted = pm.call_tool("hello-pl.write", {})
        assert not planted.ok and "fs.write" in planted.content, "its installed files are read-only"
    assert not (site / "hello_pl" / "planted.py").exists()
    log.flush()
    denies = [r for r in read_records(log.path) if r.get("decision") == "deny"]
    assert [r["action"] for r in denies] == ["fs.write"], [(r["action"], r["resource"]) for r in denies]
