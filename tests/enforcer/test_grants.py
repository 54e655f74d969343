"""GrantStore: remembered answers as an ordinary user-layer policy file; `promptline grants`."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest
from click.testing import CliRunner

from promptline.cli.grants_cmd import grants_group
from promptline.enforcer._grants import GrantError, GrantStore, default_grants_path
from promptline.policy._decision import Effect, RuleRef
from promptline.policy._request import Request

HOSTILE = '") || true || ("\u202e\n\\'  # no NUL: cel-expr-python refuses those (fail closed)

REQUESTS = {
    "fs": Request("fs.read", "db", path="/home/me/.config/db.yaml"),
    "fs-hostile": Request("fs.write", "db", path="/tmp/" + HOSTILE),
    "net": Request("net.connect", "db", host="DB.Example.com", port=5432),
    "net-resolve": Request("net.resolve", "db", host="example.com"),
    "env": Request("env.read", "db", name="DATABASE_URL"),
    "process": Request("process.exec", "db", argv=("git", "log", HOSTILE)),
    "tool": Request.tool_call("db", "query", {"sql": "select 1"}),
    "native": Request("native.load", "db", path="/usr/lib/libpq.so"),
}
NEIGHBOURS = {  # one field off: must not match
    "fs": Request("fs.read", "db", path="/home/me/.config/db.yaml2"),
    "fs-hostile": Request("fs.write", "db", path="/tmp/x"),
    "net": Request("net.connect", "db", host="db.example.com", port=5433),
    "net-resolve": Request("net.resolve", "db", host="evil.example.com"),
    "env": Request("env.read", "db", name="HOME"),
    "process": Request("process.exec", "db", argv=("git", "log")),
    "tool": Request.tool_call("db", "drop", {}),
    "native": Request("native.load", "db", path="/usr/lib/libc.so"),
}


@pytest.fixture
def store(tmp_path):
    return GrantStore(tmp_path / "cfg" / "grants.yaml")


@pytest.mark.parametrize("kind", list(REQUESTS))
def test_remember_and_lookup_exact_resource(store, kind):
    req = REQUESTS[kind]
    grant = store.remember("db", req, Effect.ALLOW)
    assert store.lookup("db", req) == grant
    assert store.lookup("db", NEIGHBOURS[kind]) is None
    assert store.lookup("other", req) is None
    (listed,) = store.list()
    assert (listed.plugin, listed.action, listed.resource) == ("db", req.action, req.resource)
    assert listed.effect == "allow" and listed.granted_at.endswith("Z")


def decide_with_grants(path, request, backend):
    from promptline.policy import load_policy_set

    return load_policy_set([], grants=path, backend=backend).decide(request, use_cache=False)


@pytest.mark.parametrize("kind", list(REQUESTS))
def test_match_is_exact_in_every_cel_backend(store, kind):
    """The written `match` compiles to CEL matching only that resource: hostile text stays data."""
    from promptline.policy import available_backends

    req = REQUESTS[kind]
    grant = store.remember("db", req, "allow")
    assert grant.when == "" and dict(grant.match), "stored as structured fields, not CEL text"
    assert available_backends()
    for name in available_backends():
        d = decide_with_grants(store.path, req, name)
        assert d.allowed and d.rule.id == grant.id, name
        assert not decide_with_grants(store.path, NEIGHBOURS[kind], name).allowed, name


def test_file_is_a_readable_valid_user_policy(store):
    asking = RuleRef("ask-config", Effect.ASK, "org", "/etc/promptline/org.yaml:12")
    g = store.remember("db", REQUESTS["fs"], Effect.DENY, asked_by=asking)
    text = open(store.path).read()
    assert "layer: user" in text and "kind: Policy" in text and "apiVersion: promptline/v1" in text
    assert "match: {path: /home/me/.config/db.yaml}" in text and "when:" not in text
    assert "by prompt for rule ask-config (/etc/promptline/org.yaml:12)" in text
    assert g.asked_by == "ask-config" and g.origin.startswith(store.path + ":")
    assert g.rule_ref().layer == "user" and g.rule_ref().effect is Effect.DENY
    policy = pytest.importorskip("promptline.policy")
    parsed, _ = policy.load_policy_file(store.path)
    (rule,) = parsed.rules
    assert (rule.id, rule.effect, rule.actions, rule.plugins) == (g.id, "deny", ("fs.read",), ("db",))
    assert rule.description.startswith("granted ")


def test_hostile_resource_is_escaped_in_file(store):
    req = Request("fs.write", "db", path="/tmp/" + HOSTILE + "\x01\u2066")   # NUL: Request refuses it
    store.remember("db", req, "allow")
    assert store.lookup("db", req) is not None
    text = open(store.path).read()
    assert text.isascii() and "\x00" not in text and "\u202e" not in text


HOSTILE_VALUES = ['") || true || ("', "a'b\"c\\", "x\x01y", "line\nbreak\r\n", "\u202e\u2066evil",
                  "request.path", '"', "\\u0022", " ", "#not a comment", "{a: b}", "- item", "*"]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize("field", ["path", "name", "argv", "tool"])
def test_hostile_values_stay_data(store, field, value):
    """Remembered, written, read back by the policy compiler and by `lookup`: the grant
    matches exactly that value, never a neighbour the text would match as code."""
    from promptline.policy import available_backends

    def req(v):
        if field == "path":
            return Request("fs.write", "db", path="/tmp/" + v)
        if field == "name":
            return Request("env.read", "db", name=v)
        if field == "argv":
            return Request("process.exec", "db", argv=("git", v))
        return Request.tool_call("db", v, {})

    grant = store.remember("db", req(value), "allow")
    assert store.lookup("db", req(value)) == grant
    text = open(store.path).read()
    assert text.isascii() and "\x00" not in text
    for other in ("x", value + "x", "", "true"):
        assert store.lookup("db", req(other)) is None
    for name in available_backends():
        assert decide_with_grants(store.path, req(value), name).allowed, name
        for other in ("x", value + "x", "true"):
            assert not decide_with_grants(store.path, req(other), name).allowed, (name, other)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               min_size=1, max_size=12))   # a NUL is refused by Request itself
def test_any_remembered_path_round_trips_as_data(tmp_path_factory, text):
    store = GrantStore(tmp_path_factory.mktemp("g") / "grants.yaml")
    req = Request("fs.read", "db", path="/srv/" + text.replace("/", "_"))
    grant = store.remember("db", req, "deny")
    assert store.lookup("db", req) == grant and grant.resource == req.resource
    d = decide_with_grants(store.path, req, None)
    assert d.verdict.value == "deny" and d.rule.id == grant.id
    assert decide_with_grants(store.path, Request("fs.read", "db", path="/srv/other"), None).rule is None


LEGACY = """apiVersion: promptline/v1
kind: Policy
layer: user
rules:
- id: grant-db-fs-read-1234abcd
  effect: allow
  actions: [fs.read]
  plugins: [db]
  when: request.path == "/home/me/.config/db.yaml"
  message: you answered `always` at a prompt; `promptline grants revoke grant-db-fs-read-1234abcd` undoes it
  description: granted 2026-11-27T10:15:00Z by prompt for rule ask-config (org.yaml:12)
