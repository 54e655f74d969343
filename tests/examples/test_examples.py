"""The example plugins under examples/, loaded through the real PluginManager.

Every example is loaded as shipped (signed by the examples' key, examples/keys/examples.pub)
under policies/default.yaml plus an org layer requiring signatures from that key; its tools,
templates, context and model are called, with one refused call per example explained.
Tampering with any file of a signed example makes it refuse to load.
"""

from __future__ import annotations

import os
import runpy
import shutil
import textwrap
from pathlib import Path

import pytest

from promptline.enforcer.audit import AuditLog, read_records
from promptline.loaders import ApprovalStore, PluginManager

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DEFAULT_POLICY = ROOT / "policies" / "default.yaml"
PUBLIC_KEY = (EXAMPLES / "keys" / "examples.pub").read_text().strip()
ALL_EXAMPLES = sorted(p.parent.name for p in EXAMPLES.glob("*/plugin.yaml"))
NEW_EXAMPLES = ["calculator", "code-review", "echo-model", "project-search"]
PROJECT = Path("/tmp/promptline-demo/project")     # the directory project-search's manifest grants


def signed_policy(directory: Path) -> str:
    """An org layer on top of default.yaml: signatures required, the examples' key trusted."""
    path = directory / "require-signature.yaml"
    path.write_text(textwrap.dedent(f"""\
        apiVersion: promptline/v1
        kind: Policy
        layer: org
        settings:
          require_signature: true
          trusted_keys: ["{PUBLIC_KEY}"]
        rules: []
        """))
    os.chmod(path, 0o644)
    return str(path)


def manager(state: Path, search: Path, policy_files=None, **kw) -> PluginManager:
    (state / "audit").mkdir(parents=True, exist_ok=True)
    policy_files = policy_files or [str(DEFAULT_POLICY), signed_policy(state)]
    return PluginManager(policy_files=policy_files, search_path=[str(search)], config_path=False,
                         entry_points=False, audit_log=AuditLog(str(state / "audit" / "audit.jsonl")),
                         approvals=ApprovalStore(str(state / "approvals.yaml")), approve_all=True,
                         grants=str(state / "grants.yaml"), call_timeout=20.0, **kw)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """One manager with every example loaded from examples/ itself (the committed bytes)."""
    demo = runpy.run_path(str(EXAMPLES / "demo.py"))   # the same files the demo makes
    demo["make_demo_data"]()
    state = tmp_path_factory.mktemp("examples-state")
    pm = manager(state, EXAMPLES)
    report = pm.load_all()
    yield pm, report, state
    pm.shutdown()


def records(state: Path) -> list[dict]:
    return list(read_records(str(state / "audit" / "audit.jsonl")))


def test_every_example_loads_signed_by_the_examples_key(loaded):
    pm, report, state = loaded
    assert set(NEW_EXAMPLES) <= set(ALL_EXAMPLES)
    assert report.refused == [], report.refused
    assert sorted(report.loaded) == ALL_EXAMPLES
    verified = {r["plugin"]["id"]: r["detail"] for r in records(state) if r.get("event") == "verified"}
    for pid in ALL_EXAMPLES:
        assert verified[pid].startswith("signed by "), verified[pid]
        assert pm.policy_set.plugins[pid].signed
        assert pm.policy_set.plugins[pid].sandbox == ("wasm" if pid == "wasm-wordcount" else "process")


def test_calculator(loaded):
    pm, _, _ = loaded
    assert pm.call_tool("calculator.calculate", {"expression": "2 + 2"}).content == "4"
    assert pm.call_tool("calculator.calculate", {"expression": "sqrt(16) * (3 - 1) / 4"}).content == "2"
    r = pm.call_tool("calculator.date", {"timezone": "Asia/Tokyo"})
    assert r.ok, r.content
    assert r.data["timezone"] == "Asia/Tokyo" and r.data["iso"].endswith("+09:00")
    # refused: not arithmetic; the evaluator never hands it to eval
    r = pm.call_tool("calculator.calculate", {"expression": "__import__('os').system('id')"})
    assert not r.ok and r.error.kind == "invalid-arguments" and "only these functions" in r.content
    r = pm.call_tool("calculator.date", {"timezone": "Mars/Olympus_Mons"})
    assert not r.ok and "unknown time zone" in r.content
    r = pm.call_tool("calculator.calculate", {})
    assert not r.ok and "`expression` is required" in r.content


def test_code_review_templates(loaded):
    pm, _, _ = loaded
    templates = dict(pm.templates())
    review = templates["code-review.code-review"]
    assert review.variables == ("language", "code")
    text = review.render(language="python", code="eval(input())")
    assert "```python\neval(input())\n```" in text and "security" in text
    assert templates["code-review.explain-diff"].variables == ("diff",)
    with pytest.raises(ValueError, match="`code`"):
        review.render(language="go")


