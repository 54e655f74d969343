"""Bad files of every kind give one clear error with file:line:column and no policy."""

import os

import pytest

from promptline.policy import PolicyError, load_manifest, load_policy_set

GOOD_MANIFEST = """\
id: notes
version: 0.1.0
entry: {python: "notes:Plugin"}
capabilities:
  filesystem: {read: ["~/notes/"]}
"""


def error_of(fn, *args, **kw) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        fn(*args, **kw)
    return info.value


@pytest.mark.parametrize("text, line, needle", [
    ("id: notes\nversion: 0.1.0\nentry: {python: \"a:B\"}\nsurprise: 1\n", 4, "unknown key `surprise`"),
    ("id: notes\nid: other\nversion: 0.1.0\nentry: {python: \"a:B\"}\n", 2, "duplicate key `id`"),
    ("id: Notes!\nversion: 0.1.0\nentry: {python: \"a:B\"}\n", 1, "plugin id `Notes!`"),
    ("id: notes\nversion: one\nentry: {python: \"a:B\"}\n", 2, "semantic versioning"),
    ("id: notes\nversion: 0.1.0\n", 1, "missing required key `entry`"),
    ("id: notes\nversion: 0.1.0\nentry: {python: \"a:B\", wasm: x.wasm}\n", 3, "exactly one"),
    ("id: notes\nversion: 0.1.0\nentry: {python: \"a:B\"}\ncapabilities:\n  network: [\"exa mple.com\"]\n", 5, "network entry"),
    ("id: notes\nversion: 0.1.0\nentry: {python: \"a:B\"}\ncapabilities:\n  filesystem: {read: [\"relative/dir\"]}\n", 5, "must be absolute"),
    ("id: notes\nversion: 0.1.0\nentry: {python: \"a:B\"}\ncapabilities:\n  environment: [\"A B\"]\n", 5, "environment entry"),
    ("id: notes\nversion: 0.1.0\nentry: {python: \"a:B\"}\nrequires: \"not a spec\"\n", 4, "version specifier"),
    ("id: notes\nversion: 0.1.0\nentry: {python: \"a:B\"}\nsandbox: docker\n", 4, "sandbox"),
    ("- just\n- a list\n", 1, "must be a YAML mapping"),
    ("id: [unclosed\n", 2, "invalid YAML"),
])
def test_bad_manifests(write, text, line, needle):
    path = write("plugin.yaml", text)
    err = error_of(load_manifest, path)
    assert err.file == path and err.line == line, str(err)
    assert needle in str(err)
    assert " — " in str(err), "every error says how to fix it"
    assert "\n" not in str(err)


def test_good_manifest(write):
    m = load_manifest(write("plugin.yaml", GOOD_MANIFEST))
    assert m.id == "notes" and m.capabilities.filesystem.read == ("~/notes/",)


@pytest.mark.parametrize("rules, line, needle", [
    ("- id: a\n  effect: deny\n  when: request.pth == \"x\"\n", 7, "pth"),
    ("- id: a\n  effect: deny\n  when: nosuch(request.path)\n", 7, "nosuch"),
    ("- id: a\n  effect: deny\n  when: request.path ==\n", 7, "invalid `when`"),
    ("- id: a\n  effect: deny\n  when: request.port + 1\n", 7, "bool"),
    ("- id: a\n  effect: maybe\n", 6, "effect"),
    ("- id: a\n  effect: deny\n  actions: [fs.reed]\n", 7, "unknown action `fs.reed`"),
    ("- id: a\n  effect: deny\n- id: a\n  effect: allow\n", 7, "duplicate rule id"),
    ("- id: a\n  effect: deny\n  colour: red\n", 7, "unknown key `rules.0.colour`"),
])
def test_bad_policies(write, backend, rules, line, needle, policy_text):
    path = write("org.yaml", policy_text(rules))
    err = error_of(load_policy_set, [path], backend=backend)
    assert err.file == path and err.line == line, str(err)
    assert needle in str(err), str(err)


def test_cel_error_column_points_into_the_file(write, backend, policy_text):
    path = write("org.yaml", policy_text('- id: a\n  effect: deny\n  when: request.path == "x" && request.hots == "y"\n'))
    err = error_of(load_policy_set, [path], backend=backend)
    line = open(path).read().splitlines()[err.line - 1]
    assert line[err.column - 1:].startswith("hots") or line[err.column - 1:].startswith("request.hots"), (err, line)


def test_cel_error_in_block_scalar_reports_the_right_line(write, backend, policy_text):
    path = write("org.yaml", policy_text('- id: a\n  effect: deny\n  when: >-\n    request.path == "x" ||\n    undefined_var == 1\n'))
    err = error_of(load_policy_set, [path], backend=backend)
    assert err.line == 9, str(err)


