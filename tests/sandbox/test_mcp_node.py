"""Interop with an MCP server in another language: the official Node.js filesystem server
(`@modelcontextprotocol/server-filesystem`, installed from npm by .ci/run) runs as a
`command:` plugin in the process sandbox. The server itself is told it may use the whole
test directory; Landlock still confines it to what the manifest grants."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from promptline.enforcer.audit import AuditLog
from promptline.loaders import ApprovalStore, PluginManager

ROOT = Path(__file__).resolve().parents[2]
NPM_DIR = ROOT / "tests" / "sandbox" / "npm"          # npm install --prefix tests/sandbox/npm ...
SERVER = NPM_DIR / "node_modules" / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None or not SERVER.exists(),
                                reason="needs node and `npm install --prefix tests/sandbox/npm "
                                       "@modelcontextprotocol/server-filesystem` (.ci/run does it)")


@pytest.fixture(scope="module")
def node_fs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("node")
    (tmp / "allowed").mkdir()
    (tmp / "allowed" / "a.txt").write_text("hello from allowed\n")
    (tmp / "secret").mkdir()
    (tmp / "secret" / "s.txt").write_text("TOP SECRET\n")
    plugin = tmp / "plugins" / "fs-node"
    plugin.mkdir(parents=True)
    node = os.path.realpath(NODE)
    (plugin / "plugin.yaml").write_text(
        "id: fs-node\nversion: 0.1.0\n"
        f"entry:\n  command: [\"{node}\", \"{SERVER}\", \"{tmp}\"]\n"
        "sandbox: process\ncapabilities:\n  filesystem:\n"
        f"    read: [\"{NPM_DIR}/\", \"{tmp}/allowed/\", \"/etc/ssl/openssl.cnf\"]\n")
    pm = PluginManager(policy_files=[str(ROOT / "policies" / "default.yaml")], search_path=[str(tmp / "plugins")],
                       config_path=False, entry_points=False, audit_log=AuditLog(str(tmp / "audit.jsonl")),
                       approvals=ApprovalStore(str(tmp / "approvals.yaml")), approve_all=True, call_timeout=30)
    report = pm.load_all()
    assert report.loaded == ["fs-node"], report
    yield pm, tmp
    pm.shutdown()


def test_node_server_tools_are_listed(node_fs):
    pm, _ = node_fs
    names = {n for n, _ in pm.list_tools()}
    assert {"fs-node.read_text_file", "fs-node.write_file", "fs-node.list_directory"} <= names


def test_node_server_reads_what_the_manifest_grants(node_fs):
    pm, tmp = node_fs
    r = pm.call_tool("fs-node.read_text_file", {"path": str(tmp / "allowed" / "a.txt")})
    assert r.ok and "hello from allowed" in r.content


def test_node_server_is_confined_by_landlock(node_fs):
    pm, tmp = node_fs
    r = pm.call_tool("fs-node.read_text_file", {"path": str(tmp / "secret" / "s.txt")})
    assert not r.ok and "TOP SECRET" not in r.content and "EACCES" in r.content
    r = pm.call_tool("fs-node.write_file", {"path": str(tmp / "allowed" / "new.txt"), "content": "x"})
    assert not r.ok and not (tmp / "allowed" / "new.txt").exists()
