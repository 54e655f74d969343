"""Canonical paths through both entry points: ``Enforcer.check()`` and the audit hook.

POSIX resolution order (symlinks before ``..``), a deny matching either the lexical or the
resolved spelling, rule directories resolved at load. A differential test runs every
filesystem case through ``check()`` and a real ``open()`` in plugin code; they must agree.
"""

from __future__ import annotations

import os

import pytest

from promptline.enforcer import PolicyViolation
from promptline.policy import Request

OPENER = """
def read(path):
    with open(path) as fh:
        return fh.read()
"""


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "fs"
    (root / "allowed" / "sub").mkdir(parents=True)
    (root / "secret" / "deep").mkdir(parents=True)
    (root / "dotfiles" / "ssh").mkdir(parents=True)
    (root / "allowed" / "a.txt").write_text("a")
    (root / "allowed" / "sub" / "b.txt").write_text("b")
    (root / "secret" / "s.txt").write_text("s")
    (root / "secret" / "deep" / "d.txt").write_text("d")
    (root / "dotfiles" / "ssh" / "id_rsa").write_text("KEY")
    (root / "dotfiles" / "ssh" / "config").write_text("cfg")
    os.symlink(root / "secret", root / "allowed" / "to_secret")          # dir link out
    os.symlink(root / "secret" / "s.txt", root / "allowed" / "s_link")   # file link out
    os.symlink(root / "secret" / "deep", root / "allowed" / "to_deep")   # .. after a link
    os.symlink(root / "allowed", root / "secret" / "to_allowed")         # link back in
    os.symlink(root / "dotfiles" / "ssh", root / "allowed" / ".ssh")    # a dotfile manager
    os.symlink(root / "nowhere", root / "allowed" / "dangling")
    os.symlink(root / "allowed" / "loop", root / "allowed" / "loop")
    return root


def _cases(root):
    r = str(root)
    return [
        f"{r}/allowed/a.txt", f"{r}/allowed/sub/b.txt", f"{r}/allowed/./a.txt",
        f"{r}/allowed//a.txt", f"{r}/allowed/sub/../a.txt", f"{r}/secret/s.txt",
        f"{r}/allowed/to_secret/s.txt", f"{r}/allowed/s_link", f"{r}/allowed/to_deep/../s.txt",
        f"{r}/allowed/to_deep/../../allowed/a.txt", f"{r}/secret/to_allowed/a.txt",
        f"{r}/allowed/.ssh/id_rsa", f"{r}/allowed/.ssh/config", f"{r}/dotfiles/ssh/id_rsa",
        f"{r}/allowed/dangling", f"{r}/allowed/loop", f"{r}/allowed/../secret/s.txt",
        f"{r}/allowed/to_secret/../allowed/a.txt", f"{r}/allowed/sub/../../secret/s.txt",
    ]


def _make(plugins, root):
    r = str(root)
    return plugins.make({"filesystem": {"read": [f"{r}/allowed/", f"{r}/dotfiles/"]}}, rules=[
        {"id": "no-secret", "effect": "deny", "actions": ["fs.read"],
         "when": f'within(request.path, "{r}/secret")'},
        {"id": "no-keys", "effect": "deny", "actions": ["fs.read"],
         "when": f'glob(request.path, "{r}/allowed/.ssh/id_*")'},
    ])


def _hook_allows(m, path) -> bool:
    try:
        m.read(path)
    except PolicyViolation:
        return False
    except OSError:
        pass   # allowed by the policy, then refused by the filesystem (dangling, loop)
    return True


def test_check_and_hook_decide_every_filesystem_case_alike(plugins, load_module, tree):
    enf = _make(plugins, tree)
    m = load_module(plugins.plugin_dir("p1"), OPENER)
    verdicts = {}
    for path in _cases(tree):
        by_check = enf.check("p1", Request("fs.read", "p1", path=path)).allowed
        by_hook = _hook_allows(m, path)
        assert by_check == by_hook, path
        verdicts[path] = by_check
    r = str(tree)
    # POSIX order: `to_deep/..` is /secret, not /allowed; a link out of a grant is not granted
    for refused in (f"{r}/allowed/to_deep/../s.txt", f"{r}/allowed/to_secret/s.txt",
                    f"{r}/allowed/s_link", f"{r}/allowed/.ssh/id_rsa", f"{r}/dotfiles/ssh/id_rsa",
                    f"{r}/allowed/sub/../../secret/s.txt",
                    f"{r}/secret/to_allowed/a.txt"):    # a deny judges the lexical spelling too
        assert verdicts[refused] is False, refused
    for allowed in (f"{r}/allowed/a.txt", f"{r}/allowed/sub/../a.txt", f"{r}/allowed/.ssh/config"):
        assert verdicts[allowed] is True, allowed


def test_relative_paths_resolve_against_the_cwd_in_both(plugins, load_module, tree, monkeypatch):
    enf = _make(plugins, tree)
    m = load_module(plugins.plugin_dir("p1"), OPENER)
    monkeypatch.chdir(tree / "allowed")
    for path, expect in (("a.txt", True), ("to_deep/../s.txt", False), ("s_link", False)):
        assert enf.check("p1", Request("fs.read", "p1", path=path)).allowed is expect, path
        assert _hook_allows(m, path) is expect, path


