"""`promptline keys` and `promptline plugin` through click's CliRunner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner
from loader_helpers import make_plugin

from promptline.cli import main
from promptline.cli._scaffold import render_scaffold


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An isolated PromptLine: its own keys, plugins, approvals, config and policy."""
    paths = {name: tmp_path / name for name in ("keys", "plugins", "approvals.yaml", "config.yaml", "org.yaml")}
    paths["plugins"].mkdir()
    paths["org.yaml"].write_text(textwrap.dedent("""\
        apiVersion: promptline/v1
        kind: Policy
        layer: org
        settings:
          approve: review
        """))
    monkeypatch.setenv("PROMPTLINE_KEYS_DIR", str(paths["keys"]))
    monkeypatch.setenv("PROMPTLINE_PLUGIN_PATH", str(paths["plugins"]))
    monkeypatch.setenv("PROMPTLINE_APPROVALS", str(paths["approvals.yaml"]))
    monkeypatch.setenv("PROMPTLINE_CONFIG", str(paths["config.yaml"]))
    monkeypatch.setenv("PROMPTLINE_POLICY", str(paths["org.yaml"]))
    return paths


def invoke(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def trust(env, public_key, require=True):
    env["org.yaml"].write_text(env["org.yaml"].read_text()
                               + f"  require_signature: {str(require).lower()}\n  trusted_keys: [\"{public_key}\"]\n")


def test_keys_generate_and_list(env):
    result = invoke("keys", "generate", "--name", "acme")
    assert result.exit_code == 0, result.output
    public = next(line.split()[-1] for line in result.output.splitlines() if line.startswith("public key:"))
    assert (env["keys"] / "acme.pem").exists() and public.startswith("ed25519:")
    assert invoke("keys", "generate", "--name", "acme").exit_code == 1
    trust(env, public)
    rows = json.loads(invoke("keys", "list", "--json").output)
    assert rows == [{"name": "acme", "key_id": rows[0]["key_id"], "public_key": public,
                     "private_key": str(env["keys"] / "acme.pem"), "trusted": True}]


def test_sign_and_verify_then_tamper(env):
    invoke("keys", "generate", "--name", "acme")
    public = (env["keys"] / "acme.pem.pub").read_text().strip()
    root = make_plugin(env["plugins"], "demo")
    result = invoke("plugin", "sign", str(root))   # the only key is used
    assert result.exit_code == 0 and "signed `demo` 0.1.0: 3 files" in result.output
    assert invoke("plugin", "verify", str(root), "--trusted-key", public).exit_code == 0
    trust(env, public)
    ok = invoke("plugin", "verify", str(root))
    assert ok.exit_code == 0 and ok.output.startswith("ok: `demo` 0.1.0 signed by trusted key")
    (root / "demo.py").write_text("import os\n")
    bad = invoke("plugin", "verify", str(root))
    assert bad.exit_code == 1 and "file `demo.py` changed after signing" in bad.output


def test_verify_refuses_unsigned_and_untrusted(env, other_keypair):
    root = make_plugin(env["plugins"], "demo")
    assert "is not signed" in invoke("plugin", "verify", str(root)).output
    invoke("keys", "generate")
    invoke("plugin", "sign", str(root))
    out = invoke("plugin", "verify", str(root), "--trusted-key", other_keypair[1])
    assert out.exit_code == 1 and "which is not trusted" in out.output


def test_sign_refuses_an_invalid_manifest(env):
    invoke("keys", "generate")
    root = make_plugin(env["plugins"], "demo")
    (root / "plugin.yaml").write_text("id: Demo!\nversion: 1\n")
    out = invoke("plugin", "sign", str(root))
    assert out.exit_code == 1 and "plugin.yaml:" in out.output and "fix the manifest" in out.output


def test_list_info_approve_and_reapprove_after_growth(env):
    root = make_plugin(env["plugins"], "demo")
    listed = json.loads(invoke("plugin", "list", "--json").output)
    assert [(p["id"], p["approval"], p["signature"]) for p in listed["plugins"]] == \
        [("demo", "needs-approval", "unsigned")]
    info = invoke("plugin", "info", "demo")
    assert "network: https://api.example.com" in info.output and "promptline plugin approve demo" in info.output

    refused = invoke("plugin", "approve", "demo")  # CliRunner's stdin is not a terminal
    assert refused.exit_code == 1 and "rerun with --yes" in refused.output
    approved = invoke("plugin", "approve", "demo", "--yes")
    assert approved.exit_code == 0 and "+ network: https://api.example.com" in approved.output
    from promptline.enforcer.audit import read_records
    records = list(read_records(os.environ["PROMPTLINE_AUDIT_LOG"]))
    assert [(r["event"], r["plugin"]["id"]) for r in records if r.get("kind") == "lifecycle"] == [("approved", "demo")]
    assert json.loads(invoke("plugin", "list", "--json").output)["plugins"][0]["approval"] == "approved (user)"
    assert "already approved" in invoke("plugin", "approve", "demo", "--yes").output

    manifest = root / "plugin.yaml"
    manifest.write_text(manifest.read_text().replace('version: 0.1.0', 'version: 0.2.0').replace(
        'network: ["https://api.example.com"]', 'network: ["https://api.example.com", "https://x.example.net"]'))
    data = json.loads(invoke("plugin", "info", "demo", "--json").output)
    assert data["approval"] == "changed" and data["added"] == ["network: https://x.example.net"]
    again = invoke("plugin", "approve", "demo", "--yes")
    assert "+ network: https://x.example.net" in again.output and again.exit_code == 0


def test_approve_refuses_a_tampered_signed_plugin(env):
    invoke("keys", "generate")
    trust(env, (env["keys"] / "default.pem.pub").read_text().strip())
    root = make_plugin(env["plugins"], "demo")
    invoke("plugin", "sign", str(root))
    (root / "data" / "words.txt").write_text("changed")
    out = invoke("plugin", "approve", "demo", "--yes")
    assert out.exit_code == 1 and "cannot approve" in out.output and "changed after signing" in out.output


def test_unknown_plugin_and_problems_are_reported(env):
    bad = make_plugin(env["plugins"], "broken")
    (bad / "plugin.yaml").write_text("id: broken\n")
    out = invoke("plugin", "info", "nope")
    assert out.exit_code == 1 and "no plugin `nope` found" in out.output
    listed = invoke("plugin", "list")
    assert "missing required key" in listed.output


def test_plugin_new_refuses_bad_ids_and_existing_dirs(env, tmp_path):
    assert invoke("plugin", "new", "Bad_Id", "--dir", str(tmp_path)).exit_code == 1
    assert invoke("plugin", "new", "ok", "--dir", str(tmp_path)).exit_code == 0
    assert "already exists" in invoke("plugin", "new", "ok", "--dir", str(tmp_path)).output


def test_scaffold_passes_its_own_test_and_is_discoverable_and_signable(env, tmp_path):
    out = invoke("plugin", "new", "word-tools", "--dir", str(env["plugins"]))
    assert out.exit_code == 0, out.output
    root = env["plugins"] / "word-tools"
    assert sorted(os.listdir(root)) == ["README.md", "plugin.yaml", "test_word_tools_plugin.py",
                                        "word_tools_plugin.py"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout
    invoke("keys", "generate")
    assert invoke("plugin", "sign", str(root)).exit_code == 0
    trust(env, (env["keys"] / "default.pem.pub").read_text().strip())
    listed = json.loads(invoke("plugin", "list", "--json").output)["plugins"]
    assert listed[0]["id"] == "word-tools" and listed[0]["signature"].startswith("signed")


@pytest.mark.parametrize("kind", ["model", "prompt", "context"])
def test_every_plugin_type_scaffolds_a_plugin_that_passes_its_test_and_loads(env, kind):
    out = invoke("plugin", "new", f"my-{kind}", "--type", kind, "--dir", str(env["plugins"]))
    assert out.exit_code == 0, out.output
    root = env["plugins"] / f"my-{kind}"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and " passed" in run.stdout and "failed" not in run.stdout, run.stdout + run.stderr
    info = json.loads(invoke("plugin", "info", f"my-{kind}", "--json").output)
    assert info["types"] == [kind] and info["sandbox"] == "process"


def test_scaffold_at_sandbox_none_and_refuses_what_it_cannot_make():
    assert "sandbox: none" in render_scaffold("x", sandbox="none")["plugin.yaml"]
    assert invoke("plugin", "new", "w", "--sandbox", "wasm").exit_code == 2   # not a choice: usage error


def test_scaffold_names_avoid_shadowing_modules():
    files = render_scaffold("json")
    assert "json_plugin.py" in files and "python: json_plugin:JsonPlugin" in files["plugin.yaml"]
    assert "p3d_plugin.py" in render_scaffold("3d")


def test_info_on_a_manifest_with_a_typo_shows_the_error_with_its_line(env):
    root = make_plugin(env["plugins"], "typo")
    (root / "plugin.yaml").write_text((root / "plugin.yaml").read_text() + "capabilites: {}\n")
    out = invoke("plugin", "info", "typo")
    assert out.exit_code == 1
    assert "plugin `typo` cannot be read" in out.output and "plugin.yaml:" in out.output
    assert "unknown key `capabilites`" in out.output and "no plugin" not in out.output
