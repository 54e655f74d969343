"""Python plugins in the process sandbox: the bootstrap installs the Enforcer for the plugin
before its code runs, decisions reach the host's audit log (written by the host), and the
plugin API (tools, errors, prompts, context) works across the process boundary."""

from __future__ import annotations

import json
import os

import pytest
from sandbox_helpers import load, write_python_plugin

CODE = '''
from promptline import ContextPlugin, PromptPlugin, PromptTemplate, ToolError

def probe(arg):
    kind = arg["kind"]
    if kind == "print":
        print("plugin chatter on stdout must not break the protocol")
        return "printed"
    if kind == "read":
        with open(arg["path"]) as fh:
            return fh.read()
    if kind == "raise":
        raise RuntimeError("plugin bug")
    if kind == "toolerror":
        raise ToolError("bad input from the model", kind="failed")
    if kind == "whoami":
        from promptline.enforcer import current_plugin
        return [os.getpid(), current_plugin()]


class Both(Plugin, PromptPlugin, ContextPlugin):
    def templates(self):
        return [PromptTemplate("summary", "Summarize {{ topic }} briefly", "a summary prompt")]

    def get_context(self, query):
        return "context for " + query
'''


@pytest.fixture(scope="module")
def py(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("py")
    (tmp / "granted").mkdir()
    (tmp / "granted" / "a.txt").write_text("granted text")
    (tmp / "denied.txt").write_text("denied text")
    root = write_python_plugin(tmp / "plugins", "pyplug", CODE, read=[str(tmp / "granted")])
    text = (root / "plugin.yaml").read_text().replace("types: [tool]", "types: [tool, prompt, context]")
    (root / "plugin.yaml").write_text(text.replace("pyplug:Plugin", "pyplug:Both"))
    loaded = load(root, tmp)
    loaded.extras["tmp"] = tmp
    yield loaded
    loaded.plugin.shutdown()


def call(py, **arg):
    return py.plugin.call_tool("run", {"arg": arg}, timeout=30)


def test_tools_and_a_call(py):
    assert {t.name for t in py.plugin.tools()} == {"run", "echo"}
    r = py.plugin.call_tool("echo", {"text": "hello"}, timeout=30)
    assert r.ok and r.content == "hello"


def test_code_runs_as_the_plugin_in_another_process(py):
    r = call(py, kind="whoami")
    pid, who = r.data
    assert pid != os.getpid() and who == "pyplug"


def test_print_does_not_corrupt_the_protocol(py):
    assert call(py, kind="print").data == "printed"
    assert py.plugin.call_tool("echo", {"text": "still fine"}, timeout=30).content == "still fine"


def test_granted_read_works(py):
    assert call(py, kind="read", path=str(py.extras["tmp"] / "granted" / "a.txt")).data == "granted text"


def test_denied_read_is_refused_in_the_child_and_logged_by_the_host(py):
    target = str(py.extras["tmp"] / "denied.txt")
    r = call(py, kind="read", path=target)
    assert not r.ok and "may not fs.read" in r.content
    py.extras["audit"].flush()
    records = [json.loads(line) for line in py.audit_path.read_text().splitlines()]
    mine = [rec for rec in records if rec["plugin"]["id"] == "pyplug" and rec.get("resource") == target]
    assert mine, records[-3:]
    assert mine[-1]["decision"] == "deny" and mine[-1]["action"] == "fs.read"
    assert mine[-1]["pid"] == os.getpid()   # written by the host, not by the child


def test_child_cannot_write_the_audit_log(py):
    r = call(py, kind="read", path=str(py.audit_path))
    assert not r.ok


def test_validation_error_keeps_its_kind(py):
    r = py.plugin.call_tool("echo", {"text": 5}, timeout=30)
    assert not r.ok and r.error.kind == "invalid-arguments" and r.error.field == "text"


def test_exceptions_and_tool_errors_become_error_results(py):
    r = call(py, kind="raise")
    assert not r.ok and r.error.kind == "exception" and "plugin bug" in r.content
    r = call(py, kind="toolerror")
    assert not r.ok and r.error.kind == "failed" and "bad input" in r.content


def test_unknown_tool(py):
    r = py.plugin.call_tool("nope", {}, timeout=30)
    assert not r.ok and "unknown tool" in r.content


def test_prompts_and_context_cross_the_boundary(py):
    (tpl,) = py.plugin.templates()
    assert tpl.name == "summary" and tpl.render(topic="sandboxes") == "Summarize sandboxes briefly"
    assert py.plugin.get_context("cats") == "context for cats"
