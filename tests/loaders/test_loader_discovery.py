"""Discovery: directories, config file entries, entry points; problems never abort."""

from __future__ import annotations

import os
import textwrap

import pytest
from loader_helpers import make_plugin

from promptline.loaders._discovery import (
    CONFIG_ENV,
    PLUGIN_PATH_ENV,
    default_config_path,
    discover,
    manifest_from_tree,
    plugin_search_path,
)
from promptline.loaders._signing import read_tree


def run(tmp_path, *, dirs=(), config=None, eps=(), version="0.1.0"):
    cfg = False
    if config is not None:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(textwrap.dedent(config))
    return discover(search_path=list(dirs), config_path=cfg, entry_points=list(eps), version=version)


def test_plugins_in_directories(tmp_path):
    plugins = tmp_path / "plugins"
    make_plugin(plugins, "alpha")
    make_plugin(plugins, "beta")
    (plugins / "not-a-plugin").mkdir()
    (plugins / "README.txt").write_text("x")
    report = run(tmp_path, dirs=[plugins, tmp_path / "missing"])
    assert [p.id for p in report] == ["alpha", "beta"] and report.ok
    alpha = report.get("alpha")
    assert alpha.source == "directory" and alpha.kind == "python"
    assert alpha.root == (plugins / "alpha").resolve()
    assert alpha.origin.endswith("alpha/plugin.yaml")


def test_a_listed_directory_may_itself_be_a_plugin(tmp_path):
    root = make_plugin(tmp_path / "dev", "dev-tool")
    assert [p.id for p in run(tmp_path, dirs=[root])] == ["dev-tool"]


def test_invalid_manifest_is_a_problem_with_file_and_line_not_an_exception(tmp_path):
    plugins = tmp_path / "plugins"
    make_plugin(plugins, "good")
    bad = make_plugin(plugins, "bad")
    (bad / "plugin.yaml").write_text("id: bad\nversion: 1.0.0\nentry:\n  python: x:Y\ncapabilities:\n  netwrk: []\n")
    report = run(tmp_path, dirs=[plugins])
    assert [p.id for p in report] == ["good"] and not report.ok
    (problem,) = report.problems
    assert problem.origin.endswith("bad/plugin.yaml:6:3") and "unknown key `capabilities.netwrk`" in str(problem)


def test_duplicate_ids_leave_both_out_and_name_both_places(tmp_path):
    make_plugin(tmp_path / "a", "same")
    make_plugin(tmp_path / "b", "same")
    report = run(tmp_path, dirs=[tmp_path / "a", tmp_path / "b"])
    assert len(report) == 0
    text = str(report.problems[0])
    assert "plugin id `same` is used by 2 plugins" in text and "/a/same" in text and "/b/same" in text


def test_same_directory_reached_twice_counts_once(tmp_path):
    make_plugin(tmp_path / "a", "one")
    report = run(tmp_path, dirs=[tmp_path / "a"], config="plugins:\n  - path: a/one\n")
    assert [p.id for p in report] == ["one"] and report.ok


@pytest.mark.parametrize("requires,ok", [(">=0.1,<1.0", True), (">=2.0", False), ("==0.1.*", True)])
def test_version_compatibility(tmp_path, requires, ok):
    root = make_plugin(tmp_path / "p", "v")
    text = (root / "plugin.yaml").read_text().replace('requires: ">=0.1"', f'requires: "{requires}"')
    (root / "plugin.yaml").write_text(text)
    report = run(tmp_path, dirs=[tmp_path / "p"])
    assert (len(report) == 1) is ok
    if not ok:
        assert f"requires PromptLine `{requires}`, this is 0.1.0" in str(report.problems[0])


def test_world_writable_plugin_directory_is_refused(tmp_path):
    make_plugin(tmp_path / "open", "x")
    os.chmod(tmp_path / "open", 0o777)
    report = run(tmp_path, dirs=[tmp_path / "open"])
    assert len(report) == 0 and "writable by everyone" in str(report.problems[0])


