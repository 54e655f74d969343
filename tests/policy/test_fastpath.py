"""The native tier decides exactly like CEL (the reference cel-python), errors included."""

import pytest

from promptline.policy import Request
from promptline.policy._cel import available_backends, get_backend
from promptline.policy._errors import CelEvalError
from promptline.policy._fastpath import ERROR, translate
from promptline.policy._policyset import unknown_plugin_cel

PLUGIN = dict(unknown_plugin_cel("p"), trusted=True, capabilities={
    "network": [], "filesystem": {"read": ["/data"], "write": []}, "environment": ["GITHUB_TOKEN"],
    "process": [], "native": False})

EXPRESSIONS = [
    'within(request.path, "/data")', 'within(request.path, "/")', 'glob(request.path, "/data/**/*.md")',
    'host_matches(request.host, "*.example.com") && request.port == 443',
    'in_cidr(request.host, "10.0.0.0/8") || in_cidr(request.host, "private")',
    'env_matches(request.name, "AWS_*") && !(request.name in plugin.capabilities.environment)',
    'size(request.argv) > 0 && request.argv[0] == "git"',
    'request.argv[0] == "git" && size(request.argv) > 5',     # error absorbed only by false
    'request.argv[0] == "git" || true',
    'request.argv[1] in ["push", "pull"]',
    '!plugin.trusted || request.action == "fs.read"',
    'request.path.startsWith("/data/") && !request.path.endsWith(".secret")',
    'request.url.contains("token=")', 'request.port >= 1024 && request.port < 2000',
    'request.argv == ["git", "status"]', 'request.tool == "q" && request.plugin != "x"',
    '"\\u00e9t\\u00e9" == request.name', "request.name == 'a\\'b'",
]
REQUESTS = [
    Request("fs.read", "p", path="/data/notes/a.md"), Request("fs.read", "p", path="/data.md"),
    Request("fs.write", "p", path="/data/x.secret"),
    Request("net.connect", "p", host="api.example.com", port=443), Request("net.connect", "p", host="10.2.3.4", port=1500),
    Request("net.connect", "p", host="example.com", port=443), Request("env.read", "p", name="AWS_KEY"),
    Request("env.read", "p", name="GITHUB_TOKEN"), Request("env.read", "p", name="été"), Request("env.read", "p", name="a'b"),
    Request("process.exec", "p", argv=("git", "status")), Request("process.exec", "p", argv=("git", "push")),
    Request("process.exec", "p", argv=()), Request("process.exec", "p", argv=("git",)),
    Request("net.connect", "p", url="https://x/?token=1", host="x", port=443),
    Request.tool_call("p", "q", {"a": 1}),
]


def test_every_expression_is_in_the_subset():
    for src in EXPRESSIONS:
        assert translate(src, PLUGIN) is not None, src


@pytest.mark.parametrize("src", ['request.args.sql == "x"', 'request.path.matches("a+")', "plugin.nope",
                                 'request.port == "443"', "request.argv[0] + 1 == 2", 'f(request.path)'])
def test_anything_else_stays_on_cel(src):
    assert translate(src, PLUGIN) is None


@pytest.mark.skipif("cel-python" not in available_backends(), reason="needs the reference backend")
@pytest.mark.parametrize("src", EXPRESSIONS)
def test_native_equals_reference(src):
    ref = get_backend("cel-python").compile(src, expect_bool=True)
    fn = translate(src, PLUGIN)
    for req in REQUESTS:
        try:
            want = ref.evaluate({"request": req.to_cel(), "plugin": PLUGIN})
        except CelEvalError:
            want = ERROR
        assert fn(req) is want, (src, req)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from promptline.policy._capabilities import HELPERS, matcher  # noqa: E402

VALUES = st.sampled_from(["", "/", "/data", "/data/x", "/database", "api.example.com", "example.com", "EXAMPLE.com.",
                          "10.1.2.3", "::1", "[::1]", "::ffff:127.0.0.1", "169.254.169.254", "AWS_KEY", "x.md",
                          "/a/b/c.md", "fd00::1", "*", "~/x"]) | st.text(max_size=12)
PATTERNS = st.sampled_from(["", "/", "/data", "/data/", "~", "*.example.com", "*", "example.com", "10.0.0.0/8", "private",
                            "::1", "127.0.0.1", "/**/*.md", "/a/*/c.md", "AWS_*", "*_KEY", "bad/cidr/x"]) | st.text(max_size=8)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(sorted(HELPERS)), VALUES, PATTERNS)
