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


NET_SERVER = Path(__file__).parent / "fixtures" / "net_server.mjs"
SDK = NPM_DIR / "node_modules" / "@modelcontextprotocol" / "sdk"
GREETING = "hello from the granted host"


@pytest.fixture(scope="module")
def node_net(tmp_path_factory):
    """A Node MCP server (the npm SDK) as a command plugin granted 127.0.0.1:<port> only; the
    host's HTTP server listens on every address, so 127.0.0.2:<port> is really there."""
    import http.server
    import threading

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(GREETING.encode())

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Hello)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    tmp = tmp_path_factory.mktemp("node-net")
    plugin = tmp / "plugins" / "net-node"
    plugin.mkdir(parents=True)
    node = os.path.realpath(NODE)
    (plugin / "plugin.yaml").write_text(
        "id: net-node\nversion: 0.1.0\n"
        f"entry:\n  command: [\"{node}\", \"{NET_SERVER}\", \"{SDK}\"]\n"
        "sandbox: process\ncapabilities:\n"
        f"  network: [\"127.0.0.1:{port}\"]\n  filesystem:\n"
        f"    read: [\"{NPM_DIR}/\", \"{NET_SERVER.parent}/\", \"/etc/ssl/openssl.cnf\"]\n")
    audit = tmp / "audit.jsonl"
    pm = PluginManager(policy_files=[str(ROOT / "policies" / "default.yaml")], search_path=[str(tmp / "plugins")],
                       config_path=False, entry_points=False, audit_log=AuditLog(str(audit)),
                       approvals=ApprovalStore(str(tmp / "approvals.yaml")), approve_all=True, call_timeout=30)
    report = pm.load_all()
    assert report.loaded == ["net-node"], report
    yield pm, port, audit
    pm.shutdown()
    httpd.shutdown()


def test_node_server_host_allow_list_holds(node_net):
    import socket
    pm, port, audit = node_net
    socket.create_connection(("127.0.0.2", port), timeout=5).close()   # the other host is really there

    def connect(host, via_proxy):
        r = pm.call_tool("net-node.connect", {"host": host, "port": port, "via_proxy": via_proxy})
        assert r.ok, r.content
        return r.content

    granted = connect("127.0.0.1", True)          # HTTPS-style CONNECT through the egress proxy
    assert granted.startswith("ok:") and granted.endswith(GREETING), granted
    other = connect("127.0.0.2", True)            # the granted port, another host
    assert other.startswith("refused:HTTP/1.1 403"), other
    for host in ("127.0.0.1", "127.0.0.2"):       # dialled directly: only loopback in the namespace
        assert connect(host, False).startswith("error:"), host
    assert "127.0.0.2" in audit.read_text() and '"net-node"' in audit.read_text()
