"""PolicySet.decide: order, layers, modes, fail-closed errors, hints, cache, explain."""

import pytest

from promptline.policy import DecidedBy, Request, Verdict, load_policy_set

MANIFEST = """\
id: notes
version: 0.1.0
entry: {python: "notes:Plugin"}
capabilities:
  filesystem: {read: ["/data/notes/"], write: ["/tmp/out/**/*.txt"]}
  network: ["api.example.com:443", "*.cdn.example.org", "10.1.0.0/16"]
  environment: [NOTES_DIR, "NOTES_*"]
  process: [git, /usr/bin/rg]
"""


@pytest.fixture
def manifest(write):
    return write("notes/plugin.yaml", MANIFEST)


def decide(ps, action, plugin="notes", **fields):
    return ps.decide(Request(action, plugin, **fields))


def test_manifest_grants_and_component_boundaries(write, manifest, backend):
    ps = load_policy_set([], [manifest], backend=backend)
    assert decide(ps, "fs.read", path="/data/notes/a.md").allowed
    assert decide(ps, "fs.read", path="/data/notes").allowed
    assert not decide(ps, "fs.read", path="/data/notes-old/a.md").allowed
    assert not decide(ps, "fs.read", path="/data/notes/../secret").allowed
    assert not decide(ps, "fs.write", path="/data/notes/a.md").allowed, "read does not grant write"
    assert decide(ps, "fs.write", path="/tmp/out/x/y/z.txt").allowed
    assert not decide(ps, "fs.write", path="/tmp/out/x/y/z.sh").allowed
    assert decide(ps, "net.connect", host="API.Example.com.", port=443).allowed
    assert not decide(ps, "net.connect", host="api.example.com", port=80).allowed
    assert decide(ps, "net.connect", host="img.cdn.example.org", port=8443).allowed
    assert not decide(ps, "net.connect", host="cdn.example.org", port=443).allowed, "apex is not a subdomain"
    assert not decide(ps, "net.connect", host="evilcdn.example.org", port=443).allowed
    assert decide(ps, "net.connect", host="10.1.2.3", port=5432).allowed
    assert not decide(ps, "net.connect", host="10.2.0.1", port=5432).allowed
    assert decide(ps, "net.resolve", host="api.example.com").allowed
    assert decide(ps, "env.read", name="NOTES_DIR").allowed
    assert decide(ps, "env.read", name="NOTES_COLOUR").allowed
    assert not decide(ps, "env.read", name="NOTES").allowed
    assert not decide(ps, "env.write", name="NOTES_DIR").allowed
    assert decide(ps, "process.exec", argv=("git", "status")).allowed
    assert decide(ps, "process.exec", path="/usr/bin/rg", argv=("rg", "x")).allowed
    assert not decide(ps, "process.exec", argv=("/tmp/git",)).allowed
    assert not decide(ps, "native.load", name="_ctypes").allowed
    assert not decide(ps, "fs.read", plugin="other", path="/data/notes/a.md").allowed, "grants are per plugin"


def test_default_deny_names_the_capability_that_would_grant_it(manifest, backend):
    ps = load_policy_set([], [manifest], backend=backend)
    d = decide(ps, "fs.read", path="/srv/x/y.txt")
    assert d.verdict is Verdict.DENY and d.decided_by is DecidedBy.DEFAULT
    assert d.hint == 'capabilities.filesystem.read: ["/srv/x/"]'
    assert decide(ps, "net.connect", host="db.local", port=5432).hint == 'capabilities.network: ["db.local:5432"]'
    assert decide(ps, "env.read", name="HOME").hint == "capabilities.environment: [HOME]"


def test_order_deny_beats_ask_beats_allow(write, manifest, backend, policy_text):
    pol = write("org.yaml", policy_text("""
        - id: ask-notes
          effect: ask
          actions: [fs.read]
          when: within(request.path, "/data/notes/private")
        - id: deny-secret
          effect: deny
          actions: [fs.read]
          when: request.path.endsWith(".secret")
        - id: allow-all-data
          effect: allow
          actions: [fs.read]
          when: within(request.path, "/data")
    """))
    ps = load_policy_set([pol], [manifest], backend=backend)
    d = decide(ps, "fs.read", path="/data/notes/private/x.secret")
    assert d.verdict is Verdict.DENY and d.rule.id == "deny-secret" and d.rule.origin.endswith("org.yaml:9")
    d = decide(ps, "fs.read", path="/data/notes/private/x.md")
    assert d.verdict is Verdict.ASK and d.rule.id == "ask-notes"
    d = decide(ps, "fs.read", path="/data/other/x.md")
    assert d.verdict is Verdict.ALLOW and d.rule.id == "allow-all-data"


def test_user_layer_cannot_undo_an_org_deny(write, manifest, backend, policy_text):
    org = write("org.yaml", policy_text('- id: no-notes\n  effect: deny\n  when: within(request.path, "/data/notes")\n'))
    user = write("user.yaml", policy_text('- id: yes-notes\n  effect: allow\n  when: "true"\n', layer="user",
                                          settings="settings:\n  mode: audit\n"))
    ps = load_policy_set([org, user], [manifest], backend=backend)
    d = decide(ps, "fs.read", path="/data/notes/a")
    assert d.verdict is Verdict.DENY and d.rule.id == "no-notes"