"""


def test_legacy_when_grant_still_loads_and_is_listed_with_its_text(store):
    os.makedirs(os.path.dirname(store.path))
    with open(store.path, "w") as f:
        f.write(LEGACY)
    (g,) = store.list()
    assert (g.id, g.resource, g.when, g.granted_at) == (
        "grant-db-fs-read-1234abcd", 'request.path == "/home/me/.config/db.yaml"',
        'request.path == "/home/me/.config/db.yaml"', "2026-11-27T10:15:00Z")
    assert store.lookup("db", REQUESTS["fs"]) is None, "its CEL text is not parsed back"
    assert decide_with_grants(store.path, REQUESTS["fs"], None).rule.id == g.id, "still policy"
    new = store.remember("db", REQUESTS["env"], "allow")
    assert [x.id for x in store.list()] == [g.id, new.id], "kept through a rewrite"
    r = run("list", "--json", "--grants", store.path)
    assert [row["resource"] for row in json.loads(r.output)] == [g.resource, REQUESTS["env"].resource]
    assert store.revoke(g.id).id == g.id


def test_match_with_when_or_non_canonical_is_listed_not_looked_up(store):
    os.makedirs(os.path.dirname(store.path))
    with open(store.path, "w") as f:
        f.write("apiVersion: promptline/v1\nkind: Policy\nlayer: user\nrules:\n"
                "  - {id: narrower, effect: allow, actions: [fs.read], plugins: [db],\n"
                "     match: {path: /data/a}, when: request.port == 1}\n"
                "  - {id: tilde, effect: allow, actions: [fs.read], plugins: [db], match: {path: ~/a}}\n")
    narrower, tilde = store.list()
    assert narrower.resource == '{"path": "/data/a"} && request.port == 1'
    assert tilde.resource == '{"path": "~/a"}'
    assert store.lookup("db", Request("fs.read", "db", path="/data/a")) is None


def test_undecodable_path_cannot_be_remembered(store):
    with pytest.raises(GrantError, match="undecodable"):
        store.remember("db", Request("fs.read", "db", path="/tmp/\udcff"), "allow")


def test_later_answer_replaces_earlier(store):
    store.remember("db", REQUESTS["net"], "allow")
    g = store.remember("db", REQUESTS["net"], "deny")
    assert [x.effect for x in store.list()] == ["deny"]
    assert store.lookup("db", REQUESTS["net"]) == g


def test_ask_cannot_be_remembered(store):
    with pytest.raises(GrantError):
        store.remember("db", REQUESTS["fs"], Effect.ASK)


def test_revoke(store):
    a = store.remember("db", REQUESTS["fs"], "allow")
    b = store.remember("db", REQUESTS["env"], "deny")
    assert store.revoke(a.id).id == a.id
    assert [g.id for g in store.list()] == [b.id]
    with pytest.raises(GrantError, match=f"no grant `{a.id}`"):
        store.revoke(a.id)


def test_revoke_all_by_plugin(store):
    store.remember("db", REQUESTS["fs"], "allow")
    store.remember("web", Request("fs.read", "web", path="/srv"), "allow")
    removed = store.revoke_all(plugin="db")
    assert [g.plugin for g in removed] == ["db"]
    assert [g.plugin for g in store.list()] == ["web"]
    assert len(store.revoke_all()) == 1 and store.list() == []


def test_revoke_all_without_file_creates_nothing(store):
    assert store.revoke_all(plugin="db") == [] and not os.path.exists(store.path)


def test_version_tracks_the_file_and_other_writers(store):
    assert store.version == "absent"
    store.remember("db", REQUESTS["fs"], "allow")
    v1 = store.version
    other = GrantStore(store.path)  # e.g. another process, or `promptline grants revoke`
    other.revoke_all()
    assert store.version != v1
    assert store.lookup("db", REQUESTS["fs"]) is None  # applies at once


def test_write_is_atomic_private_and_leaves_no_temp_files(store):
    store.remember("db", REQUESTS["fs"], "allow")
    directory = os.path.dirname(store.path)
    assert sorted(os.listdir(directory)) == ["grants.yaml", "grants.yaml.lock"]
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600


def test_concurrent_writers_lose_nothing(store):
    def work(n):
        s = GrantStore(store.path)  # separate lock objects, as separate processes have
        for i in range(4):
            s.remember("db", Request("fs.read", "db", path=f"/data/{n}/{i}"), "allow")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.list()) == 16


def test_broken_file_is_reported_and_never_overwritten(store):
    os.makedirs(os.path.dirname(store.path))
    with open(store.path, "w") as f:
        f.write("rules:\n  - id: x\n  bad: [\n")
    with pytest.raises(GrantError, match=r"grants\.yaml:\d+"):
        store.list()
    with pytest.raises(GrantError):
        store.remember("db", REQUESTS["fs"], "allow")
    assert open(store.path).read() == "rules:\n  - id: x\n  bad: [\n"


def test_wrong_layer_is_refused(store):
    os.makedirs(os.path.dirname(store.path))
    with open(store.path, "w") as f:
        f.write("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules: []\n")
    with pytest.raises(GrantError, match="layer: user"):
        store.list()


def test_hand_written_rules_are_listed_not_looked_up(store):
    os.makedirs(os.path.dirname(store.path))
    with open(store.path, "w") as f:
        f.write("apiVersion: promptline/v1\nkind: Policy\nlayer: user\nrules:\n"
                "  - id: mine\n    effect: allow\n    actions: [fs.read]\n    plugins: [db]\n"
                "    when: within(request.path, \"/data\")\n")
    (g,) = store.list()
    assert (g.id, g.resource, g.origin) == ("mine", 'within(request.path, "/data")',
                                             f"{store.path}:5")
    assert store.lookup("db", Request("fs.read", "db", path="/data/x")) is None
    store.remember("db", REQUESTS["fs"], "allow")
    assert [x.id for x in store.list()][0] == "mine"  # kept through a rewrite
    store.revoke("mine")


def test_default_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTLINE_GRANTS", str(tmp_path / "g.yaml"))
    assert default_grants_path() == str(tmp_path / "g.yaml")
    assert GrantStore().path == str(tmp_path / "g.yaml")
    monkeypatch.delenv("PROMPTLINE_GRANTS")
    assert default_grants_path().endswith(os.path.join("promptline", "grants.yaml"))


# --------------------------------------------------------------------------- CLI

def run(*args):
    return CliRunner().invoke(grants_group, list(args), catch_exceptions=False)


def test_cli_list_empty_table_and_json(store):
    r = run("list", "--grants", store.path)
    assert r.exit_code == 0 and "no remembered answers" in r.output
    g = store.remember("db", REQUESTS["fs-hostile"], "deny")
    r = run("list", "--grants", store.path)
    assert r.exit_code == 0 and "deny" in r.output and "net" not in r.output
    assert "\u202e" not in r.output and "\x00" not in r.output
    r = run("list", "--json", "--grants", store.path)
    (row,) = json.loads(r.output)
    assert (row["id"], row["resource"]) == (g.id, REQUESTS["fs-hostile"].resource)


def test_cli_revoke_one_and_unknown(store):
    g = store.remember("db", REQUESTS["fs"], "allow")
    r = run("revoke", g.id, "--grants", store.path)
    assert r.exit_code == 0 and g.id in r.output and store.list() == []
    r = run("revoke", "nope", "--grants", store.path)
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        f"error: no grant `nope` in {store.path} — see `promptline grants list`"]


def test_cli_revoke_all_by_plugin(store):
    store.remember("db", REQUESTS["fs"], "allow")
    store.remember("web", Request("fs.read", "web", path="/srv"), "allow")
    r = run("revoke", "--all", "--plugin", "db", "--grants", store.path)
    assert r.exit_code == 0 and "revoked 1 grant of plugin `db`" in r.output
    assert [g.plugin for g in store.list()] == ["web"]


@pytest.mark.parametrize("args", [(), ("x", "--all"), ("x", "--plugin", "db")],
                         ids=["nothing", "id-and-all", "plugin-without-all"])
def test_cli_revoke_usage_errors(store, args):
    r = run("revoke", *args, "--grants", store.path)
    assert r.exit_code == 2


def test_cli_broken_file_is_one_line_error(store):
    os.makedirs(os.path.dirname(store.path))
    with open(store.path, "w") as f:
        f.write("[")
    r = run("list", "--grants", store.path)
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
