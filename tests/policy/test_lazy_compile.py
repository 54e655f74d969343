"""Rules the native tier decides are compiled by cel-expr-python only when first evaluated;
every compile error is still a load error at file:line."""

import threading

import pytest

from promptline.policy import PolicyError, Request, clear_compile_caches, load_policy_set
from promptline.policy._cel import available_backends, get_backend
from promptline.policy._compile import LazyProgram, compile_cached
from promptline.policy._errors import CelEvalError

pytestmark = pytest.mark.skipif("cel-expr-python" not in available_backends(),
                                reason="cel-expr-python not installed")

POLICY = """apiVersion: promptline/v1
kind: Policy
layer: org
rules:
  - id: native
    effect: deny
    actions: [fs.read]
    when: 'within(request.path, "/srv/secret")'
  - id: not-native
    effect: deny
    actions: [fs.read]
    when: 'request.path.size() > 4000 && [1, 2].exists(x, x == 2)'
"""


def _write(tmp_path, text):
    p = tmp_path / "org.yaml"
    p.write_text(text)
    return p


def test_a_native_rule_is_compiled_at_first_evaluation_and_decides_the_same(tmp_path):
    clear_compile_caches()
    ps = load_policy_set([_write(tmp_path, POLICY)], backend="cel-expr-python")
    rules = {r.id: r for r in ps._rules}
    native, other = rules["native"].program, rules["not-native"].program
    assert isinstance(native, LazyProgram) and native._program is None
    assert not isinstance(other, LazyProgram)
    req = Request("fs.read", "p", path="/srv/secret/a")
    # explain() evaluates every rule's backend program: the lazy one compiles now
    traces = {t.rule.id: t for t in ps.explain(req).traces}
    assert traces["native"].matched is True and native._program is not None
    assert [r.id for r in ps.decide(req).rules] == ["native"]
    assert ps.decide(Request("fs.read", "p", path="/srv/public")).rules == ()


def test_compile_errors_are_still_load_errors_at_file_line(tmp_path):
    bad = POLICY.replace('within(request.path, "/srv/secret")', 'within(request.path, 7)')
    clear_compile_caches()
    with pytest.raises(PolicyError) as err:
        load_policy_set([_write(tmp_path, bad)], backend="cel-expr-python")
    assert err.value.line == 8 and "within" in str(err.value)
    for text in ('within(request.pth, "/a")', 'within(request.path, "/a") &&', 'wthin(request.path, "/a")'):
        with pytest.raises(PolicyError) as err:
            load_policy_set([_write(tmp_path, POLICY.replace('within(request.path, "/srv/secret")', text))],
                            backend="cel-expr-python")
        assert err.value.line == 8, text


def test_one_compile_under_concurrent_first_use_and_a_refusal_fails_closed():
    backend = get_backend("cel-expr-python")
    clear_compile_caches()
    program = compile_cached(backend, 'within(request.path, "/lazy/x")')
    assert isinstance(program, LazyProgram)
    calls = []
    real = backend.compile

    class Counting:
        name = backend.name

        def compile(self, *a, **k):
            calls.append(1)
            return real(*a, **k)

    program._backend = Counting()
    activation = {"request": {"path": "/lazy/x/y"}, "plugin": {}}
    results = []
    threads = [threading.Thread(target=lambda: results.append(program.evaluate(activation))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 8 and len(calls) == 1
    # a text the backend refuses (never built by the check, forced here) errs at every evaluation
    refused = LazyProgram(backend, "within(request.path, ")
    for _ in range(2):
        with pytest.raises(CelEvalError):
            refused.evaluate(activation)
