"""The decision benchmark's workload: every engine decides every request like ours.

Runs the benchmark's smoke workload (``benchmarks/decide.py --quick`` size) without timing —
timings are never asserted (the machines are noisy; docs/design.md §12).
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "benchmarks")

pytest.importorskip("cedarpy")
pytest.importorskip("casbin")


def _load(name: str):
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def decide():
    return _load("decide")


@pytest.fixture(scope="module")
def result(decide):
    out = io.StringIO()
    res = decide.run(decide.QUICK_REQUESTS, rounds=1, celpy_sample=decide.QUICK_REQUESTS,
                     out=out, timing=False)
    res["text"] = out.getvalue()
    return res


@pytest.mark.timeout(120)
def test_every_engine_agrees_with_ours_on_every_request(result):
    from promptline.policy._cel import available_backends
    expected = {"plain Python", "cedarpy", "pycasbin", "ours cel-expr-python (cache on)"}
    expected |= {f"ours {b}" for b in available_backends()}
    assert expected <= set(result["mismatches"]), result["text"]
    for name, n in result["mismatches"].items():
        assert n == 0, f"{name} disagrees with ours on {n} requests\n{result['text']}"
        assert result["checked"][name] == result["n_requests"], f"{name} did not decide every request"
    assert result["cedar_errors"] == 0, result["text"]


def test_workload_shape(result):
    n = result["n_requests"]
    assert n == _load("decide").QUICK_REQUESTS
    assert 0.15 <= result["n_distinct"] / n <= 0.25
    v = result["verdicts"]
    assert set(v) == {"allow", "deny", "ask"}   # every verdict is exercised
    assert 0.2 <= v["deny"] / n <= 0.4          # "about 30% denied"


def test_workload_is_deterministic_and_sized():
    workload = _load("workload")
    a, b = workload.make_workload(1000), workload.make_workload(1000)
    assert a.distinct == b.distinct and a.stream == b.stream
    assert len(a.plugins) == 20 and all(2 <= p.n_caps <= 6 for p in a.plugins)
    assert 25 <= len(a.rules) <= 35
    assert {r.effect for r in a.rules} == {"deny", "ask", "allow"}
    kinds = {atom.kind for r in a.rules for atom in r.atoms}
    assert {"within", "glob", "host", "cidr", "env"} <= kinds


def test_policy_files_are_real_yaml_that_our_cli_accepts(tmp_path):
    workload = _load("workload")
    from promptline.policy import load_policy_set
    w = workload.make_workload(200)
    policy_path, manifests = workload.write_files(w, str(tmp_path))
    ps = load_policy_set([policy_path], manifests)
    assert len(ps.plugins) == 20
    assert {r.id for r in ps.rules} >= {r.id for r in w.rules}