def test_project_search_tools_and_context(loaded):
    pm, _, state = loaded
    r = pm.call_tool("project-search.search", {"query": "parse", "glob": "*.py"})
    assert r.ok and r.content.startswith("src/parser.py:1: def parse(text):"), r.content
    assert pm.call_tool("project-search.read", {"path": "src/parser.py"}).content.startswith("def parse")
    context = dict(pm.context("where is the parser"))
    assert "README.md:2: The parser lives in src/parser.py." in context["project-search"]
    # refused: a file outside the project directory, by the sandbox (the plugin does not check)
    r = pm.call_tool("project-search.read", {"path": "../notes/todo.md"})
    assert not r.ok and "PolicyViolation" in r.content
    assert "may not fs.read `/tmp/promptline-demo/notes/todo.md`" in r.content
    assert "default deny" in r.content and 'capabilities.filesystem.read: ["/tmp/promptline-demo/notes/"]' in r.content
    r = pm.call_tool("project-search.read", {"path": os.path.expanduser("~/.ssh/id_rsa")})
    assert not r.ok and "SSH keys are off limits" in r.content
    pm.audit_log.flush()
    denies = [(x["action"], x["resource"], x["decided_by"]) for x in records(state)
              if x["plugin"]["id"] == "project-search" and x.get("decision") == "deny"]
    assert ("fs.read", "/tmp/promptline-demo/notes/todo.md", "default") in denies


def test_echo_model_completes_in_the_process_sandbox(loaded):
    pm, _, _ = loaded
    r = pm.complete("echo-model", "hello")
    assert r.ok and r.content == "echo: hello"
    assert pm.complete("echo-model", "hello", upper=True, max_chars=8).content == "ECHO: HE"
    r = pm.complete("calculator", "hello")
    assert not r.ok and r.error.kind == "unsupported"
    assert not pm.complete("no-such-model", "x").ok


def test_shipped_examples_still_work(loaded):
    pm, _, _ = loaded
    assert pm.call_tool("wasm-wordcount.count", {"text": "one two three"}).data["words"] == 3
    assert pm.call_tool("notes.read", {"path": "/etc/passwd"}).ok is False


@pytest.mark.parametrize("pid", ALL_EXAMPLES)
def test_tampering_with_a_signed_example_refuses_it(tmp_path, pid):
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLES / pid, plugins / pid, ignore=shutil.ignore_patterns("__pycache__"))
    # change one byte of the largest file that is not the signature
    victim = max((p for p in (plugins / pid).rglob("*") if p.is_file() and p.name != "plugin.sig"),
                 key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    with manager(tmp_path / "state", plugins) as pm:
        report = pm.load_all()
    assert report.loaded == []
    [(refused, why)] = report.refused
    rel = victim.relative_to(plugins / pid).as_posix()
    assert refused == pid and f"file `{rel}` changed after signing" in why, why


def test_added_removed_or_unsigned_files_are_refused(tmp_path):
    plugins = tmp_path / "plugins"
    for pid in ("calculator", "echo-model", "code-review"):
        shutil.copytree(EXAMPLES / pid, plugins / pid, ignore=shutil.ignore_patterns("__pycache__"))
    (plugins / "calculator" / "extra.py").write_text("print('hi')\n")            # added
    (plugins / "echo-model" / "README.md").unlink()                              # removed
    (plugins / "code-review" / "plugin.sig").unlink()                            # unsigned
    (plugins / "calculator" / "__pycache__").mkdir()                             # ignored, not a change
    with manager(tmp_path / "state", plugins) as pm:
        report = pm.load_all()
    why = dict(report.refused)
    assert report.loaded == [] and set(why) == {"calculator", "echo-model", "code-review"}
    assert "extra.py" in why["calculator"]
    assert "README.md" in why["echo-model"]
    assert "signature" in why["code-review"].lower()


def test_examples_signed_by_another_key_are_refused(tmp_path):
    from promptline.loaders import generate_key, sign_plugin
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLES / "echo-model", plugins / "echo-model", ignore=shutil.ignore_patterns("__pycache__"))
    key = tmp_path / "other.pem"
    generate_key(key)
    sign_plugin(plugins / "echo-model", key)
    with manager(tmp_path / "state", plugins) as pm:
        report = pm.load_all()
    assert report.loaded == [] and report.refused[0][0] == "echo-model"
    assert "trusted" in report.refused[0][1].lower(), report.refused


def test_a_failing_model_plugin_is_an_error_result_not_a_crash(tmp_path):
    """ProcessPlugin.complete: the plugin's exception and non-string answers come back as
    error results; the child keeps serving."""
    d = tmp_path / "plugins" / "bad-model"
    d.mkdir(parents=True)
    (d / "plugin.yaml").write_text("id: bad-model\nversion: 0.1.0\ntypes: [model]\n"
                                   "entry: {python: bad:Bad}\nsandbox: process\n")
    (d / "bad.py").write_text(textwrap.dedent("""\
        from promptline import LanguageModel, ModelPlugin
        class M(LanguageModel):
            def complete(self, prompt, **options):
                if prompt == "boom":
                    raise RuntimeError("model exploded")
                if prompt == "num":
                    return 42
                return open("/etc/hostname").read()
        class Bad(ModelPlugin):
            def provider(self):
                return M()
        """))
    with manager(tmp_path / "state", tmp_path / "plugins", policy_files=[str(DEFAULT_POLICY)]) as pm:
        assert pm.load_all().loaded == ["bad-model"]
        r = pm.complete("bad-model", "boom")
        assert not r.ok and r.error.kind == "exception" and "model exploded" in r.content
        r = pm.complete("bad-model", "num")
        assert not r.ok and r.error.kind == "malformed-result"
        r = pm.complete("bad-model", "read")
        assert not r.ok and "PolicyViolation" in r.content and "/etc/hostname" in r.content
        r = pm.complete("bad-model", "x", opt=object())
        assert not r.ok and r.error.kind == "invalid-arguments"
