"""Per-plugin resource limits: `limits:` in the manifest (strict), capped by the policy
(`settings.limits`), applied by the process sandbox (real rlimits read by the child with
getrlimit, a real allocation refused), the call timeout honoured at every level, and shown by
`promptline plugin info`."""

import json
import resource  # noqa: F401 - the host imports it first (a stdlib extension found in plugin context: issue 11)
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_manager import env, manager, policy  # noqa: F401 - fixtures

from promptline.policy import DEFAULT_LIMITS, Limits, PolicyError, effective_limits, load_policy_set

CODE = '''
import resource, time
from promptline import Tool, ToolPlugin, ToolResult

class Limits(Tool):
    name = "limits"
    def execute(self, args):
        names = ("DATA", "CPU", "NPROC", "NOFILE")
        return ToolResult.success("ok", data={n: resource.getrlimit(getattr(resource, "RLIMIT_" + n))[0]
                                              for n in names})

class Grab(Tool):
    name = "grab"
    parameters = {"type": "object", "properties": {"mib": {"type": "integer"}}, "required": ["mib"]}
    def execute(self, args):
        block = bytearray(args["mib"] * 1024 * 1024)
        return ToolResult.success(f"got {len(block) >> 20} MiB")

class Nap(Tool):
    name = "nap"
    parameters = {"type": "object", "properties": {"s": {"type": "number"}}, "required": ["s"]}
    def execute(self, args):
        time.sleep(args["s"])
        return ToolResult.success("rested")

class Demo(ToolPlugin):
    def tools(self):
        return [Limits(), Grab(), Nap()]
'''


def write(plugins, pid, limits):
    d = plugins / pid
    d.mkdir()
    (d / "plugin.yaml").write_text(f"id: {pid}\nversion: 1.0.0\nentry: {{python: '{pid}_mod:Demo'}}\n"
                                   f"sandbox: none\nlimits: {limits}\n"
                                   "capabilities: {native: true}\n")   # `import resource` is native code
    (d / f"{pid}_mod.py").write_text(textwrap.dedent(CODE))
    return d


MANIFEST = "id: demo\nversion: 1.0.0\nentry: {{python: m:P}}\nlimits: {limits}\n"


@pytest.mark.parametrize("limits, error", [
    ("{memory: lots}", "`limits.memory`: size `lots` is not like `512MiB`"),
    ("{memory: 1KiB}", "outside 16 MiB"),
    ("{cpu_seconds: true}", "must be a whole number"),
    ("{cpu_seconds: -1}", "outside 1.."),
    ("{open_files: 1.5}", "must be a whole number"),
    ("{call_timeout: forever}", "duration `forever` is not like `60s`"),
    ("{call_timeout: 0}", "outside (0,"),
    ("{memroy: 1GiB}", "unknown key `limits.memroy`"),
    ("[1, 2]", "limits"),
])
def test_bad_limits_are_one_clear_error_with_file_and_line(tmp_path, limits, error):
    path = tmp_path / "plugin.yaml"
    with pytest.raises(PolicyError) as info:
        load_policy_set([], [(str(path), MANIFEST.format(limits=limits))])
    text = str(info.value)
    assert error in text and f"{path}:4:" in text, text


sizes = st.one_of(st.integers(16 * 2**20, 2**40),
                  st.builds(lambda n, u: f"{n}{u}", st.integers(17, 4096), st.sampled_from(["MiB", "MB"])))


@given(asked=sizes, cap=sizes)
def test_the_policy_cap_always_wins(asked, cap):
    got = effective_limits(Limits(memory=asked), Limits(memory=cap))
    a, c = Limits(memory=asked).memory, Limits(memory=cap).memory
    assert got.memory == min(a, c)
    assert ("memory" in got.capped) == (a > c)


