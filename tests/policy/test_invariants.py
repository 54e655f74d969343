"""Decision invariants (hypothesis) and the differential test between the CEL backends."""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptline.policy import Manifest, Request, load_policy_set
from promptline.policy._cel import available_backends

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POLICIES = [os.path.join(ROOT, "policies", f) for f in ("default.yaml", "org-strict.yaml", "project-rollout.yaml")]

PLUGINS = [
    Manifest.model_validate({"id": "notes", "version": "1.0.0", "entry": {"python": "n:P"},
                             "capabilities": {"filesystem": {"read": ["~/notes/", "/srv/project/"], "write": ["/tmp/out/", "/work/x"]},
                                              "environment": ["NOTES_*", "GITHUB_TOKEN"],
                                              "network": ["api.example.com:443", "*.cdn.example.org", "10.0.0.0/8"],
                                              "process": ["git", "psql"]}}),
    Manifest.model_validate({"id": "db-tools", "version": "1.0.0", "entry": {"python": "d:P"},
                             "capabilities": {"network": ["postgres://localhost:5432"], "native": True}}),
    Manifest.model_validate({"id": "experimental-x", "version": "0.1.0", "entry": {"python": "e:P"}}),
]

paths = st.sampled_from(["~/notes/a.md", "~/notes-x/a", "~/.ssh/id_rsa", "~/.aws/credentials", "/etc/shadow",
                         "/tmp/out/r.txt", "/work/x", "/srv/project/.git/config", "/srv/project/src/a.py",
                         "/proc/1/environ", "~/.bashrc", "/var/lib/x", "/"]) | st.text(min_size=1, max_size=12).map(lambda s: "/tmp/" + s.replace("\x00", ""))
hosts = st.sampled_from(["api.example.com", "example.com", "a.cdn.example.org", "169.254.169.254", "10.1.2.3",
                         "127.0.0.1", "localhost", "metadata.google.internal", "x.telemetry.example.net", "::1"])
names = st.sampled_from(["NOTES_DIR", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "HOME", "DB_PASSWORD", "SSH_AUTH_SOCK", "PATH"])
argvs = st.sampled_from([("git", "status"), ("git", "push"), ("bash", "-c", "id"), ("psql",), ("rg", "x")])
plugins = st.sampled_from(["notes", "db-tools", "experimental-x", "stranger"])


@st.composite
def requests(draw):
    plugin = draw(plugins)
    kind = draw(st.sampled_from(["fs.read", "fs.write", "net.connect", "net.resolve", "env.read", "process.exec",
                                 "native.load", "tool.call"]))
    if kind.startswith("fs."):
        return Request(kind, plugin, path=draw(paths))
    if kind.startswith("net."):
        return Request(kind, plugin, host=draw(hosts), port=draw(st.sampled_from([0, 22, 80, 443, 5432])))
    if kind == "env.read":
        return Request(kind, plugin, name=draw(names))
    if kind == "process.exec":
        return Request(kind, plugin, argv=draw(argvs))
    if kind == "native.load":
        return Request(kind, plugin, name="_ctypes")
    return Request.tool_call(plugin, draw(st.sampled_from(["query", "search"])),
                             {"sql": draw(st.sampled_from(["select 1", "DROP table x"]))})


@pytest.fixture(scope="module")
def base():
    return load_policy_set(POLICIES, PLUGINS)


@pytest.fixture(scope="module")
def with_extra_deny(tmp_path_factory):
    d = tmp_path_factory.mktemp("deny")
    extra = d / "extra.yaml"
    extra.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: user\nrules:\n"
                     "  - id: extra-deny\n    effect: deny\n    when: request.plugin == \"notes\" || request.port == 443\n")
    return load_policy_set(POLICIES + [str(extra)], PLUGINS)


@pytest.fixture(scope="module")
def with_extra_allow(tmp_path_factory):
    d = tmp_path_factory.mktemp("allow")
    extra = d / "extra.yaml"
    extra.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: user\nrules:\n"
                     "  - id: extra-allow\n    effect: allow\n    when: request.plugin != \"db-tools\"\n")
    return load_policy_set(POLICIES + [str(extra)], PLUGINS)


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(requests())
def test_adding_a_deny_never_turns_deny_into_allow(base, with_extra_deny, req):
    if not base.decide(req).allowed:
        assert not with_extra_deny.decide(req).allowed


@SETTINGS
@given(requests())
def test_adding_an_allow_never_turns_allow_into_deny(base, with_extra_allow, req):
    if base.decide(req).allowed:
        assert with_extra_allow.decide(req).allowed


@SETTINGS
@given(requests())
def test_cache_on_and_off_decide_alike(base, req):
    assert base.decide(req) == base.decide(req, use_cache=False) == base.decide(req)


@pytest.mark.skipif(len(available_backends()) < 2, reason="needs both CEL backends installed")
def test_both_backends_decide_the_whole_corpus_alike():
    fast = load_policy_set(POLICIES, PLUGINS, backend="cel-expr-python")
    ref = load_policy_set(POLICIES, PLUGINS, backend="cel-python")
    reqs = []
    # the fixed corpus: every combination of the sampled values, plus the shipped test files' requests
    for plugin in ["notes", "db-tools", "experimental-x", "stranger"]:
        for p in ["~/notes/a.md", "~/notes-x/a", "~/.ssh/id_rsa", "~/.aws/credentials", "/etc/shadow", "/tmp/out/r.txt",
                  "/work/x", "/srv/project/.git/config", "/srv/project/src/a.py", "/proc/1/environ", "~/.bashrc", "/"]:
            reqs += [Request("fs.read", plugin, path=p), Request("fs.write", plugin, path=p)]
        for h in ["api.example.com", "example.com", "a.cdn.example.org", "169.254.169.254", "10.1.2.3", "127.0.0.1",
                  "localhost", "metadata.google.internal", "x.telemetry.example.net", "::1", "fd00:ec2::254"]:
            for port in (0, 80, 443, 5432):
                reqs.append(Request("net.connect", plugin, host=h, port=port))
            reqs.append(Request("net.resolve", plugin, host=h))
        for n in ["NOTES_DIR", "NOTES_X", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "HOME", "DB_PASSWORD", "SSH_AUTH_SOCK"]:
            reqs.append(Request("env.read", plugin, name=n))
        for argv in [("git", "status"), ("git", "push"), ("bash", "-c", "id"), ("psql",), ("sh",)]:
            reqs.append(Request("process.exec", plugin, argv=argv))
        reqs.append(Request("native.load", plugin, name="_ctypes"))
        for sql in ("select 1", "DROP table x", "truncate  TABLE y"):
            reqs.append(Request.tool_call(plugin, "query", {"sql": sql}))
    assert len(reqs) > 350
    mismatches = []
    for r in reqs:
        a, b = fast.decide(r), ref.decide(r)
        if (a.verdict, a.decided_by, [x.id for x in a.rules], a.would_deny) != \
                (b.verdict, b.decided_by, [x.id for x in b.rules], b.would_deny):
            mismatches.append((r, a, b))
    assert not mismatches, mismatches[:3]
