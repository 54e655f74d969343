"""`promptline plugin learn`: audit mode run, then the smallest manifest that allows it."""

import os
import subprocess
import sys

import yaml

from promptline.loaders._learn import fold, learn

CODE = '''
import os
from promptline import Tool, ToolPlugin, ToolResult

class Work(Tool):
    name = "work"
    description = "reads, peeks at env, tries ssh keys"
    parameters = {"type": "object", "properties": {"dir": {"type": "string"}}, "required": ["dir"]}
    def execute(self, args):
        for n in ("a.txt", "b.txt"):
            with open(os.path.join(args["dir"], n)) as fh:
                fh.read()
        os.environ.get("LEARN_ME")
        try:
            open(os.path.expanduser("~/.ssh/id_rsa")).read()
        except OSError:
            pass
        return ToolResult.success("done")

class P(ToolPlugin):
    def tools(self):
        return [Work()]
'''


def make(tmp_path):
    d = tmp_path / "lrn"
    d.mkdir()
    (d / "plugin.yaml").write_text("id: lrn\nversion: 0.1.0\nentry: {python: \"lrn_mod:P\"}\n")
    (d / "lrn_mod.py").write_text(CODE)
    data = tmp_path / "data"
    data.mkdir()
    for n in ("a.txt", "b.txt"):
        (data / n).write_text("x")
    return d, data


def test_learn_proposes_what_the_plugin_did_and_lists_what_policy_refuses(tmp_path):
    d, data = make(tmp_path)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    learned = learn(d, [("work", {"dir": str(data)})], policy_files=[os.path.join(root, "policies", "default.yaml")])
    assert learned.results == [("work", True, "done")]
    assert learned.capabilities["filesystem"]["read"] == [str(data) + "/"]
    assert learned.capabilities["environment"] == ["LEARN_ME"]
    assert any(a == "fs.read" and r.endswith("/.ssh/id_rsa") and rule == "no-ssh-keys" for a, r, rule in learned.refused)
    assert "network" not in learned.capabilities


def test_learned_manifest_then_runs_without_refusals(tmp_path):
    d, data = make(tmp_path)
    learned = learn(d, [("work", {"dir": str(data)})])
    manifest = yaml.safe_load((d / "plugin.yaml").read_text())
    manifest.update(learned.capabilities and {"capabilities": learned.capabilities})
    (d / "plugin.yaml").write_text(yaml.safe_dump(manifest))
    again = learn(d, [("work", {"dir": str(data)})])
    assert again.capabilities == learned.capabilities, "the proposal does not depend on today's manifest"
    assert again.covered and again.missing == [] and again.unused == []


def test_learn_compares_with_the_current_manifest(tmp_path):
    d, data = make(tmp_path)
    (d / "plugin.yaml").write_text(
        "id: lrn\nversion: 0.1.0\nentry: {python: \"lrn_mod:P\"}\n"
        f"capabilities:\n  filesystem: {{read: [\"{data}/\", \"/srv/never/\"]}}\n  network: [\"api.example.com:443\"]\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    learned = learn(d, [("work", {"dir": str(data)})], policy_files=[os.path.join(root, "policies", "default.yaml")])
    assert learned.capabilities["filesystem"]["read"] == [str(data) + "/"]
    assert not learned.covered and learned.missing == ["env.read LEARN_ME"]
    assert learned.unused == ["filesystem.read[1]: /srv/never/", "network[0]: api.example.com:443"]


def test_fold_prefers_files_until_a_directory_has_several():
    recs = [{"kind": "decision", "action": "fs.read", "decision": "allow", "would_deny": True,
             "request": {"path": p}} for p in ("/srv/a/1", "/srv/b/1", "/srv/b/2")]
    recs.append({"kind": "decision", "action": "net.connect", "decision": "allow", "would_deny": True,
                 "request": {"host": "api.x.com", "port": 443}})
    recs.append({"kind": "decision", "action": "net.resolve", "decision": "allow", "would_deny": True,
                 "request": {"host": "api.x.com"}})
    caps = fold(recs).capabilities
    assert caps["filesystem"]["read"] == ["/srv/a/1", "/srv/b/"]
    assert caps["network"] == ["api.x.com:443"]


def test_cli(tmp_path):
    d, data = make(tmp_path)
    out = subprocess.run([sys.executable, "-m", "promptline", "plugin", "learn", str(d), "--call", "work",
                          f'{{"dir": "{data}"}}'], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "capabilities:" in out.stdout and str(data) in out.stdout and "no-ssh-keys" in out.stdout
    assert "not covered by the current manifest: fs.read" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "promptline", "plugin", "learn", str(d), "--call", "work", "{nope"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "not JSON" in bad.stderr
