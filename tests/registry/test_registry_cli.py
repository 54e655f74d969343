"""The commands through click's CliRunner, and publish's index tree."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from registry_helpers import snapshot, write_plugin

import promptline.loaders._registry as registry
from promptline.cli import registry_cmd
from promptline.cli.registry_cmd import install_cmd, publish_cmd, remove_cmd, search_cmd, update_cmd
from promptline.enforcer.audit import read_records
from promptline.loaders._registry import Index, RegistryError, publish


def run(cmd, *args, input=None):
    return CliRunner().invoke(cmd, [str(a) for a in args], input=input, catch_exceptions=False)


def test_public_surface_matches_all():
    names = {n for n in dir(registry) if not n.startswith("_")} - {"annotations"}
    assert set(registry.__all__) <= names
    assert [c.name for c in (install_cmd, publish_cmd, update_cmd, remove_cmd, search_cmd)] == \
        ["install", "publish", "update", "remove", "search"]


# -- publish ------------------------------------------------------------------------------


def test_publish_writes_archive_checksum_signature_and_index(env):
    src = write_plugin(env.src)
    r = run(publish_cmd, src, "--index", env.index, "--key", env.key_path)
    assert r.exit_code == 0, r.output
    assert "published `demo` 0.1.0 (signed by" in r.output
    doc = json.loads((env.index / "index.json").read_text())
    entry = doc["plugins"]["demo"]["versions"]["0.1.0"]
    archive = env.index / entry["archive"]
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == entry["sha256"]
    assert (archive.parent / (archive.name + ".sha256")).read_text().startswith(entry["sha256"])
    assert entry["signature"] and entry["key"] == env.pub
    assert not (src / "plugin.sig").exists()        # a copy was signed; the author's dir is untouched
    Index.open(env.index).versions("demo")[0].verify([env.pub], require_signature=True)


def test_publish_from_a_git_checkout_leaves_git_out(env):
    import tarfile

    from registry_helpers import git
    src = write_plugin(env.src)
    git("init", "--quiet", "-b", "main", str(src))
    git("add", "-A", cwd=src)
    git("commit", "--quiet", "-m", "x", cwd=src)
    entry = publish(src, env.index, key=env.key_path)
    with tarfile.open(env.index / entry.archive) as tar:
        names = tar.getnames()
    assert "plugin.sig" in names and not [n for n in names if n.startswith(".git")]
    env.registry().install("demo")
    assert not (env.plugins / "demo" / ".git").exists()


def test_publish_same_version_twice(env):
    src = write_plugin(env.src)
    first = publish(src, env.index, key=env.key_path)
    assert publish(src, env.index, key=env.key_path).sha256 == first.sha256        # identical: no change
    write_plugin(env.src, note="changed")
    before = snapshot(env.index)
    with pytest.raises(RegistryError, match="already in the index with different content") as exc:
        publish(src, env.index, key=env.key_path)
    assert exc.value.reason == "exists"
    assert snapshot(env.index) == before


def test_publish_unsigned_needs_the_flag(env):
    src = write_plugin(env.src)
    r = run(publish_cmd, src, "--index", env.index, "--key", env.tmp / "missing.pem")
    assert r.exit_code == 1 and "not found" in r.output
    with pytest.raises(RegistryError, match="is not signed"):
        publish(src, env.index)
    assert publish(src, env.index, unsigned=True).signature is None


def test_publish_refuses_a_tree_changed_after_signing(env):
    from promptline.loaders._signing import sign_plugin
    src = write_plugin(env.src)
    sign_plugin(src, env.key_path)
    (src / "extra.py").write_text("x = 1\n")
    with pytest.raises(RegistryError, match="was added after signing"):
        publish(src, env.index)


# -- search -------------------------------------------------------------------------------


def test_search(env, http_index):
    publish(write_plugin(env.src, "notes"), env.index, key=env.key_path)
    publish(write_plugin(env.src, "weather", version="1.0.0"), env.index, key=env.key_path)
    publish(write_plugin(env.src, "weather", version="1.1.0", requires=">=99"), env.index, key=env.key_path)
    r = run(search_cmd, "--index", http_index)
    assert r.exit_code == 0 and "notes" in r.output and "weather" in r.output
    r = run(search_cmd, "weath", "--index", http_index, "--json")
    found = json.loads(r.output)
    assert [(f["id"], f["version"], f["versions"], f["compatible"]) for f in found] == \
        [("weather", "1.1.0", ["1.1.0", "1.0.0"], False)]
    assert "no plugin matches" in run(search_cmd, "zzz", "--index", http_index).output


# -- install / update / remove ------------------------------------------------------------


def test_cli_install_from_index_update_and_remove(env, http_index):
    publish(write_plugin(env.src), env.index, key=env.key_path)
    r = run(install_cmd, "demo", *env.cli_args(), "--index", http_index)
    assert r.exit_code == 0, r.output
    assert "signed by trusted key" in r.output and "net.connect api.example.com:443" in r.output
    assert "installed `demo` 0.1.0" in r.output
    r = run(update_cmd, "demo", *env.cli_args())
    assert r.exit_code == 0 and "is up to date" in r.output
    publish(write_plugin(env.src, version="0.2.0"), env.index, key=env.key_path)
    r = run(update_cmd, "demo", *env.cli_args())
    assert r.exit_code == 0 and "updated `demo` 0.1.0 -> 0.2.0" in r.output, r.output
    r = run(remove_cmd, "demo", *env.cli_args())
    assert r.exit_code == 0 and "removed `demo` 0.2.0" in r.output
    events = [(r["event"], r["detail"]) for r in read_records(env.audit) if r.get("kind") == "lifecycle"]
    assert events[-1] == ("unloaded", "removed")


def test_cli_shows_denied_capability(env):
    src = write_plugin(env.src, read=("~/.ssh/",))
    r = run(install_cmd, src, *env.cli_args(env.open_policy), "--yes")
    assert r.exit_code == 0, r.output
    assert "deny" in r.output and "no-ssh-keys" in r.output


def test_cli_refuses_without_terminal_and_changes_nothing(env):
    src = write_plugin(env.src)
    before = snapshot(env.home)
    r = run(install_cmd, src, *env.cli_args(env.open_policy))
    assert r.exit_code == 1 and "error:" in r.output and "no terminal" in r.output
    assert snapshot(env.home) == before


@pytest.mark.parametrize("answer, installed", [("y\n", True), ("n\n", False)])
def test_cli_interactive_approval(env, monkeypatch, answer, installed):
    monkeypatch.setattr(registry_cmd, "_interactive", lambda: True)
    src = write_plugin(env.src)
    r = run(install_cmd, src, *env.cli_args(env.open_policy), input=answer)
    assert "approval needed: new plugin" in r.output
    assert (r.exit_code == 0) == installed, r.output
    assert (env.plugins / "demo").exists() == installed


def test_cli_update_growth_shows_diff_and_no_keeps_the_old_version(env, monkeypatch):
    monkeypatch.setattr(registry_cmd, "_interactive", lambda: True)
    src = write_plugin(env.src)
    assert run(install_cmd, src, *env.cli_args(env.open_policy), "--yes").exit_code == 0
    write_plugin(env.src, version="0.2.0", read=("~/Documents/",))
    r = run(update_cmd, "demo", *env.cli_args(env.open_policy), input="n\n")
    assert r.exit_code == 1
    assert "+ filesystem.read: ~/Documents/" in r.output and "asks for more than before" in r.output
    assert json.loads((env.plugins / "demo" / "plugin.yaml").read_text())["version"] == "0.1.0"


def test_cli_bad_signature_error_line(env, http_index, other_key):
    publish(write_plugin(env.src), env.index, key=other_key[0])
    r = run(install_cmd, "demo", *env.cli_args(), "--index", http_index, "--yes")
    assert r.exit_code == 1
    assert r.output.startswith("error: plugin `demo`: index entry `demo` 0.1.0 is signed by key")


def test_cli_downgrade_and_force(env):
    for v in ("0.1.0", "0.2.0"):
        publish(write_plugin(env.src, version=v), env.index, key=env.key_path)
    assert run(install_cmd, "demo", *env.cli_args()).exit_code == 0
    r = run(update_cmd, "demo", "--to", "0.1.0", *env.cli_args())
    assert r.exit_code == 1 and "refusing to downgrade" in r.output
    r = run(update_cmd, "demo", "--to", "0.1.0", "--force", *env.cli_args())
    assert r.exit_code == 0 and "0.2.0 -> 0.1.0" in r.output
