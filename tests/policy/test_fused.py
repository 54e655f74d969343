"""The fused matcher decides exactly like per-rule evaluation (hypothesis differential test).

Random rule sets (the shapes the fused index absorbs, mixed with rules it cannot absorb and
rules whose evaluation errors) x random requests (odd spellings included): the fused index
(every group fused), per-rule native evaluation and the reference backend cel-python must
give the same verdict, deciding rules, audit flags and — between the two cel-expr-python
tiers — the same errors, with the decision cache on and off.
"""

import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptline.policy import Manifest, Request, _policyset, load_policy_set
from promptline.policy._cel import available_backends
from promptline.policy._fused import FusedMatcher

DIRS = ["/", "/data", "/data/sub", "/data/sub/", "/database", "/srv/p", "~/notes", "/tmp/x y", "/a//b"]
GLOBS = ["/**/*.md", "/data/**/*.md", "/data/*/c.md", "/**/name", "*.md", "/srv/[ab]*", "/srv/p?", "/data/**",
         "/x/[", "~/notes/*.txt", "/data/sub/exact"]
HOSTS = ["*", "*.example.com", "example.com", "api.example.com", "10.1.2.3", "::1", "127.0.0.1",
         "*.co.uk", "EXAMPLE.com.", "bad host"]
CIDRS = ["10.0.0.0/8", "10.1.0.0/16", "private", "::/0", "fd00::/8", "0.0.0.0/0", "::ffff:10.0.0.0/104",
         "bad/cidr", "192.168.1.7/32"]
ENVS = ["AWS_*", "*_KEY", "*", "HOME", "A?C", "X[Y]*", "GITHUB_TOKEN", "AWS_SECRET_*"]
LITS = ["/data/a.md", "/etc/shadow", "api.example.com", "HOME", ""]

q = '"{}"'.format


def _atom():
    return st.one_of(
        st.sampled_from(DIRS).map(lambda d: f"within(request.path, {q(d)})"),
        st.sampled_from(GLOBS).map(lambda g: f"glob(request.path, {q(g)})"),
        st.sampled_from(HOSTS).map(lambda h: f"host_matches(request.host, {q(h)})"),
        st.sampled_from(CIDRS).map(lambda c: f"in_cidr(request.host, {q(c)})"),
        st.sampled_from(ENVS).map(lambda e: f"env_matches(request.name, {q(e)})"),
        st.sampled_from(["path", "host", "name", "url"]).flatmap(
            lambda f: st.sampled_from(LITS).map(lambda v: f"request.{f} == {q(v)}")),
        st.sampled_from([0, 22, 443, 5432]).map(lambda p: f"request.port == {p}"),
        st.just('request.name in ["HOME", "PATH", "AWS_KEY"]'),
        st.just('request.path in ["/data", "/data/sub"]'),
        st.sampled_from(["true", "false"]),
        # not absorbable: negation, methods, an erroring index, plugin facts
        st.just('!within(request.path, "/data")'),
        st.just('request.path.startsWith("/srv")'),
        st.just('request.argv[0] == "git"'),
        st.just("plugin.trusted"),
        st.just('request.name in plugin.capabilities.environment'),
    )


conditions = st.recursive(_atom(), lambda inner: st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(
    lambda t: f"({t[0]}) {t[1]} ({t[2]})"), max_leaves=4)

ACTIONS = [["fs.read"], ["fs.write"], ["fs.*"], ["net.connect", "net.resolve"], ["env.read"], ["process.exec"], []]


@st.composite
def rules(draw):
    out = []
    for i in range(draw(st.integers(1, 24))):
        effect = draw(st.sampled_from(["deny", "ask", "allow", "allow"]))
        lines = [f"  - id: r{i}", f"    effect: {effect}", f"    when: {q(draw(conditions).replace(chr(34), chr(92) + chr(34)))}"]
        acts = draw(st.sampled_from(ACTIONS))
        if acts:
            lines.append(f"    actions: [{', '.join(acts)}]")
        lines.append(f"    plugins: [{q(draw(st.sampled_from(['*', 'notes', 'n*'])))}]")
        if effect != "allow" and draw(st.integers(0, 4)) == 0:
            lines.append("    mode: audit")
        out.append("\n".join(lines))
    return out


