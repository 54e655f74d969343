"""Parsing by shape (a rule's text with its string literals emptied) gives exactly the tree
and exactly the errors an own parse gives, for any literal text (hypothesis)."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from promptline.policy._cel._parser import _trees, is_shaped, parse, parse_exact, shape
from promptline.policy._cel._static import check
from promptline.policy._errors import CelCompileError

SHAPES = [
    "within(request.path, {0})",
    "host_matches(request.host, {0}) && request.port == 443",
    "glob(request.path, {0}) || env_matches(request.name, {1})",
    "request.name in [{0}, {1}] && !(request.path == {0})",
    "request.path.startsWith({0}) && request.nope == {1}",      # an error after the literals
    "within(request.path, {0}) && undefined_fn({1})",
    "request.path == {0} && request.argv[0] == {1} ||",        # a syntax error
    "{0} == request.path // {1}\n && true",
    "request.url.matches({0})",
    "matches(request.url, {0}) && within(request.path, {1})",
    "request[{0}] == {1}",
    "plugin.capabilities[{0}] == [{1}]",
    "size({0}) > 3 && glob(request.path, {1})",
]


def literal(text: str, quote: str, prefix: str) -> str:
    body = json.dumps(text, ensure_ascii=False)[1:-1] if quote == '"' else text.replace("'", "\\'")
    return prefix + quote + body + quote


literals = st.builds(literal, st.one_of(st.text(max_size=8), st.sampled_from(["path", "host", "argv", "network", "(", "a{2"]),
                                        st.builds(lambda n: "x" * n, st.sampled_from([4093, 4094, 4095]))),
                     st.sampled_from(['"', "'"]), st.sampled_from(["", "", "r", "b"]))


def outcome(fn, src):
    try:
        return ("ok", fn(src))
    except CelCompileError as exc:
        return ("error", exc.message, exc.line, exc.column, exc.fix)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SHAPES), literals, literals)
def test_a_tree_from_a_shape_is_the_exact_tree(template, a, b):
    src = template.format(a, b)
    _trees.clear()
    exact = outcome(parse_exact, src)
    _trees.clear()
    shaped = outcome(parse, src)
    assert shaped[0] == exact[0]
    if exact[0] == "ok":
        assert shaped[1] == exact[1]
    else:
        assert shaped == exact


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SHAPES), literals, literals)
def test_the_check_reports_the_exact_error(template, a, b):
    src = template.format(a, b)
    _trees.clear()   # the verdicts kept per shape stay: each example meets those of the last ones
    got = outcome(lambda s: (check(s, expect_bool=True).kind, check(s, expect_bool=True).nodes), src)
    from promptline.policy._cel import _static
    want = outcome(lambda s: (_static._check_tree(parse_exact(s), True).kind,
                              _static._check_tree(parse_exact(s), True).nodes), src)
    assert got == want


def test_rules_of_one_shape_share_one_parse():
    from promptline.policy._cel import _parser
    before = _parser.parses
    for i in range(50):
        tree = parse(f'within(request.path, "/srv/shape-test-{i}") && request.port == {i}')
        assert is_shaped(tree)
    assert _parser.parses - before <= 50   # numbers are part of the shape: one parse each here
    before = _parser.parses
    for i in range(50):
        parse(f'host_matches(request.host, "h{i}.shape-test.example")')
    assert _parser.parses - before <= 1
    assert shape('r"x" == request.path') is None and shape('"a\\"b" == request.path') is None


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(["", "r", "R"]), st.sampled_from(['"', "'", '"""', "'''"]),
       st.text(alphabet='\\abfnrtvxuU0123789AFaf"\'\n\té', max_size=14))
def test_string_literals_decode_as_celpy_decodes_them(prefix, quote, body):
    import lark
    from celpy.evaluation import celstr

    from promptline.policy._cel._parser import decode_string
    token = lark.Token("STRING_LIT", prefix + quote + body + quote)

    def result(fn):
        try:
            return ("ok", str(fn(token)))
        except Exception as exc:  # noqa: BLE001 - both must fail alike
            return ("error", type(exc))
    assert result(decode_string) == result(celstr)