def test_config_entries_path_wasm_command(tmp_path):
    make_plugin(tmp_path, "local")
    wasm_dir = tmp_path / "wasm-plugin"
    wasm_dir.mkdir()
    (wasm_dir / "plugin.wasm").write_bytes(b"\0asm")
    (wasm_dir / "plugin.yaml").write_text("id: wasmy\nversion: 1.0.0\nentry:\n  wasm: plugin.wasm\nsandbox: wasm\n")
    cmd_dir = tmp_path / "db"
    cmd_dir.mkdir()
    (cmd_dir / "plugin.yaml").write_text(
        "id: database\nversion: 0.1.0\nentry:\n  command: [promptline-plugin-database]\n")
    report = run(tmp_path, config="""\
        theme: dark
        plugins:
          - path: local
          - wasm: wasm-plugin/plugin.wasm
            args: [--fast]
          - command: promptline-plugin-database
            args: ["--config", "db.yaml"]
            manifest: db/plugin.yaml
            protocol: stdio
        """)
    assert report.ok, [str(p) for p in report.problems]
    local, wasmy, db = (report.get(i) for i in ("local", "wasmy", "database"))
    assert local.source == "config" and local.origin.endswith("config.yaml:3")
    assert wasmy.kind == "wasm" and wasmy.wasm == (wasm_dir / "plugin.wasm").resolve() and wasmy.args == ("--fast",)
    assert db.argv == ("promptline-plugin-database", "--config", "db.yaml")


@pytest.mark.parametrize("entry,message", [
    ("- path: nowhere", "no plugin.yaml in"),
    ("- path: lib/docker.so", "native library `lib/docker.so` cannot be loaded"),
    ("- command: some-tool", "command plugin `some-tool` has no manifest"),
    ("- wasm: db.wasm\n    permissions: {network: allow}", "unknown key `permissions`"),
    ("- path: a\n    command: b", "exactly one of `path`, `command`, `wasm`"),
    ("- wasm: missing.wasm", "wasm module"),
    ("- command: x\n    args: notalist", "`args` must be a list"),
    ("- 42", "must be a mapping"),
], ids=["no-manifest", "native", "command-no-manifest", "permissions", "two-kinds", "wasm-missing",
        "args", "scalar"])
def test_bad_config_entries_are_problems_with_line(tmp_path, entry, message):
    (tmp_path / "db.wasm").write_bytes(b"\0asm")
    report = run(tmp_path, config=f"plugins:\n  {entry}\n")
    assert len(report) == 0
    (problem,) = report.problems
    assert message in str(problem) and problem.origin.rsplit(":", 1)[1] in ("2", "3")


def test_config_command_must_match_manifest(tmp_path):
    (tmp_path / "plugin.yaml").write_text("id: db\nversion: 0.1.0\nentry:\n  command: [real-db]\n")
    report = run(tmp_path, config="plugins:\n  - command: other\n    manifest: plugin.yaml\n")
    assert len(report) == 0 and "config runs `other` but plugin.yaml declares `entry.command: real-db`" \
        in str(report.problems[0])


def test_broken_config_file_is_a_problem(tmp_path):
    make_plugin(tmp_path / "p", "fine")
    report = run(tmp_path, dirs=[tmp_path / "p"], config="plugins: [\n")
    assert [p.id for p in report] == ["fine"] and "invalid YAML" in str(report.problems[0])


def make_dist(site, *, ep_name="tidy", manifest=True):
    """A tiny installed distribution: package `tidy_tools` with plugin.yaml and an entry point."""
    pkg = make_plugin(site, "tidy-tools")
    pkg.rename(site / "tidy_tools")
    pkg = site / "tidy_tools"
    (pkg / "tidy_tools.py").rename(pkg / "__init__.py")
    if not manifest:
        (pkg / "plugin.yaml").unlink()
    info = site / "tidy_tools-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tidy-tools\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[promptline.plugins]\n{ep_name} = tidy_tools:Plugin\n")
    files = [p.relative_to(site).as_posix() for p in pkg.rglob("*") if p.is_file()]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files + ["tidy_tools-1.0.dist-info/METADATA"]))
    return pkg