PATHS = ["/data", "/data/a.md", "/data/sub/x/c.md", "/data/b/c.md", "/database/x", "/srv/p", "/srv/pq", "/srv/a1",
         "/", "/x/[", "/tmp/x y/z", "/a/b", "/etc/shadow", "/data/sub/exact", "~/notes/a.txt", "/data/../etc/shadow",
         "/data/sub/", "rel/name", "/q/name"]
REQ_HOSTS = ["api.example.com", "example.com", "EXAMPLE.COM", "a.b.example.com", "10.1.2.3", "10.9.9.9", "127.1",
             "::ffff:10.1.2.3", "::1", "fd00::5", "192.168.1.7", "192.168.1.6", "11.0.0.1", "10.0.0.1", "x.co.uk", "co.uk", "localhost", ""]
NAMES = ["HOME", "AWS_", "AWS_KEY", "AWS_SECRET_X", "GITHUB_TOKEN", "ABC", "XY_1", "PATH", "_KEY", ""]


@st.composite
def requests(draw):
    plugin = draw(st.sampled_from(["notes", "nx", "other"]))
    action = draw(st.sampled_from(["fs.read", "fs.write", "net.connect", "net.resolve", "env.read", "process.exec"]))
    if action.startswith("fs."):
        return Request(action, plugin, path=draw(st.sampled_from(PATHS)))
    if action.startswith("net."):
        return Request(action, plugin, host=draw(st.sampled_from(REQ_HOSTS)),
                       port=draw(st.sampled_from([0, 22, 443, 5432])))
    if action == "env.read":
        return Request(action, plugin, name=draw(st.sampled_from(NAMES)))
    return Request(action, plugin, argv=draw(st.sampled_from([(), ("git", "x"), ("ls",)])))


DIR = tempfile.mkdtemp(prefix="promptline-fused-")
MANIFEST = Manifest.model_validate({
    "id": "notes", "version": "1.0.0", "entry": {"python": "n:P"},
    "capabilities": {"filesystem": {"read": ["/data/", "/**/*.md"], "write": ["/tmp/x y/"]},
                     "environment": ["AWS_*", "HOME"], "network": ["*.example.com:443", "10.0.0.0/8"]}})


def _load(texts: list[str], backend: str, fuse_min: int, reqs: list[Request], cache: bool):
    path = os.path.join(DIR, "p.yaml")   # one path: decisions cite it
    with open(path, "w") as fh:
        fh.write("apiVersion: promptline/v1\nkind: Policy\nlayer: project\nrules:\n" + "\n".join(texts) + "\n")
    old = _policyset.FUSE_MIN
    _policyset.FUSE_MIN = fuse_min
    try:
        ps = load_policy_set([path], [MANIFEST], backend=backend, refuse_writable=False)
        return [ps.decide(r, use_cache=cache) for r in reqs + reqs]   # twice: the cache answers the second
    finally:
        _policyset.FUSE_MIN = old


def _view(d, with_errors: bool):
    return (d.verdict, d.decided_by, tuple(r.id for r in d.rules), d.would_deny, d.hint,
            d.errors if with_errors else bool(d.errors))


pytestmark = pytest.mark.skipif("cel-expr-python" not in available_backends(), reason="needs cel-expr-python")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules(), st.lists(requests(), min_size=1, max_size=8), st.booleans())
def test_fused_equals_per_rule_evaluation(texts, reqs, cache):
    fused = _load(texts, "cel-expr-python", 1, reqs, cache)
    per_rule = _load(texts, "cel-expr-python", 1 << 30, reqs, not cache)
    for r, a, b in zip(reqs + reqs, fused, per_rule):
        assert _view(a, True) == _view(b, True), r


