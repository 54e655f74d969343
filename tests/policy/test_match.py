"""`match:` — a rule's structured condition: exact request fields, written into CEL only as
string literals by the compiler (the grants file uses it; admins may too)."""

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from promptline.policy import PolicyError, Request, available_backends, cel_string, load_policy_set

HEAD = {"apiVersion": "promptline/v1", "kind": "Policy", "layer": "org"}


def policy(tmp_path, *rules, name="org.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(dict(HEAD, rules=list(rules)), sort_keys=False, allow_unicode=False))
    return str(path)


def rule(match, **kw):
    return dict({"id": "m", "effect": "allow", "match": match}, **kw)


@pytest.mark.parametrize("backend", available_backends())
def test_fields_match_exactly_in_the_requests_normal_form(tmp_path, backend):
    path = policy(tmp_path, rule({"host": "DB.Example.com.", "port": 5432}, actions=["net.connect"]),
                  dict(rule({"path": "~/notes/../cfg/x.yaml"}, actions=["fs.read"]), id="p"),
                  dict(rule({"argv": ["git", "log"]}, actions=["process.exec"]), id="a"),
                  dict(rule({"name": "TOKEN"}, when='request.action == "env.read"'), id="w"))
    ps = load_policy_set([path], backend=backend, home="/home/me")
    cel = {r.id: r.cel for r in ps.rules}
    assert cel["m"] == 'request.host == "db.example.com" && request.port == 5432'
    assert cel["p"] == 'request.path == "/home/me/cfg/x.yaml"'
    assert cel["w"] == 'request.name == "TOKEN" && (request.action == "env.read"\n)'

    def allowed(*a, **kw):
        return ps.decide(Request(*a, **kw), use_cache=False).allowed

    assert allowed("net.connect", "p", host="db.example.com", port=5432)
    assert not allowed("net.connect", "p", host="db.example.com", port=5433)
    assert not allowed("net.connect", "p", host="x.db.example.com", port=5432)
    assert allowed("fs.read", "p", path="/home/me/cfg/x.yaml")
    assert not allowed("fs.read", "p", path="/home/me/cfg/x.yaml/y")
    assert allowed("process.exec", "p", argv=("git", "log"))
    assert not allowed("process.exec", "p", argv=("git", "log", "-p"))
    assert allowed("env.read", "p", name="TOKEN") and not allowed("env.write", "p", name="TOKEN")


@pytest.mark.parametrize("match, needle, fix", [
    ({"colour": "red"}, "unknown key `rules.1.match.colour`", "remove it"),
    ({"port": "443"}, "rules.1.match.port", "integer"),
    ({"port": True}, "rules.1.match.port", "integer"),
    ({"port": 70000}, "rules.1.match.port", "65535"),
    ({"path": "relative/x"}, "must be absolute", ""),
    ({"argv": "git"}, "rules.1.match.argv", ""),
    ({"argv": ["git", 1]}, "rules.1.match.argv", ""),
    ({}, "at least one field", ""),
    ({"name": "x" * 5000}, "invalid `match`", ""),
])
def test_bad_match_is_one_error_at_its_line(tmp_path, match, needle, fix):
    path = policy(tmp_path, {"id": "ok", "effect": "deny"}, rule(match))
    with pytest.raises(PolicyError) as info:
        load_policy_set([path])
    err = info.value
    assert err.file == path and err.line is not None and err.line >= 7, str(err)
    assert needle in str(err) and fix in str(err), str(err)


def test_when_with_a_trailing_comment_beside_match(tmp_path):
    path = policy(tmp_path, rule({"name": "x"}, when="request.action == 'env.read' // only reads"))
    ps = load_policy_set([path])
    assert ps.decide(Request("env.read", "p", name="x")).allowed
    assert not ps.decide(Request("env.write", "p", name="x")).allowed


def test_when_errors_keep_their_position_beside_match(tmp_path):
    path = policy(tmp_path, rule({"name": "x"}, when="request.nmae == 'x'"))
    with pytest.raises(PolicyError, match="unknown field `request.nmae`") as info:
        load_policy_set([path])
    line = open(path).read().splitlines()[info.value.line - 1]
    assert line[info.value.column - 1:].startswith(("nmae", "request.nmae")), (info.value, line)


HOSTILE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10) | st.sampled_from(
    ['") || true || ("', "' || true || '", "\x00", "a\nb", "\\", '\\"', "\u202e", "request.name", "true"])


@settings(max_examples=40, deadline=None)
@given(HOSTILE, HOSTILE)
def test_any_value_stays_data(tmp_path_factory, value, other):
    """Whatever the value, the rule is `request.name == <that literal>`: it matches that name
    and nothing else, in every backend."""
    path = policy(tmp_path_factory.mktemp("m"), rule({"name": value}, actions=["env.read"]))
    for backend in available_backends():
        ps = load_policy_set([path], backend=backend)
        (r,) = [r for r in ps.rules if r.id == "m"]
        assert r.cel == f"request.name == {cel_string(value)}"
        if "\x00" in value:    # no request carries a NUL: Request refuses it (docs/design.md §5a)
            with pytest.raises(ValueError, match="NUL"):
                Request("env.read", "p", name=value)
            continue
        assert ps.decide(Request("env.read", "p", name=value), use_cache=False).allowed, backend
        if other != value and "\x00" not in other:
            assert not ps.decide(Request("env.read", "p", name=other), use_cache=False).allowed, backend
