"""`PluginManager.register_plugin(obj, manifest=None)`: a plugin object the core built itself
has a manifest, is decided by policy (plugin.load, tool.call, the guarded calls its code
makes, judged by the in-process enforcer as that plugin) and is audited; it is refused when
the policy needs a sandbox above `none` for it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import ROOT, promptline, user_env

from promptline import PluginManager, Tool, ToolPlugin, ToolResult
from promptline.enforcer.audit import AuditLog, read_records
from promptline.loaders import LoaderError
from promptline.policy import Manifest, PolicyError

DEFAULT = str(ROOT / "policies" / "default.yaml")
MARKER = "<!-- snippet: register-plugin -->"


class Read(Tool):
    name = "read"
    description = "Reads a file"
    parameters = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}

    def execute(self, args):
        with open(args["path"]) as fh:
            return ToolResult.success(fh.read())


class RawRead(Tool):
    name = "raw_read"
    description = "Reads a file with os.open"
    parameters = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}

    def execute(self, args):
        fd = os.open(args["path"], os.O_RDONLY)
        try:
            return ToolResult.success(os.read(fd, 100).decode())
        finally:
            os.close(fd)


class Files(ToolPlugin):
    id = "core-files"
    version = "1.0.0"
    description = "files the core reads for the model"

    def tools(self):
        return [Read(), RawRead()]


def _granted(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "ok.txt").write_text("fine")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    return data, secret


def _manager(tmp_path: Path, *policies: str) -> tuple[PluginManager, str]:
    log = str(tmp_path / "audit.jsonl")
    return PluginManager(policy_files=[DEFAULT, *policies], search_path=[], entry_points=False,
                         config_path=False, audit_log=AuditLog(log)), log


def _policy(tmp_path: Path, name: str, body: str) -> str:
    p = tmp_path / name
    p.write_text("apiVersion: promptline/v1\nkind: Policy\n" + body)
    return str(p)


def _records(log: str, plugin: str = "core-files") -> list[dict]:
    return [r for r in read_records(log) if isinstance(r.get("plugin"), dict) and r["plugin"].get("id") == plugin]


def test_register_call_a_tool_and_a_refused_read_is_denied_and_audited(tmp_path):
    data, secret = _granted(tmp_path)
    pm, log = _manager(tmp_path)
    with pm:
        loaded = pm.register_plugin(Files(), {"id": "core-files", "version": "1.0.0",
                                              "capabilities": {"filesystem": {"read": [str(data)]}}})
        assert loaded.sandbox == "none" and pm.policy_set.plugins["core-files"].trusted
        assert sorted(n for n, _ in pm.list_tools()) == ["core-files.raw_read", "core-files.read"]
        ok = pm.call_tool("core-files.read", {"path": str(data / "ok.txt")})          # honest control
        assert ok.ok and ok.content == "fine"
        for tool in ("read", "raw_read"):
            refused = pm.call_tool(f"core-files.{tool}", {"path": str(secret)})
            assert not refused.ok and "PolicyViolation" in refused.content
            assert "may not fs.read" in refused.content
        assert pm.call_tool("core-files.raw_read", {"path": str(data / "ok.txt")}).content == "fine"
    recs = _records(log)
    events = [r["event"] for r in recs if r["kind"] == "lifecycle"]
    assert events == ["registered", "loaded", "unloaded"]
    denies = [r for r in recs if r["kind"] == "decision" and r["decision"] == "deny"]
    assert [(r["action"], r["resource"]) for r in denies] == [("fs.read", str(secret))] * 2
    assert any(r.get("action") == "plugin.load" and r.get("decision") == "allow" for r in recs)


def test_its_tool_calls_are_allowed_or_refused_by_policy(tmp_path):
    data, _ = _granted(tmp_path)
    no_raw = _policy(tmp_path, "org.yaml", "layer: org\nrules:\n  - id: no-raw-reads\n    effect: deny\n"
                     "    actions: [tool.call]\n    plugins: [core-files]\n    when: request.tool == \"raw_read\"\n")
    pm, log = _manager(tmp_path, no_raw)
    with pm:
        pm.register_plugin(Files(), {"id": "core-files", "version": "1.0.0",
                                     "capabilities": {"filesystem": {"read": [str(data)]}}})
        refused = pm.call_tool("core-files.raw_read", {"path": str(data / "ok.txt")})
        assert not refused.ok and "no-raw-reads" in refused.content
        assert pm.call_tool("core-files.read", {"path": str(data / "ok.txt")}).content == "fine"    # control
    deny = [r for r in _records(log) if r.get("decision") == "deny"]
    assert [(r["action"], r["rule"]) for r in deny] == [("tool.call", "no-raw-reads")]


def test_a_policy_requiring_process_refuses_registration(tmp_path):
    strict = _policy(tmp_path, "org.yaml", "layer: org\nsettings:\n  sandbox_minimum: process\n")
    pm, log = _manager(tmp_path, strict)
    with pm:
        with pytest.raises(LoaderError) as err:
            pm.register_plugin(Files())
        assert "requires sandbox `process`" in str(err.value) and "sandbox_minimum" in str(err.value)
        assert pm.plugins == {} and (pm.policy_set is None or "core-files" not in pm.policy_set.plugins)
        assert pm.call_tool("core-files.read", {"path": "/etc/hostname"}).error.kind == "unknown-tool"
    assert [r["event"] for r in _records(log)] == ["registered", "failed"]
    # control: the same object under the default policy alone registers
    (tmp_path / "control").mkdir()
    pm2, _ = _manager(tmp_path / "control")
    with pm2:
        assert pm2.register_plugin(Files()).id == "core-files"


def test_plugin_load_refused_by_policy_refuses_registration(tmp_path):
    deny = _policy(tmp_path, "org.yaml", "layer: org\nrules:\n  - id: no-core-files\n    effect: deny\n"
                   "    actions: [plugin.load]\n    plugins: [core-files]\n")
    pm, _ = _manager(tmp_path, deny)
    with pm:
        with pytest.raises(LoaderError, match="no-core-files"):
            pm.register_plugin(Files())
        assert pm.plugins == {} and "core-files" not in pm.policy_set.plugins     # taken out again


def test_manifest_forms_and_refusals(tmp_path):
    data, _ = _granted(tmp_path)
    yaml_path = tmp_path / "plugin.yaml"
    yaml_path.write_text(f"id: core-files\nversion: 2.0.0\ncapabilities:\n  filesystem: {{read: [{data}]}}\n")
    for given, version in ((None, "1.0.0"), (str(yaml_path), "2.0.0"),
                           (Manifest(id="core-files", version="3.0.0", entry={"python": "x:Y"}), "3.0.0")):
        pm, _ = _manager(tmp_path)
        with pm:
            assert pm.register_plugin(Files(), given).version == version
            assert pm.policy_set.plugins["core-files"].manifest.entry.python == f"{__name__}:Files" or given
            assert pm.policy_set.plugins["core-files"].sandbox == "none"
    pm, _ = _manager(tmp_path)
    with pm:
        with pytest.raises(LoaderError, match="asks for sandbox `process`"):
            pm.register_plugin(Files(), {"id": "core-files", "version": "1.0.0", "sandbox": "process"})
        with pytest.raises(LoaderError, match="another entry"):
            pm.register_plugin(Files(), {"id": "core-files", "version": "1.0.0", "entry": {"command": ["x"]}})
        with pytest.raises(PolicyError, match="capabilities"):
            pm.register_plugin(Files(), {"id": "core-files", "version": "1.0.0", "capabilities": {"netwrk": []}})

        class NoId(ToolPlugin):
            def tools(self):
                return []
        with pytest.raises(LoaderError, match="has no `id`"):
            pm.register_plugin(NoId())
        bad_yaml = tmp_path / "bad.yaml"
        bad_yaml.write_text("id: core-files\nversion: 1.0\n")
        with pytest.raises(PolicyError) as err:
            pm.register_plugin(Files(), str(bad_yaml))
        assert f"{bad_yaml}:2:" in str(err.value)
        assert pm.plugins == {}
        pm.register_plugin(Files())
        with pytest.raises(LoaderError, match="already loaded"):
            pm.register_plugin(Files())


def test_it_survives_a_policy_reload(tmp_path):
    data, secret = _granted(tmp_path)
    pm, _ = _manager(tmp_path)
    with pm:
        pm.register_plugin(Files(), {"id": "core-files", "version": "1.0.0",
                                     "capabilities": {"filesystem": {"read": [str(data)]}}})
        assert pm.reload_policy()
        assert pm.call_tool("core-files.read", {"path": str(data / "ok.txt")}).content == "fine"
        assert not pm.call_tool("core-files.read", {"path": str(secret)}).ok


def _snippet() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, re.S)
    assert m, "README lost its register_plugin snippet"
    return m.group(1)


def test_readme_snippet_runs_as_pasted_and_the_cli_shows_its_audit_trail(tmp_path):
    env = user_env(tmp_path)
    out = subprocess.run([sys.executable, "-c", _snippet()], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    first, second = [line for line in out.stdout.splitlines() if line][:2]
    assert first == "buy milk"
    assert "PolicyViolation" in second and "no-ssh-keys" in second
    shown = promptline(tmp_path, "audit", "show", "--plugin", "core-notes", "--json")   # default log, as the CLI
    recs = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r.get("event") for r in recs if r["kind"] == "lifecycle"] == ["registered", "loaded", "unloaded"]
    deny = [r for r in recs if r.get("decision") == "deny"]
    assert [(r["action"], r["rule"]) for r in deny] == [("fs.read", "no-ssh-keys")]
    assert deny[0]["resource"] == str(tmp_path / ".ssh" / "id_rsa")


_SEGMENTS = ["data", "data-evil", "database", "..", ".", "sub", "ok.txt", "secret.txt", "link"]


def test_reads_are_decided_by_the_grant_whatever_the_spelling(tmp_path):
    """Property: through the real hook, the in-code plugin reads a path exactly when its
    resolved form lies inside the granted directory; every refusal is a deny record."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    root = tmp_path / "root"
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    for d in (data, data / "sub", root):
        (d / "ok.txt").write_text("fine")
    for name in ("data-evil", "database"):
        (root / name).mkdir()
        (root / name / "ok.txt").write_text("fine")
    (root / "secret.txt").write_text("secret")
    (data / "link").symlink_to(root)                 # inside the grant, pointing out of it
    pm, log = _manager(tmp_path)
    with pm:
        pm.register_plugin(Files(), {"id": "core-files", "version": "1.0.0",
                                     "capabilities": {"filesystem": {"read": [str(data)]}}})

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=5))
        def check(parts):
            path = os.path.join(str(root), *parts)
            real = os.path.realpath(path)
            if not os.path.isfile(real):
                return
            inside = real == str(data) or real.startswith(str(data) + os.sep)
            before = sum(1 for r in read_records(log) if r.get("decision") == "deny")
            result = pm.call_tool("core-files.raw_read", {"path": path})
            pm.audit_log.flush()
            after = sum(1 for r in read_records(log) if r.get("decision") == "deny")
            assert result.ok == inside, (path, real, result.content)
            assert (after - before == 1) == (not inside)

        check()


def test_a_reload_that_requires_process_unloads_it(tmp_path):
    data, _ = _granted(tmp_path)
    org = tmp_path / "org.yaml"
    org.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\n")
    pm, log = _manager(tmp_path, str(org))
    with pm:
        pm.register_plugin(Files(), {"id": "core-files", "version": "1.0.0",
                                     "capabilities": {"filesystem": {"read": [str(data)]}}})
        assert pm.call_tool("core-files.read", {"path": str(data / "ok.txt")}).ok          # control
        org.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings:\n  sandbox_minimum: process\n")
        assert pm.reload_policy()
        assert "core-files" not in pm.plugins
        assert pm.call_tool("core-files.read", {"path": str(data / "ok.txt")}).error.kind == "unknown-tool"
    events = [(r["event"], r["detail"]) for r in _records(log) if r["kind"] == "lifecycle"]
    assert events[-2][0] == "unloaded" and events[-1][0] == "failed" and "sandbox `process`" in events[-1][1]