def test_evaluation_errors_fail_closed_for_deny_and_open_for_allow(write, manifest, backend, policy_text):
    pol = write("org.yaml", policy_text("""
        - id: broken-deny
          effect: deny
          actions: [env.read]
          when: request.args.missing == "x"
        - id: broken-allow
          effect: allow
          actions: [fs.read]
          when: request.args.missing == "x"
    """))
    ps = load_policy_set([pol], [manifest], backend=backend)
    d = decide(ps, "env.read", name="NOTES_DIR")
    assert d.verdict is Verdict.DENY and d.rule.id == "broken-deny" and d.errors
    d = decide(ps, "fs.read", path="/elsewhere")
    assert d.verdict is Verdict.DENY and d.decided_by is DecidedBy.DEFAULT and d.errors


def test_audit_mode_rule_and_plugin(write, manifest, backend, policy_text):
    pol = write("org.yaml", policy_text("""
        - id: soon-no-git
          effect: deny
          mode: audit
          actions: [process.exec]
          when: request.argv[0] == "git"
    """, settings='settings:\n  plugin_modes: {"trial-*": audit}\n'))
    ps = load_policy_set([pol], [manifest], backend=backend)
    d = decide(ps, "process.exec", argv=("git", "log"))
    assert d.allowed and d.would_deny and "soon-no-git" in [r.id for r in d.rules]
    d = decide(ps, "fs.read", plugin="trial-x", path="/etc/hostname")
    assert d.allowed and d.would_deny and d.decided_by is DecidedBy.MODE_AUDIT
    d = decide(ps, "fs.read", plugin="notes", path="/etc/hostname")   # not in the read-only baseline
    assert not d.allowed


def test_builtin_protection_cannot_be_lifted(write, manifest, backend, policy_text):
    pol = write("org.yaml", policy_text('- id: allow-everything\n  effect: allow\n  when: "true"\n',
                                        settings="settings:\n  mode: audit\n"))
    ps = load_policy_set([pol], [manifest], backend=backend, protected_paths=[("/var/log/pl-audit", "the audit log")])
    for path in (pol, "/var/log/pl-audit/audit.jsonl"):
        d = decide(ps, "fs.write", path=path)
        assert d.verdict is Verdict.DENY and d.rule.id.startswith("builtin:"), d


def test_remembered_answer_settles_an_ask(write, manifest, backend, policy_text):
    pol = write("org.yaml", policy_text('- id: ask-git\n  effect: ask\n  actions: [process.exec]\n  when: "true"\n'))
    grants = write("grants.yaml", policy_text('- id: grant-1\n  effect: allow\n  actions: [process.exec]\n'
                                              '  plugins: [notes]\n  when: request.argv == ["git", "status"]\n', layer="user"))
    ps = load_policy_set([pol], [manifest], grants=grants, backend=backend)
    d = decide(ps, "process.exec", argv=("git", "status"))
    assert d.allowed and d.rule.id == "grant-1"
    assert decide(ps, "process.exec", argv=("git", "push")).verdict is Verdict.ASK
    assert decide(ps, "fs.write", path=grants).verdict is Verdict.DENY, "the grants file is protected"


def test_cache_follows_the_policy_version(write, manifest, backend):
    ps = load_policy_set([], [manifest], backend=backend)
    r = Request("fs.read", "notes", path="/data/notes/a")
    first = ps.decide(r)
    assert ps.decide(r) is first, "second decision comes from the cache"
    assert ps.decide(r, use_cache=False) == first
    assert first.policy_version == ps.version


def test_explain_lists_every_rule(write, manifest, backend, policy_text):
    pol = write("org.yaml", policy_text('- id: d\n  effect: deny\n  actions: [fs.write]\n'))
    ps = load_policy_set([pol], [manifest], backend=backend)
    ex = ps.explain(Request("fs.read", "notes", path="/data/notes/a"))
    by_id = {t.rule.id: t for t in ex.traces}
    assert not by_id["d"].considered and "not selected" in by_id["d"].why
    assert by_id["manifest:notes:filesystem.read[0]"].matched
    assert ex.decision.allowed


@pytest.mark.parametrize("field", ["path", "host", "name", "url", "tool", "scheme", "argv"])
def test_nul_in_any_request_field_is_refused(field):
    value = ("a", "b\x00c") if field == "argv" else "/data/notes/a\x00/../../../etc/passwd"
    with pytest.raises(ValueError, match=f"request field `{field}`.*NUL"):
        Request("fs.read", "p", **{field: value})
    Request("fs.read", "p", **{field: ("a", "b") if field == "argv" else "/data/a"})   # control


def test_version_changes_with_content(write, manifest, policy_text):
    a = write("a.yaml", policy_text('- id: x\n  effect: deny\n  when: request.path == "/a"\n'))
    v1 = load_policy_set([a], [manifest]).version
    write("a.yaml", policy_text('- id: x\n  effect: deny\n  when: request.path == "/b"\n'))
    assert load_policy_set([a], [manifest]).version != v1
