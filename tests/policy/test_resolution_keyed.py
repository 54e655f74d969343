"""A rule directory that resolves elsewhere at a reload rebuilds only the compiled forms
naming it; every other compiled rule is kept (a process child re-resolving /proc/self)."""

import os

from promptline.policy import Request, _fastpath, load_policy_set
from promptline.policy._compile import _programs

POLICY = """apiVersion: promptline/v1
kind: Policy
layer: org
rules:
  - id: moving
    effect: deny
    actions: [fs.read]
    when: 'within(request.path, "{link}")'
  - id: still
    effect: deny
    actions: [fs.read]
    when: 'within(request.path, "{fixed}")'
"""


def test_a_moved_directory_is_re_resolved_and_the_rest_stays_compiled(tmp_path):
    a, b, fixed = tmp_path / "a", tmp_path / "b", tmp_path / "fixed"
    for d in (a, b, fixed):
        d.mkdir()
    link = tmp_path / "link"
    link.symlink_to(a)
    policy = tmp_path / "org.yaml"
    policy.write_text(POLICY.format(link=link, fixed=fixed))

    def denied_by(ps, path):
        return [r.id for r in ps.decide(Request("fs.read", "p", path=str(path)), use_cache=False).rules]

    ps = load_policy_set([policy])
    assert denied_by(ps, a / "x") == ["moving"] and denied_by(ps, b / "x") == []
    still = f'within(request.path, "{fixed}")'
    kept = _fastpath._cache[still]
    programs = {k: v for k, v in _programs.items() if k[1] == still}
    assert programs

    os.unlink(link)
    link.symlink_to(b)
    ps = load_policy_set([policy])
    assert denied_by(ps, b / "x") == ["moving"] and denied_by(ps, a / "x") == []   # follows the link
    assert denied_by(ps, link / "x") == ["moving"] and denied_by(ps, fixed / "y") == ["still"]
    assert _fastpath._cache[still] is kept                                          # not rebuilt
    assert all(_programs.get(k) is v for k, v in programs.items())
    # the reference tier agrees (every rule's backend program, via explain)
    traces = {t.rule.id: t.matched for t in ps.explain(Request("fs.read", "p", path=str(b / "x"))).traces}
    assert traces["moving"] is True and traces["still"] is False