def test_specialised_matchers_equal_the_helpers(helper, value, pattern):
    assert matcher(helper, pattern)(value) is bool(HELPERS[helper](value, pattern))


# --------------------------------------------------------------------------- one parse tree

from promptline.policy import _fastpath  # noqa: E402
from promptline.policy._cel import _parser, _static  # noqa: E402


@pytest.fixture
def parse_count(monkeypatch):
    """Counts runs of the one lark parser, starting from empty caches."""
    calls = []
    real = _parser._parse
    monkeypatch.setattr(_parser, "_parse", lambda s: calls.append(s) or real(s))
    monkeypatch.setattr(_parser, "_trees", {})
    monkeypatch.setattr(_parser, "_templates", {})
    monkeypatch.setattr(_fastpath, "_cache", {})
    return calls


def parsed_as(src: str) -> str:
    """The text the parser runs on for ``src``: its shape (literals emptied) when it has one."""
    split = _parser.shape(src)
    return split[0] if split else src


def test_the_translator_walks_the_tree_the_checker_walked(parse_count):
    src = 'within(request.path, "/srv/one-tree") && request.port != 7'
    checked = _static.check(src, expect_bool=True)
    assert _parser.parse(src) is checked.tree, "the tree the checker walked is the one shared"
    fn = translate(src, PLUGIN)
    assert fn is not None and parse_count == [parsed_as(src)], "translating parsed nothing again"


@pytest.mark.skipif("cel-expr-python" not in available_backends(), reason="the native tier's backend")
def test_an_org_rule_is_parsed_and_translated_once_for_every_plugin(parse_count, monkeypatch, tmp_path):
    from promptline.policy import _compile, load_policy_set

    monkeypatch.setattr(_compile, "_programs", {})
    walks = []
    real = _fastpath._Translator.boolean
    monkeypatch.setattr(_fastpath._Translator, "boolean", lambda self, n: walks.append(n) or real(self, n))
    rules = ['within(request.path, "/srv/org-once")', '!plugin.trusted && request.path == "/x"']
    pol = tmp_path / "org.yaml"
    pol.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules:\n" + "".join(
        f"- id: r{i}\n  effect: deny\n  actions: [fs.read]\n  when: '{w}'\n" for i, w in enumerate(rules)))
    manifests = []
    for i in range(20):
        (tmp_path / f"p{i}").mkdir()
        m = tmp_path / f"p{i}" / "plugin.yaml"
        m.write_text(f"id: p{i}\nname: P\nversion: 1.0.0\ntypes: [tool]\nentry: {{python: 'p:P'}}\n")
        manifests.append(str(m))
    ps = load_policy_set([str(pol)], manifests, backend="cel-expr-python")
    decisions = [ps.decide(Request("fs.read", f"p{i}", path="/srv/org-once/a")) for i in range(20)]
    assert all(d.rule is not None and d.rule.id == "r0" for d in decisions)
    assert sorted(parse_count) == sorted(set(parse_count)), "no text parsed twice"
    assert sum(1 for s in parse_count if s in {parsed_as(r) for r in rules}) == 2
    # r0 translated once; r1 reads `plugin.trusted` (the same for all 20): once more, bound
    assert len([w for w in walks if w is _parser.parse(rules[0])]) == 1
    assert len([w for w in walks if w is _parser.parse(rules[1])]) == 2


def test_a_rule_reading_plugin_is_bound_per_value_it_reads():
    src = '!plugin.trusted && request.path == "/x"'
    a = translate(src, dict(PLUGIN, trusted=True, id="a"))
    b = translate(src, dict(PLUGIN, trusted=True, id="b"))
    c = translate(src, dict(PLUGIN, trusted=False))
    req = Request("fs.read", "p", path="/x")
    assert a is b, "what the rule does not read does not matter"
    assert a(req) is False and c(req) is True
    d = translate("plugin.signed == true", dict(PLUGIN, signed=1))   # 1 is not true
    assert d is None or d(req) is False


# --------------------------------------------------------------------------- differential

STR_EXPRS = st.sampled_from([f"request.{f}" for f in sorted(_fastpath.STR_FIELDS)] + [
    "request.argv[0]", "request.argv[1]", "request.argv[3]", "plugin.id", "plugin.sandbox",
    '"/data"', '"api.example.com"', "'git'", '"\\x41\\101\\u00e9"', '"a\\"b"', '""', 'r"\\d"',
    '"""x"""', "request.args"])
INT_EXPRS = st.sampled_from(["request.port", "0", "443", "1024", "9223372036854775807", "-1", "0x10",
                             "size(request.argv)", "size(request.path)", "size(plugin.capabilities.environment)",
                             "request.port + 1", "1u"])