def test_entry_point_plugin_found_without_importing_it(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    pkg = make_dist(site, ep_name="tidy-tools")
    (pkg / "__init__.py").write_text("raise SystemExit('imported during discovery!')\n")
    monkeypatch.syspath_prepend(str(site))
    report = discover(search_path=[], config_path=False, entry_points=True, version="0.1.0")
    plugin = report.get("tidy-tools")
    assert plugin is not None and report.ok, [str(p) for p in report.problems]
    assert plugin.source == "entry-point" and plugin.package == "tidy_tools"
    assert plugin.root == pkg.resolve() and "tidy-tools = tidy_tools:Plugin" in plugin.origin
    assert "tidy_tools" not in __import__("sys").modules


def test_entry_point_without_manifest_and_name_mismatch(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    make_dist(site, ep_name="other-name")
    monkeypatch.syspath_prepend(str(site))
    report = discover(search_path=[], config_path=False, version="0.1.0")
    assert report.get("tidy-tools") is not None
    assert any("differs from plugin id" in str(p) and p.severity == "warning" for p in report.problems)


def test_entry_point_missing_manifest(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    make_dist(site, manifest=False)
    monkeypatch.syspath_prepend(str(site))
    report = discover(search_path=[], config_path=False, version="0.1.0")
    assert len(report) == 0 and "no plugin.yaml shipped in package `tidy_tools`" in str(report.problems[0])


def test_search_path_and_config_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(PLUGIN_PATH_ENV, f"{tmp_path}/a{os.pathsep}{tmp_path}/b{os.pathsep}")
    assert plugin_search_path() == [tmp_path / "a", tmp_path / "b"]
    monkeypatch.delenv(PLUGIN_PATH_ENV)
    defaults = plugin_search_path()
    assert len(defaults) == 3 and str(defaults[-1]) == "/etc/promptline/plugins"
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "c.yaml"))
    assert default_config_path() == tmp_path / "c.yaml"


def test_manifest_is_reread_from_the_verified_snapshot(tmp_path):
    root = make_plugin(tmp_path, "snap")
    tree = read_tree(root)
    (root / "plugin.yaml").write_text("id: swapped\nversion: 9.9.9\nentry:\n  python: x:Y\n")
    assert manifest_from_tree(tree).id == "snap"


# --- vetting: signature + manifest from verified bytes + approval ----------------------


class Settings:
    def __init__(self, trusted=(), require=False, approve="review", org=True):
        self.trusted_keys, self.require_signature, self.approve = tuple(trusted), require, approve
        self.set_by = {"trusted_keys": "org" if org else "user"}


def vet(tmp_path, settings, store=None):
    from promptline.loaders._approval import ApprovalStore
    from promptline.loaders._discovery import inspect_plugin
    report = run(tmp_path, dirs=[tmp_path / "plugins"])
    return inspect_plugin(report.get("demo"), settings, store or ApprovalStore(tmp_path / "approvals.yaml"))


def test_vetting_new_unsigned_plugin_needs_approval(tmp_path):
    make_plugin(tmp_path / "plugins")
    result = vet(tmp_path, Settings())
    assert result.error is None and not result.loadable and result.status.state == "needs-approval"
    assert result.signature == "unsigned" and set(result.verified.files) >= {"plugin.yaml", "demo.py"}


def test_vetting_refuses_unsigned_when_policy_requires_signatures(tmp_path, keypair):
    make_plugin(tmp_path / "plugins")
    result = vet(tmp_path, Settings([keypair[1]], require=True))
    assert not result.loadable and "is not signed" in result.error


def test_vetting_org_preapproves_its_publishers(tmp_path, keypair):
    from promptline.loaders._signing import sign_plugin
    sign_plugin(make_plugin(tmp_path / "plugins"), keypair[0])
    result = vet(tmp_path, Settings([keypair[1]], require=True))
    assert result.loadable and result.status.via == "org-publisher"
    # the same key trusted only by the user's layer verifies the signature but approves nothing
    result = vet(tmp_path, Settings([keypair[1]], require=True, org=False))
    assert result.verified.signed and not result.loadable


def test_vetting_after_user_approval_and_tampering(tmp_path, keypair):
    from promptline.loaders._approval import ApprovalStore
    from promptline.loaders._signing import sign_plugin
    root = make_plugin(tmp_path / "plugins")
    sign_plugin(root, keypair[0])
    store = ApprovalStore(tmp_path / "approvals.yaml")
    settings = Settings([keypair[1]], require=True, org=False)
    store.approve(vet(tmp_path, settings, store).subject)
    assert vet(tmp_path, settings, store).loadable
    (root / "demo.py").write_text("evil = True\n")
    tampered = vet(tmp_path, settings, store)
    assert not tampered.loadable and "`demo.py` changed after signing" in tampered.error
