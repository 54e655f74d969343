"""The read-only system baseline: readable by every plugin, never writable, never a secret,
and a deny rule still wins."""

from __future__ import annotations

import json
import os
import sys
import sysconfig

import pytest

from promptline.policy import (
    Request,
    Verdict,
    baseline_paths,
    dynload_dirs,
    interpreter_dirs,
    load_policy_set,
    stdlib_dirs,
)


def _policy_set(tmp_path, caps=None, rules=(), facts=None):
    d = tmp_path / "p"
    d.mkdir(exist_ok=True)
    (d / "plugin.yaml").write_text(json.dumps({"id": "p", "version": "1.0.0", "entry": {"python": "p:P"},
                                               "capabilities": caps or {}}))
    pol = tmp_path / "policy.yaml"
    pol.write_text(json.dumps({"apiVersion": "promptline/v1", "kind": "Policy", "layer": "org",
                               "rules": list(rules)}))
    os.chmod(pol, 0o644)
    return load_policy_set([str(pol)], [str(d / "plugin.yaml")], plugin_facts={"p": facts or {}})


def _read(ps, path):
    return ps.decide(Request("fs.read", "p", path=path)).verdict


def _write(ps, path):
    return ps.decide(Request("fs.write", "p", path=path)).verdict


SYSTEM = ["/usr/share/zoneinfo/Europe/Paris", "/etc/localtime", "/etc/mime.types",
          "/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/openssl.cnf", "/usr/share/ca-certificates/x.crt",
          "/usr/lib/locale/C.utf8/LC_CTYPE", "/usr/share/locale/locale.alias"]
NOT_BASELINE = ["/etc/passwd", "/etc/shadow", "/etc/ssl/private/key.pem", "/etc/hostname",
                "/root/.ssh/id_rsa", "/home/u/.gitconfig", "/etc/sudoers", "/proc/self/environ"]


@pytest.mark.parametrize("path", SYSTEM)
def test_system_data_is_readable_by_every_plugin_and_never_writable(tmp_path, path):
    ps = _policy_set(tmp_path)
    assert _read(ps, path) is Verdict.ALLOW
    assert _write(ps, path) is Verdict.DENY


@pytest.mark.parametrize("path", NOT_BASELINE)
def test_secrets_and_host_facts_are_not_in_the_baseline(tmp_path, path):
    ps = _policy_set(tmp_path, {"network": ["example.com:443"], "process": ["git"]})
    assert _read(ps, path) is Verdict.DENY


def test_resolver_files_only_with_a_network_capability(tmp_path):
    plain = _policy_set(tmp_path)
    (tmp_path / "n").mkdir()
    net = _policy_set(tmp_path / "n", {"network": ["example.com:443"]})
    for path in ("/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf"):
        assert _read(plain, path) is Verdict.DENY
        assert _read(net, path) is Verdict.ALLOW


def test_gitconfig_only_for_a_granted_git(tmp_path):
    plain = _policy_set(tmp_path)
    (tmp_path / "g").mkdir()
    git = _policy_set(tmp_path / "g", {"process": ["git"]})
    assert _read(plain, "/etc/gitconfig") is Verdict.DENY
    assert _read(git, "/etc/gitconfig") is Verdict.ALLOW


def test_a_deny_rule_still_wins(tmp_path):
    rule = {"id": "no-tz", "effect": "deny", "actions": ["fs.read"],
            "when": 'within(request.path, "/usr/share/zoneinfo")'}
    ps = _policy_set(tmp_path, rules=[rule])
    d = ps.decide(Request("fs.read", "p", path="/usr/share/zoneinfo/UTC"))
    assert d.verdict is Verdict.DENY and d.rule.id == "no-tz"
    assert _read(ps, "/etc/mime.types") is Verdict.ALLOW


def test_the_interpreter_installation_is_readable(tmp_path):
    ps = _policy_set(tmp_path)
    import json as json_mod
    for path in (json_mod.__file__, os.path.join(sysconfig.get_path("purelib"), "x-1.0.dist-info", "METADATA")):
        assert _read(ps, os.path.realpath(path)) is Verdict.ALLOW, path
    assert _write(ps, os.path.realpath(json_mod.__file__)) is Verdict.DENY


