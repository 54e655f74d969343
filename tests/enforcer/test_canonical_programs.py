"""Programs are judged by the file the kernel executes (PATH lookup, realpath), never argv[0].

Real subprocesses from plugin code under the installed enforcer and the shipped
``policies/org-strict.yaml`` "no shells" rule; each attack has an honest control.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from promptline.enforcer import Enforcer, PolicyViolation
from promptline.policy import Request, load_policy_set, program_path

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
RUNNER = """
import subprocess
def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, **kw).stdout
"""

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


@pytest.fixture
def strict(plugins, load_module):
    d = plugins.plugin_dir("p1")
    d.mkdir(parents=True)
    (d / "plugin.yaml").write_text(json.dumps({
        "id": "p1", "version": "1.0.0", "entry": {"python": "p1:P"}, "sandbox": "none",
        "capabilities": {"process": ["git"]}}))
    trust = plugins.root / "trust.yaml"
    trust.write_text(json.dumps({"apiVersion": "promptline/v1", "kind": "Policy",
                                 "layer": "project", "settings": {"trust": ["p1"]}}))
    ps = load_policy_set([os.path.join(ROOT, "policies", "org-strict.yaml"), str(trust)],
                         [str(d / "plugin.yaml")])
    enf = Enforcer(ps).install()
    plugins.enforcers.append(enf)
    return enf, load_module(d, RUNNER)


def test_executable_argument_decides_not_argv0(strict):
    enf, m = strict
    with pytest.raises(PolicyViolation, match="no-process-exec-shells"):
        m.run(["git", "-c", "echo pwned"], executable="/bin/sh")
    assert m.run(["git", "--version"]).startswith("git version")       # honest control


def test_a_shell_named_git_on_the_childs_path_is_a_shell(strict, tmp_path):
    enf, m = strict
    fake = tmp_path / "bin"
    fake.mkdir()
    os.symlink(shutil.which("bash") or "/bin/sh", fake / "git")
    with pytest.raises(PolicyViolation, match="no-process-exec-shells"):
        m.run(["git", "-c", "echo pwned"], env={"PATH": str(fake)})
    assert m.run(["git", "--version"], env={"PATH": os.environ["PATH"]}).startswith("git")


def test_a_relative_program_is_resolved_against_the_childs_cwd(strict, tmp_path):
    enf, m = strict
    os.symlink(shutil.which("sh"), tmp_path / "git")
    with pytest.raises(PolicyViolation, match="no-process-exec-shells"):
        m.run(["./git", "-c", "echo pwned"], cwd=str(tmp_path))


def test_check_judges_the_same_program(strict):
    enf, _ = strict
    shell = Request("process.exec", "p1", path="/bin/sh", argv=("git", "-c", "id"))
    assert enf.check("p1", shell).rule.id == "no-process-exec-shells"
    git = Request("process.exec", "p1", argv=("git", "status"))
    assert git.path == program_path("git") and enf.check("p1", git).allowed
