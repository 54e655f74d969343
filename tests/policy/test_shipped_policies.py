"""The shipped policies pass their own test files, on every installed CEL backend."""

import glob
import os
import subprocess
import sys

import pytest

from promptline.policy._cel import available_backends

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEST_FILES = sorted(glob.glob(os.path.join(ROOT, "policies", "*.test.yaml")))


def test_every_shipped_policy_has_a_test_file():
    policies = [p for p in glob.glob(os.path.join(ROOT, "policies", "*.yaml")) if not p.endswith(".test.yaml")]
    assert len(policies) >= 3
    for p in policies:
        assert os.path.exists(p[:-5] + ".test.yaml"), f"{p} has no .test.yaml"


@pytest.mark.parametrize("backend", available_backends())
def test_policy_test_command_passes(backend):
    out = subprocess.run([sys.executable, "-m", "promptline", "policy", "test", "--backend", backend,
                          "--coverage", *TEST_FILES], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 failed" in out.stdout


def test_policy_test_command_fails_on_a_wrong_expectation(tmp_path):
    bad = tmp_path / "bad.test.yaml"
    bad.write_text(f"""apiVersion: promptline/v1
kind: PolicyTest
policies: [{os.path.join(ROOT, 'policies', 'default.yaml')}]
cases:
  - name: wrongly expects ssh keys readable
    request: {{plugin: p, action: fs.read, path: ~/.ssh/id_rsa}}
    expect: allow
""")
    out = subprocess.run([sys.executable, "-m", "promptline", "policy", "test", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "FAIL" in out.stdout and "bad.test.yaml:5" in out.stdout


def test_policy_check_validates_every_file_by_its_kind(tmp_path):
    """`policy check policies/*.yaml` takes the test files beside the policies (like `opa check`)."""
    every = sorted(glob.glob(os.path.join(ROOT, "policies", "*.yaml")))
    out = subprocess.run([sys.executable, "-m", "promptline", "policy", "check", *every],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("policy test with") == len(TEST_FILES)
    bad = tmp_path / "bad.test.yaml"
    bad.write_text(f"""apiVersion: promptline/v1
kind: PolicyTest
policies: [{os.path.join(ROOT, 'policies', 'default.yaml')}]
cases:
  - name: a typo in the action
    request: {{plugin: p, action: fs.reed}}
    expect: deny
""")
    out = subprocess.run([sys.executable, "-m", "promptline", "policy", "check", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "bad.test.yaml:6:" in out.stderr and "fs.reed" in out.stderr, out.stderr
    odd = tmp_path / "odd.yaml"
    odd.write_text("apiVersion: promptline/v1\nkind: Nonsense\n")
    out = subprocess.run([sys.executable, "-m", "promptline", "policy", "check", str(odd)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "Nonsense" in out.stderr
