"""Manifest strings are data: hostile values cannot change what a compiled rule means."""


import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptline.policy import Manifest, Request, load_policy_set
from promptline.policy._capabilities import expand_path, is_glob, within

HOSTILE = [
    '") || true || ("',
    "\") || true || (\"",
    '\\") || true || (\\"',
    "/data\" || request.path.startsWith(\"/",
    "/data\n|| true",
    "/data\x00/../../etc",
    "/dat\u0430",                 # Cyrillic a look-alike
    "/data\u202e/txt.exe",       # right-to-left override
    "/data' || true || '",
    "/data\\",
    "/data/${HOME}",
    "/data/{{ request.path }}",
    "/data/\U0001F600",
]


def manifest_with(read=(), env=(), process=(), net=()):
    return Manifest.model_validate({
        "id": "evil", "version": "1.0.0", "entry": {"python": "evil:Plugin"},
        "capabilities": {"filesystem": {"read": list(read)}, "environment": list(env),
                         "process": list(process), "network": list(net)}})


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_paths_only_grant_themselves(value, backend):
    try:
        m = manifest_with(read=[value])
    except Exception:
        return  # refused at validation: also fine, nothing granted
    ps = load_policy_set([], [m], backend=backend)
    for probe in ("/etc/passwd", "/", "/data", "/root/.ssh/id_rsa", "/data/x"):
        d = ps.decide(Request("fs.read", "evil", path=probe))
        assert not d.allowed, (value, probe, d)


@pytest.mark.parametrize("value", ['git" || true || "', "git\x00", "git\n", "g\u0456t"])
def test_hostile_program_names(value, backend):
    try:
        m = manifest_with(process=[value])
    except Exception:
        return  # refused at validation: nothing granted
    ps = load_policy_set([], [m], backend=backend)
    for argv in (("sh",), ("git",), ("bash", "-c", "id")):
        assert not ps.decide(Request("process.exec", "evil", argv=argv)).allowed


@pytest.mark.parametrize("value", ['A" || true || "', "A\nB", "A\x00", "*\" || \"*"])
def test_hostile_env_names_are_refused_at_load(value):
    with pytest.raises(Exception):
        manifest_with(env=[value])


@pytest.mark.parametrize("value", ['x") || true || ("', "exa\u0430mple.com", "a.com:443\" || true", "*.com\"||\""])
def test_hostile_hosts_are_refused_at_load(value):
    with pytest.raises(Exception):
        manifest_with(net=[value])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=40).map(lambda s: "/" + s))
def test_any_path_grant_matches_only_itself_and_below(value):
    """Whatever the string, the grant means exactly `within(path, normalized value)`."""
    try:
        m = manifest_with(read=[value])
    except Exception:
        return
    if is_glob(value):
        return
    ps = load_policy_set([], [m])
    for probe in ("/etc/shadow", "/", value, value + "x", value + "/y", "/" + value + "/z"):
        if "\x00" in probe:
            continue
        expected = within(expand_path(probe), expand_path(value))
        assert ps.decide(Request("fs.read", "evil", path=probe)).allowed is expected, (value, probe)


def test_hostile_tool_arguments_cannot_break_out(write, backend, policy_text):
    pol = write("org.yaml", policy_text("""
        - id: only-select
          effect: deny
          actions: [tool.call]
          when: '!request.args.sql.startsWith("select ")'
    """))
    ps = load_policy_set([pol], [manifest_with()], backend=backend)
    for sql in ('select 1"; drop table x; --', "select \x00 drop", "select \u202e"):
        assert ps.decide(Request.tool_call("evil", "q", {"sql": sql})).allowed is True or "\x00" in sql
    assert not ps.decide(Request.tool_call("evil", "q", {"sql": "drop table x"})).allowed
    assert not ps.decide(Request.tool_call("evil", "q", {"sql": ["select 1"]})).allowed, "type confusion fails closed"
    assert not ps.decide(Request.tool_call("evil", "q", {})).allowed, "missing field fails closed"