def test_ssh_as_a_symlink_to_dotfiles_is_refused_by_the_default_policy(plugins, load_module,
                                                                       tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "dotfiles" / "ssh").mkdir(parents=True)
    (home / "dotfiles" / "ssh" / "id_rsa").write_text("PRIVATE KEY")
    (home / "notes.txt").write_text("notes")
    os.symlink(home / "dotfiles" / "ssh", home / ".ssh")
    monkeypatch.setenv("PROMPTLINE_HOME", str(home))
    from promptline.enforcer import Enforcer
    from promptline.policy import load_policy_set
    enf0 = plugins.make({"filesystem": {"read": ["~/"]}}, install=False)
    ps = load_policy_set([os.path.join(os.path.dirname(__file__), "../../policies/default.yaml")],
                         [str(plugins.plugin_dir("p1") / "plugin.yaml")])
    enf = Enforcer(ps).install()
    plugins.enforcers.append(enf)
    assert enf0 is not enf
    m = load_module(plugins.plugin_dir("p1"), OPENER)
    for spelling in (f"{home}/.ssh/id_rsa", f"{home}/dotfiles/ssh/id_rsa",
                     f"{home}/dotfiles/../.ssh/id_rsa"):
        with pytest.raises(PolicyViolation, match="no-ssh-keys"):
            m.read(spelling)
        assert enf.check("p1", Request("fs.read", "p1", path=spelling)).rule.id == "no-ssh-keys"
    assert m.read(f"{home}/notes.txt") == "notes"                       # honest control


@pytest.mark.parametrize("pattern,path,expect", [
    ("/d/data[!_]*", "/d/data/x", False), ("/d/data[!_]*", "/d/datax", True),
    ("/d/data[!_]*", "/d/data_x", False), ("/d/a[/]b", "/d/a/b", False),
    ("/d/a[.-0]b", "/d/a/b", False), ("/d/a[.-0]b", "/d/a.b", True),
    ("/d/[]x]", "/d/]", True), ("/d/[]", "/d/[]", True), ("/d/[!]]", "/d/]", False),
    ("/d/[", "/d/[", True), ("/d/[a-c]", "/d/b", True), ("/d/[^a]", "/d/b", True),
    ("/d/x\\y", "/d/x\\y", True)])
def test_glob_classes_never_cross_a_slash(pattern, path, expect):
    from promptline.policy import glob
    assert glob(path, pattern) is expect


def test_policy_explain_shows_the_canonical_form_it_judged(tmp_path, monkeypatch):
    import json as _json

    from click.testing import CliRunner

    from promptline.cli.policy_cmd import policy_group
    home = tmp_path / "home"
    (home / "dot" / "ssh").mkdir(parents=True)
    os.symlink(home / "dot" / "ssh", home / ".ssh")
    monkeypatch.setenv("PROMPTLINE_HOME", str(home))
    policy = os.path.join(os.path.dirname(__file__), "../../policies/default.yaml")
    out = CliRunner().invoke(policy_group, [
        "explain", "--plugin", "notes", "--action", "fs.read", "--path",
        f"{home}/dot/../.ssh/id_rsa", "--policy", policy, "--json"], catch_exceptions=False)
    data = _json.loads(out.output)
    assert data["given"]["path"] == f"{home}/dot/../.ssh/id_rsa"
    assert data["request"]["path"] == f"{home}/dot/ssh/id_rsa"           # resolved, POSIX order
    assert f"{home}/.ssh/id_rsa" in data["request"]["aliases"]           # the lexical spelling
    assert data["decision"]["verdict"] == "deny"
    out = CliRunner().invoke(policy_group, [
        "explain", "--plugin", "notes", "--action", "net.connect", "--host", "0xa9fea9fe",
        "--port", "80", "--policy", policy], catch_exceptions=False)
    assert "judged as: host='169.254.169.254'" in out.output and "DENY" in out.output


def test_a_reload_resolves_rule_directories_again(tmp_path):
    import json as _json

    from promptline.policy import load_policy_set
    (tmp_path / "dot" / "ssh").mkdir(parents=True)
    key = str(tmp_path / "dot" / "ssh" / "id_rsa")
    policy = tmp_path / "p.yaml"
    policy.write_text(_json.dumps({"apiVersion": "promptline/v1", "kind": "Policy", "layer": "user",
                                   "rules": [{"id": "grant", "effect": "allow", "actions": ["fs.read"]},
                                             {"id": "keys", "effect": "deny", "actions": ["fs.read"],
                                              "when": f'within(request.path, "{tmp_path}/.ssh")'}]}))
    for backend in ("cel-expr-python", "cel-python"):
        before = load_policy_set([str(policy)], backend=backend)
        assert before.decide(Request("fs.read", "p", path=key)).allowed     # no link yet
    os.symlink(tmp_path / "dot" / "ssh", tmp_path / ".ssh")
    for backend in ("cel-expr-python", "cel-python"):
        after = load_policy_set([str(policy)], backend=backend)
        assert after.decide(Request("fs.read", "p", path=key)).rule.id == "keys", backend