LIST_EXPRS = st.sampled_from(["request.argv", '["git", "status"]', '["git"]', "[]", "[1, 2]",
                              "plugin.capabilities.environment", '["a", 1]', "[request.path]", "[plugin.id]"])
LIT_STRS = st.sampled_from(['"/data"', '"/"', '"*.example.com"', '"10.0.0.0/8"', '"AWS_*"', '"/**/*.md"',
                            '"git"', '"x.md"', '"private"', '""', '"fs.read"', "plugin.id", "request.path"])


def _atom(draw_from):
    helper = st.builds(lambda h, a, p: f"{h}({a}, {p})", st.sampled_from(sorted(HELPERS)), STR_EXPRS, LIT_STRS)
    cmp = st.builds(lambda a, op, b: f"{a} {op} {b}", STR_EXPRS, st.sampled_from(["==", "!="]), STR_EXPRS) | \
        st.builds(lambda a, op, b: f"{a} {op} {b}", INT_EXPRS, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
                  INT_EXPRS)
    method = st.builds(lambda a, m, p: f"{a}.{m}({p})", STR_EXPRS,
                       st.sampled_from(["startsWith", "endsWith", "contains", "matches"]), LIT_STRS)
    member = st.builds(lambda a, b: f"{a} in {b}", STR_EXPRS | INT_EXPRS, LIST_EXPRS)
    lists = st.builds(lambda a, op, b: f"{a} {op} {b}", LIST_EXPRS, st.sampled_from(["==", "!="]), LIST_EXPRS)
    consts = st.sampled_from(["true", "false", "plugin.trusted", "plugin.signed", "plugin.capabilities.native",
                              "plugin.nope", "request.port == 443 ? true : false"])
    return helper | cmp | method | member | lists | consts


EXPRS = st.recursive(_atom(None), lambda inner: st.builds(lambda a, op, b: f"({a}) {op} ({b})", inner,
                                                          st.sampled_from(["&&", "||", "=="]), inner)
                     | st.builds(lambda a: f"!({a})", inner) | st.builds(lambda a: f"!{a}", inner),
                     max_leaves=4)
TEXT = st.sampled_from(["", "/", "/data", "/data/x.md", "/database", "api.example.com", "10.1.2.3", "AWS_KEY",
                        "git", "status", "x.md", "fs.read", "p", "A", "AAé", "a\"b", "*"]) | st.text(st.characters(blacklist_characters="\x00"), max_size=6)  # Request refuses NUL
REQS = st.builds(lambda a, path, host, port, name, argv, tool: Request(a, "p", path=path and "/" + path.lstrip("/"),
                                                                        host=host.lower().strip(". []"), port=port,
                                                                        name=name, argv=tuple(argv), tool=tool),
                 st.sampled_from(["fs.read", "net.connect", "env.read", "process.exec"]), TEXT, TEXT,
                 st.sampled_from([0, 443, 1024, 65535]), TEXT, st.lists(TEXT, max_size=3), TEXT)
PLUGINS = st.sampled_from([PLUGIN, dict(PLUGIN, trusted=False, signed=True, id="git", sandbox="process"),
                           unknown_plugin_cel("AAé")])


def _run(program, req, plugin):
    try:
        return program.evaluate({"request": req.to_cel(), "plugin": plugin})
    except CelEvalError:
        return ERROR


@pytest.mark.skipif("cel-python" not in available_backends(), reason="needs the reference backend")
@settings(max_examples=300, deadline=None)
@given(EXPRS, PLUGINS, st.lists(REQS, min_size=1, max_size=6))
def test_native_tier_equals_cel_on_generated_expressions(src, plugin, requests):
    """Whatever the tree translator accepts decides as cel-python does (and as cel-expr-python,
    the backend it stands in for), errors included; what it refuses stays on CEL."""
    from promptline.policy._errors import CelCompileError

    try:
        ref = get_backend("cel-python").compile(src, expect_bool=True)
    except CelCompileError:
        return
    fn = translate(src, plugin)
    if fn is None:
        return
    others = [get_backend(n).compile(src, expect_bool=True) for n in available_backends() if n != "cel-python"]
    for req in requests:
        got = fn(req)
        assert got is _run(ref, req, plugin), (src, req)
        if not any("\x00" in str(v) for v in req.key):   # cel-expr-python refuses NUL
            for other in others:
                assert got is _run(other, req, plugin), (src, req, "cel-expr-python")
