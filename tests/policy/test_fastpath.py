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
