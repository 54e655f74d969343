"""Library plugins (`entry: {library: x.so}`, the C ABI of examples/native-tools): dlopen'ed
only inside a sandboxed child, served over the MCP bridge; native code is implied and the
policy must allow it; a segfault is an error result and a restart, never a dead host."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from promptline.enforcer.audit import AuditLog
from promptline.loaders import ApprovalStore, PluginManager
from promptline.policy import PolicyError, load_policy_set

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "native-tools"
GCC = shutil.which("gcc")


def world(tmp_path: Path, *, rules: str = "", trust: str = "[]", granted: Path | None = None) -> PluginManager:
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLE, plugins / "native-tools")
    (plugins / "native-tools" / "plugin.sig").unlink(missing_ok=True)   # edited below; signatures are tested elsewhere
    if granted is not None:
        manifest = plugins / "native-tools" / "plugin.yaml"
        manifest.write_text(manifest.read_text().replace("/tmp/promptline-demo/project/", f"{granted}/"))
    pol = tmp_path / "policy.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings:\n  approve: declared\n"
                   f"  trust: {trust}\nrules:\n" + (rules or "  []\n"))
    (tmp_path / "log").mkdir()
    return PluginManager(policy_files=[str(pol)], search_path=[str(plugins)], config_path=False,
                         entry_points=False, audit_log=AuditLog(str(tmp_path / "log" / "audit.jsonl")),
                         approvals=ApprovalStore(str(tmp_path / "approvals.yaml")), call_timeout=20)


def test_a_library_plugin_is_served_from_a_child_and_its_crash_is_a_restart(tmp_path):
    granted = tmp_path / "granted"
    granted.mkdir()
    (granted / "hello.txt").write_text("hello from a granted file")
    (tmp_path / "secret.txt").write_text("not for plugins")
    with world(tmp_path, trust="[native-tools]", granted=granted) as pm:
        assert pm.load_all().loaded == ["native-tools"]
        loaded = pm.plugins["native-tools"]
        assert loaded.sandbox == "process", "a trusted library still never loads into the host"
        assert pm.policy_set.plugins["native-tools"].manifest.capabilities.native is True, "native is implied"
        assert sorted(n for n, _ in pm.list_tools()) == ["native-tools.add", "native-tools.crash",
                                                          "native-tools.read_file", "native-tools.upper"]
        assert pm.call_tool("native-tools.add", {"a": 2, "b": 40}).content == "42"
        assert pm.call_tool("native-tools.upper", {"text": "héllo \"x\""}).content == "HéLLO \"X\""
        bad = pm.call_tool("native-tools.add", {"a": "two", "b": 1})
        assert not bad.ok and bad.error.kind == "invalid-arguments", "arguments are checked before C sees them"
        first_pid = loaded.pid
        crash = pm.call_tool("native-tools.crash", {})
        assert not crash.ok and "SIGSEGV" in crash.content
        assert pm.call_tool("native-tools.add", {"a": 1, "b": 1}).content == "2", "the next call restarts it"
        assert loaded.pid != first_pid and loaded.starts == 2
        # the wall for native code is the sandbox (no hook sees C's fopen): Landlock
        ok = pm.call_tool("native-tools.read_file", {"path": str(granted / "hello.txt")})
        assert ok.ok and ok.content == "hello from a granted file", ok
        refused = pm.call_tool("native-tools.read_file", {"path": str(tmp_path / "secret.txt")})
        assert not refused.ok and "not for plugins" not in refused.content


def test_the_policy_must_allow_native_code(tmp_path):
    rules = textwrap.indent(textwrap.dedent("""\
        - id: no-native
          effect: deny
          actions: [native.load]
          plugins: [native-tools]
          message: no native code on this fleet
        """), "  ")
    with world(tmp_path, rules=rules) as pm:
        report = pm.load_all()
        assert report.loaded == []
        why = dict(report.refused)["native-tools"]
        assert "native library `libnative_tools.so` is refused by policy" in why and "no-native" in why
    with world(tmp_path / "control") as pm:           # the same plugin, no such rule: it loads
        assert pm.load_all().loaded == ["native-tools"]
        assert pm.call_tool("native-tools.add", {"a": 20, "b": 22}).content == "42"


@pytest.mark.skipif(GCC is None, reason="needs gcc")
def test_a_library_of_another_abi_version_is_refused(tmp_path):
    src = tmp_path / "v2.c"
    src.write_text("int promptline_abi(void){return 2;}\nchar*promptline_describe(void){return 0;}\n"
                   "char*promptline_list_tools(void){return 0;}\n"
                   "char*promptline_call_tool(const char*a,const char*b){return 0;}\nvoid promptline_free(char*p){}\n")
    with world(tmp_path) as pm:
        lib = Path(pm.search_path[0]) / "native-tools" / "libnative_tools.so"
        subprocess.run([GCC, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True, timeout=60)
        report = pm.load_all()          # the child is started at load: the ABI is checked there
        assert report.loaded == [] and "C ABI version 2" in dict(report.refused)["native-tools"], report
        r = pm.call_tool("native-tools.add", {"a": 1, "b": 2})
        assert not r.ok and r.error.kind == "unknown-tool", r.content


@pytest.mark.parametrize("library", ["../outside.so", "/usr/lib/libc.so", "tools.dll", "a b.so"])
def test_entry_library_must_be_a_shared_object_inside_the_plugin(tmp_path, library):
    manifest = f"id: lib\nversion: 1.0.0\nentry: {{library: \"{library}\"}}\n"
    with pytest.raises(PolicyError) as info:
        load_policy_set([], [(str(tmp_path / "plugin.yaml"), manifest)])
    assert "entry.library must be a `.so` file inside the plugin" in str(info.value)
    assert os.path.basename(str(tmp_path / "plugin.yaml")) in str(info.value)
