"""Types: both CEL checkers know the declared types of `request` and `plugin`.

Mixed-type comparisons, non-boolean conditions and misspelt fields are load errors with the
policy file's line and column on both backends; a differential property test runs mixed-type
expressions through both and requires the same verdict (both refuse at load, or both
evaluate to the same value).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptline.policy import PolicyError, Request, available_backends, load_policy_set
from promptline.policy._cel import get_backend
from promptline.policy._errors import CelCompileError, CelEvalError

BACKENDS = [b for b in ("cel-expr-python", "cel-python") if b in available_backends()]


def _policy(tmp_path, when: str) -> str:
    f = tmp_path / "p.yaml"
    f.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: project\nrules:\n"
                 "  - id: r\n    effect: deny\n    when: " + json.dumps(when) + "\n")
    return str(f)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("when,message,column", [
    ('request.port > "1000"', "compares int with string", 12),
    ('request.port == "443"', "compares int with string", 12),
    ("request.port == 443.0", "compares int with double", 12),
    ("request.path", "a condition must be bool", 12),
    ("plugin.capabilities.nativ", "unknown field `plugin.capabilities.nativ`", 32),
    ('request.argv[0] == 1', "compares string with int", 12),
    ("request.port > 1 && request.path", "`&&` needs bool operands", 32),
    ('"x" in request.port', "`in` needs a list or map", 12),
])
def test_type_errors_are_load_errors_with_a_position(tmp_path, backend, when, message, column):
    with pytest.raises(PolicyError, match=message) as info:
        load_policy_set([_policy(tmp_path, when)], backend=backend)
    assert (info.value.line, info.value.column) == (7, column)   # file:line:column of the token
    assert load_policy_set([_policy(tmp_path, "request.port > 1000")], backend=backend)  # control


def test_locking_mode_locks_plugin_modes_too(tmp_path):
    org = tmp_path / "org.yaml"
    org.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\n"
                   "settings: {mode: enforce, locked: [mode]}\n")
    project = tmp_path / "project.yaml"
    project.write_text('apiVersion: promptline/v1\nkind: Policy\nlayer: project\n'
                       'settings: {plugin_modes: {"*": audit}}\n')
    with pytest.raises(PolicyError, match="`plugin_modes` is locked .*locking `mode` locks"):
        load_policy_set([str(org), str(project)])
    project.write_text('apiVersion: promptline/v1\nkind: Policy\nlayer: project\n'
                       'settings: {sandbox_minimum: process}\n')
    assert load_policy_set([str(org), str(project)]).settings.mode == "enforce"   # control


OPERANDS = {
    "request.port": 443, "request.path": "/x", "request.argv": ["git"], "request.args.n": 3,
    "plugin.signed": False, "size(request.argv)": 1,
}
LITERALS = ['"443"', "443", "443u", "443.0", "true", "null", '["a"]', "[1]", "{}", '{"a": 1}', '"/x"', "1", 'b"x"', "-1"]
OPS = ["==", "!=", "<", ">", "in"]


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs both CEL backends")
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(OPERANDS)), st.sampled_from(OPS), st.sampled_from(LITERALS),
       st.booleans())
def test_mixed_type_expressions_decide_alike_on_both_backends(left, op, literal, swap):
    src = f"{literal} {op} {left}" if swap else f"{left} {op} {literal}"
    data = {"request": Request("net.connect", "p", path="/x", port=443, argv=("git",),
                               args=json.dumps({"n": 3})).to_cel(),
            "plugin": {"id": "p", "version": "", "publisher": "", "signed": False, "sandbox": "",
                       "trusted": False, "capabilities": {}}}
    outcomes = []
    for name in BACKENDS:
        try:
            program = get_backend(name).compile(src, expect_bool=True)
        except CelCompileError:
            outcomes.append("load error")
            continue
        try:
            outcomes.append(program.evaluate(data))
        except CelEvalError:
            outcomes.append("evaluation error")
    assert outcomes[0] == outcomes[1], (src, outcomes)