@pytest.mark.skipif("cel-python" not in available_backends(), reason="needs the reference backend")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules(), st.lists(requests(), min_size=1, max_size=4), st.booleans())
def test_fused_equals_the_reference_backend(texts, reqs, cache):
    fused = _load(texts, "cel-expr-python", 1, reqs, cache)
    ref = _load(texts, "cel-python", 1, reqs, cache)
    for r, a, b in zip(reqs + reqs, fused, ref):
        assert _view(a, False) == _view(b, False), r


def test_cost_does_not_grow_with_rules():
    """White-box: a lookup touches the request's own keys, not the rules (10,000 dirs)."""
    from promptline.policy._fastpath import translate_val
    plugin = {"trusted": False}
    vals = [translate_val(f'within(request.path, "/d{i}") || host_matches(request.host, "*.h{i}.com")', plugin)
            for i in range(10_000)]
    m = FusedMatcher([(i, v.dnf) for i, v in enumerate(vals)])
    assert m.first(Request("fs.read", "p", path="/d9999/x")) == 9999
    assert m.first(Request("fs.read", "p", path="/d10000/x")) > 10_000
    assert m.first(Request("net.connect", "p", host="a.h42.com")) == 42
    assert m.first(Request("net.connect", "p", host="h42.com")) > 10_000


def test_the_decision_cache_keeps_what_is_used(monkeypatch, tmp_path):
    """No cliff: a key in use stays cached while the cache overflows with others; what is
    not used for two generations goes."""
    monkeypatch.setattr(_policyset, "CACHE_SIZE", 4)
    pol = tmp_path / "p.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: user\nrules:\n"
                   "  - id: all\n    effect: allow\n    when: 'true'\n")
    ps = load_policy_set([str(pol)], [], backend="cel-expr-python", refuse_writable=False)
    computed = []
    real = ps._decide
    monkeypatch.setattr(ps, "_decide", lambda r: computed.append(r.path) or real(r))
    hot = Request("fs.read", "p", path="/hot")
    first = ps.decide(hot)
    for i in range(50):
        assert ps.decide(Request("fs.read", "p", path=f"/cold/{i}")).allowed
        assert ps.decide(hot) is first          # still cached, the same shared value
        assert len(ps._cache) <= 4 and len(ps._old) <= 4
    assert computed.count("/hot") == 1
    assert ps.decide(Request("fs.read", "p", path="/cold/0")).allowed   # long evicted: decided again
    assert computed.count("/cold/0") == 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 11), max_size=80))
def test_the_keys_used_last_are_always_cached(monkeypatch, tmp_path, stream):
    """Two generations of CACHE_SIZE keys: a key among the CACHE_SIZE distinct keys used
    last is never decided again, and neither generation outgrows CACHE_SIZE."""
    monkeypatch.setattr(_policyset, "CACHE_SIZE", 3)
    pol = tmp_path / "p.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: user\nrules:\n"
                   "  - id: all\n    effect: allow\n    when: 'true'\n")
    ps = load_policy_set([str(pol)], [], backend="cel-expr-python", refuse_writable=False)
    computed = []
    real = ps._decide
    monkeypatch.setattr(ps, "_decide", lambda r: computed.append(r.path) or real(r))
    recent: list[str] = []   # distinct keys, most recently used last
    for k in stream:
        path = f"/k/{k}"
        before = len(computed)
        assert ps.decide(Request("fs.read", "p", path=path)).allowed
        if path in recent[-3:]:
            assert len(computed) == before, (path, recent)
        else:   # older keys may still sit in the old generation
            assert computed[before:] in ([], [path])
        recent = [p for p in recent if p != path] + [path]
        assert len(ps._cache) <= 3 and len(ps._old) <= 3