@pytest.mark.parametrize("text, needle", [
    ("kind: Policy\nlayer: org\n", "apiVersion"),
    ("apiVersion: promptline/v9\nkind: Policy\nlayer: org\n", "unsupported apiVersion"),
    ("apiVersion: promptline/v1\nkind: Policy\nlayer: galaxy\n", "layer"),
    ("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings: {approve: yolo}\n", "approve"),
    ("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings: {locked: [colour]}\n", "unknown setting"),
    ("a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
     "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n", "alias"),
    ("apiVersion: promptline/v1\nkind: Policy\nlayer: org\n<<: {x: 1}\n", "merge keys"),
    ("apiVersion: !!python/object:os.system promptline/v1\n", "invalid"),
])
def test_bad_policy_documents(write, text, needle):
    path = write("org.yaml", text)
    err = error_of(load_policy_set, [path])
    assert needle in str(err) and err.file == path, str(err)


def test_huge_file_is_refused_without_reading_it_all(write):
    path = write("org.yaml", "apiVersion: promptline/v1\n#" + "x" * (2 << 20) + "\n")
    assert "larger than" in str(error_of(load_policy_set, [path]))


def test_binary_and_missing_files(tmp_path):
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    assert "UTF-8" in str(error_of(load_policy_set, [str(bad)]))
    assert "not found" in str(error_of(load_policy_set, [str(tmp_path / "nope.yaml")]))


def test_one_bad_file_means_no_policy_at_all(write, policy_text):
    good = write("a.yaml", policy_text("- id: a\n  effect: allow\n"))
    bad = write("b.yaml", policy_text("- id: b\n  effect: deny\n  when: oops(\n"))
    with pytest.raises(PolicyError):
        load_policy_set([good, bad])


def test_directory_of_policies_skips_test_files(tmp_path, write, policy_text):
    write("pol/10-org.yaml", policy_text("- id: a\n  effect: deny\n"))
    write("pol/10-org.test.yaml", "not: a policy\n")
    ps = load_policy_set([str(tmp_path / "pol")])
    assert [r.id for r in ps.rules if r.ref.layer == "org"] == ["a"]


def test_org_policy_writable_by_others_is_refused(tmp_path, write, policy_text):
    path = write("org.yaml", policy_text("- id: a\n  effect: deny\n"))
    os.chmod(path, 0o666)
    err = error_of(load_policy_set, [path])
    assert "writable by group or others" in str(err) and "chmod go-w" in str(err)


def test_locked_org_setting_cannot_be_changed_below(write, policy_text):
    org = write("org.yaml", policy_text("[]", settings="settings:\n  require_signature: true\n  locked: [require_signature]\n"))
    user = write("user.yaml", policy_text("[]", layer="user", settings="settings:\n  require_signature: false\n"))
    err = error_of(load_policy_set, [org, user])
    assert "locked" in str(err) and err.file == user and err.line == 5, str(err)


def test_unlocked_setting_can_be_overridden_below(write, policy_text):
    org = write("org.yaml", policy_text("[]", settings="settings:\n  approve: review\n"))
    user = write("user.yaml", policy_text("[]", layer="user", settings="settings:\n  approve: declared\n"))
    assert load_policy_set([org, user]).settings.approve == "declared"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root (CI runs as root)")
def test_org_policy_owned_by_someone_else_is_refused(tmp_path, write, policy_text):
    path = write("org.yaml", policy_text("- id: a\n  effect: deny\n"))
    os.chmod(path, 0o644)
    os.chown(path, 12345, -1)     # the tests run as root here; a stranger's file must not be trusted
    err = error_of(load_policy_set, [path])
    assert "owned by uid 12345" in str(err) and "chown" in str(err)


def test_a_reload_compiles_only_the_files_that_changed(tmp_path, monkeypatch):
    from promptline.policy import Request, _policyset
    from promptline.policy import load_policy_set as load
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    body = "apiVersion: promptline/v1\nkind: Policy\nlayer: user\nrules:\n  - id: {0}\n    effect: allow\n    match: {{path: '~/{0}/x'}}\n"
    a.write_text(body.format("a"))
    b.write_text(body.format("b"))
    compiled = []
    real = _policyset.compile_policy
    monkeypatch.setattr(_policyset, "compile_policy", lambda pf, located, *x, **k: compiled.append(located.file) or real(pf, located, *x, **k))
    home1, home2 = tmp_path / "h1", tmp_path / "h2"
    first = load([a, b], [], home=str(home1), refuse_writable=False)
    b.write_text(body.format("b").replace("~/b", "~/b2"))
    second = load([a, b], [], home=str(home1), refuse_writable=False)
    assert compiled == [str(a), str(b), str(b)]          # a was not compiled again
    assert second.decide(Request("fs.read", "p", path=f"{home1}/b2/x")).allowed
    assert not second.decide(Request("fs.read", "p", path=f"{home1}/b/x")).allowed
    assert first.decide(Request("fs.read", "p", path=f"{home1}/b/x")).allowed   # the old set is unchanged
    third = load([a, b], [], home=str(home2), refuse_writable=False)            # another home: compiled anew
    assert compiled[3:] == [str(a), str(b)]
    assert third.decide(Request("fs.read", "p", path=f"{home2}/a/x")).allowed
    assert not third.decide(Request("fs.read", "p", path=f"{home1}/a/x")).allowed