def test_caps_from_several_layers_only_lower(tmp_path):
    org = tmp_path / "org.yaml"
    org.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings:\n"
                   "  limits: {memory: 1GiB, cpu_seconds: 100}\n")
    user = tmp_path / "user.yaml"
    user.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: user\nsettings:\n"
                    "  limits: {memory: 8GiB, cpu_seconds: 10}\n")
    ps = load_policy_set([org, user], [(str(tmp_path / "plugin.yaml"),
                                        MANIFEST.format(limits="{memory: 2GiB, processes: 8}"))])
    lim = ps.plugins["demo"].limits
    assert (lim.memory, lim.cpu_seconds, lim.processes, lim.open_files) == (2**30, 10, 8, DEFAULT_LIMITS.open_files)
    assert set(lim.capped) == {"memory", "cpu_seconds"}


def test_the_process_sandbox_applies_the_effective_limits(tmp_path, env):  # noqa: F811
    plugins, log = env
    write(plugins, "small", "{memory: 256MiB, cpu_seconds: 20, processes: 12, open_files: 48}")
    write(plugins, "roomy", "{}")
    pol = policy(tmp_path, settings="  trust: []\n  limits: {open_files: 40}\n")
    with manager(tmp_path, plugins, log, pol) as pm:
        assert sorted(pm.load_all().loaded) == ["roomy", "small"]
        small = pm.call_tool("small.limits", {}, timeout=20)
        assert small.data == {"DATA": 256 * 2**20, "CPU": 20, "NPROC": 12, "NOFILE": 40}, small
        roomy = pm.call_tool("roomy.limits", {}, timeout=20)
        assert roomy.data == {"DATA": DEFAULT_LIMITS.memory, "CPU": DEFAULT_LIMITS.cpu_seconds,
                              "NPROC": DEFAULT_LIMITS.processes, "NOFILE": 40}, roomy
        refused = pm.call_tool("small.grab", {"mib": 400}, timeout=20)
        assert not refused.ok and "MemoryError" in refused.content
        assert pm.call_tool("roomy.grab", {"mib": 400}, timeout=20).content == "got 400 MiB", "the control"


@pytest.mark.parametrize("trusted", [True, False], ids=["none", "process"])
def test_call_timeout_from_the_manifest_and_its_cap(tmp_path, env, trusted):  # noqa: F811
    plugins, log = env
    write(plugins, "quick", "{call_timeout: 300ms}")
    write(plugins, "patient", "{call_timeout: 1h}")
    pol = policy(tmp_path, settings=("  trust: [quick, patient]\n" if trusted else "  trust: []\n")
                 + "  limits: {call_timeout: 4s}\n")
    with manager(tmp_path, plugins, log, pol) as pm:
        pm.call_timeout = 10.0
        assert sorted(pm.load_all().loaded) == ["patient", "quick"]
        assert pm.call_timeout_of("quick") == 0.3 and pm.call_timeout_of("patient") == 4.0
        pm.call_tool("quick.nap", {"s": 0})           # a child is started
        slow = pm.call_tool("quick.nap", {"s": 2})
        assert not slow.ok and slow.error.kind == "timeout" and "0.3 s" in slow.content
        assert pm.call_tool("patient.nap", {"s": 0.5}).content == "rested", "the control"


def test_plugin_info_shows_the_effective_limits(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    write(plugins, "small", "{memory: 8GiB, cpu_seconds: 20}")
    pol = tmp_path / "policy.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings:\n  limits: {memory: 1GiB}\n")
    args = [sys.executable, "-m", "promptline", "plugin", "info", "small", "--policy", str(pol),
            "--approvals", str(tmp_path / "approvals.yaml")]
    environ = {"PROMPTLINE_PLUGIN_PATH": str(plugins), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    text = subprocess.run(args, capture_output=True, text=True, env=environ, timeout=60).stdout
    assert "memory: 1 GiB (capped by policy)" in text and "cpu_seconds: 20" in text, text
    data = json.loads(subprocess.run(args + ["--json"], capture_output=True, text=True, env=environ,
                                     timeout=60).stdout)
    assert data["limits"]["memory"] == 2**30 and data["limits"]["capped"] == ["memory"]