def test_own_places_are_read_write(tmp_path):
    data, work = tmp_path / "data", tmp_path / "work"
    ps = _policy_set(tmp_path, facts={"data_dir": str(data), "work_dir": str(work)})
    for d in (data, work):
        assert _read(ps, str(d / "x.db")) is Verdict.ALLOW
        assert _write(ps, str(d / "x.db")) is Verdict.ALLOW
    assert _write(ps, str(tmp_path / "elsewhere")) is Verdict.DENY
    relative = _policy_set(tmp_path, facts={"data_dir": "relative/dir"})
    assert _write(relative, os.path.abspath("relative/dir/x")) is Verdict.DENY


def test_stdlib_dirs_are_the_base_installation_venv_or_not():
    import _struct  # noqa: F401 - an extension module of the stdlib on every build here
    dyn = dynload_dirs()
    assert dyn and all(d.endswith("/") for d in dyn)
    ext = os.path.realpath(sys.modules["_struct"].__file__) if hasattr(sys.modules["_struct"], "__file__") else None
    if ext:
        assert os.path.dirname(ext) + "/" in dyn
    base_stdlib = os.path.realpath(sysconfig.get_path("stdlib", vars={"base": sys.base_prefix,
                                                                       "installed_base": sys.base_prefix})) + "/"
    assert base_stdlib in stdlib_dirs()
    assert not any("site-packages" in d for d in stdlib_dirs())
    assert all(p.startswith("/") for p in baseline_paths(network=True, programs=["git"]))
    assert any(d.startswith(os.path.realpath(sys.prefix)) for d in interpreter_dirs())


@pytest.mark.parametrize("backend", ["cel-expr-python", "cel-python"])
def test_the_generated_rules_compile_and_decide_alike_on_both_backends(tmp_path, backend):
    from promptline.policy import available_backends
    if backend not in available_backends():
        pytest.skip(f"{backend} is not installed")
    d = tmp_path / "p"
    d.mkdir()
    (d / "plugin.yaml").write_text(json.dumps({"id": "p", "version": "1.0.0", "entry": {"python": "p:P"},
                                               "capabilities": {"network": ["a.example:443"], "process": ["git"]}}))
    ps = load_policy_set([], [str(d / "plugin.yaml")], backend=backend,
                         plugin_facts={"p": {"data_dir": str(tmp_path / "data")}})
    rules = [r for r in ps.rules if r.ref.layer == "baseline"]
    assert len(rules) == 2
    for r in rules:   # the CEL text itself, through the backend's compiler and evaluator
        assert r.program.evaluate({"request": Request("fs.read", "p", path="/etc/mime.types").to_cel()}) is (
            r.id == "baseline:system-read")
        assert r.program.evaluate({"request": Request("fs.read", "p", path="/etc/passwd").to_cel()}) is False
    (tmp_path / "ref").mkdir()
    ref = _policy_set(tmp_path / "ref", {"network": ["a.example:443"], "process": ["git"]},
                      facts={"data_dir": str(tmp_path / "data")})   # the default backend
    for path in SYSTEM + NOT_BASELINE + ["/etc/hosts", "/etc/gitconfig", str(tmp_path / "data" / "x")]:
        assert _read(ps, path) is _read(ref, path), path


def test_the_sandboxs_proxy_variables_only_behind_the_egress_proxy_with_network(tmp_path):
    def env(ps, name):
        return ps.decide(Request("env.read", "p", name=name)).verdict
    for sub, caps, facts, expect in (("a", {"network": ["x.example:443"]}, {"egress_proxy": True}, Verdict.ALLOW),
                                     ("b", {"network": ["x.example:443"]}, {}, Verdict.DENY),   # in process: the user's
                                     ("c", {}, {"egress_proxy": True}, Verdict.DENY)):
        (tmp_path / sub).mkdir()
        ps = _policy_set(tmp_path / sub, caps, facts=facts)
        assert env(ps, "HTTPS_PROXY") is expect and env(ps, "http_proxy") is expect
        assert env(ps, "AWS_SECRET_ACCESS_KEY") is Verdict.DENY
