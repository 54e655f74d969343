"""The decision service over its real socket: every method, every refusal, schemas, uid, concurrency."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from service_helpers import make_host, start_service, stop_service

from promptline.loaders import ServiceClient, ServiceError
from promptline.loaders._service._protocol import validator

SECRET = {"action": "fs.read", "path": "/srv/secret/key"}
DOC = {"action": "fs.read", "path": "/srv/docs/readme"}


def raw(sock_path, *lines: bytes) -> list[dict]:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock_path))
        s.settimeout(10)
        f = s.makefile("rb")
        out = []
        for line in lines:
            s.sendall(line + b"\n")
            reply = json.loads(f.readline())
            validator("response").validate(reply)
            out.append(reply)
        return out


def test_every_method_answers_by_its_schema(service):
    with ServiceClient(service["sock"]) as c:
        deny = c.check("demo", SECRET)
        allow = c.check("demo", DOC)
        ex = c.explain("demo", SECRET)
        tool = c.call_tool("demo.echo", {"text": "hello"})
        refused_tool = c.call_tool("demo.nope", {})
        load = c.load("policy")
        audit = c.audit(limit=5, kind="decision")
    for name, result in [("check", deny), ("check", allow), ("explain", ex), ("call_tool", tool),
                         ("call_tool", refused_tool), ("load", load), ("audit", audit)]:
        validator(f"{name}.result").validate(result)
    assert deny["verdict"] == "deny" and deny["rules"][0]["id"] == "no-secrets"
    assert allow["verdict"] == "allow" and allow["rules"][0]["id"] == "docs-ok"
    assert ex["decision"]["verdict"] == "deny"
    assert [r["id"] for r in ex["rules"] if r["matched"]] == ["no-secrets"]
    assert tool == {"ok": True, "content": "hello"}
    assert refused_tool["ok"] is False
    assert load["ok"] is True and load["policy_version"] == deny["policy_version"]
    # the decisions asked over the socket are in the host's audit trail, with their rule
    denied = [r for r in audit["records"] if r.get("decision") == "deny"]
    assert denied and denied[-1]["rule"] == "no-secrets" and denied[-1]["resource"] == "/srv/secret/key"
    assert all(r["kind"] == "decision" for r in audit["records"])


def test_a_tool_refused_by_policy_is_refused_over_the_socket(tmp_path):
    host = make_host(tmp_path)
    host["policy"].write_text(host["policy"].read_text() + """\
  - id: no-echo
    effect: deny
    actions: [tool.call]
    when: request.tool == "echo"
""")
    proc = start_service(tmp_path, host, "--no-watch")
    try:
        with ServiceClient(host["sock"]) as c:
            result = c.call_tool("demo.echo", {"text": "x"})
            check = c.check("demo", {"action": "tool.call", "tool": "echo", "args": {"text": "x"}})
            other = c.check("demo", {"action": "tool.call", "tool": "other", "args": {}})
    finally:
        stop_service(proc)
    assert result["ok"] is False and "no-echo" in result["error"]["message"]
    assert check["verdict"] == "deny" and check["rules"][0]["id"] == "no-echo"
    assert other["verdict"] != "deny" or other["rules"][0]["id"] != "no-echo"


@pytest.mark.parametrize("line, code, path", [
    (b"not json", "parse-error", None),
    (b'{"v": 1, "method": "check", "params": {"plugin": "demo", "request": {"action": "fs.read"}}', "parse-error", None),
    (b"\xff\xfe{}", "parse-error", None),
    (b'{"v": NaN, "method": "check"}', "parse-error", None),
    (b"[" * 100000 + b"]" * 100000, "parse-error", None),
    (b'{"a":' * 70 + b"1" + b"}" * 70, "parse-error", None),
    (b"", "invalid-request", "/"),
    (b"   ", "invalid-request", "/"),
    (b"[1, 2]", "invalid-request", "/"),
    (b'"check"', "invalid-request", "/"),
    (b'{"method": "check"}', "unsupported-version", "/v"),
    (b'{"v": 2, "method": "check"}', "unsupported-version", "/v"),
    (b'{"v": "1", "method": "check"}', "unsupported-version", "/v"),
    (b'{"v": 1.0, "method": "check"}', "unsupported-version", "/v"),
    (b'{"v": true, "method": "check"}', "unsupported-version", "/v"),
    (b'{"v": 1, "id": 9, "method": "shutdown"}', "unknown-method", "/method"),
    (b'{"v": 1, "method": 5}', "invalid-request", "/method"),
    (b'{"v": 1, "method": "check", "extra": 1}', "invalid-request", "/"),
    (b'{"v": 1, "method": "check", "params": []}', "invalid-request", "/params"),
    (b'{"v": 1, "method": "check", "params": {}}', "invalid-params", "/params"),
    (b'{"v": 1, "method": "check", "params": {"plugin": "demo", "request": {"action": "fs.steal"}}}',
     "invalid-params", "/params/request/action"),
    (b'{"v": 1, "method": "check", "params": {"plugin": "demo", "request": {"action": "fs.read", "port": -1}}}',
     "invalid-params", "/params/request/port"),
    (b'{"v": 1, "method": "check", "params": {"plugin": "demo", "request": {"action": "fs.read", "sneaky": 1}}}',
     "invalid-params", "/params/request"),
    (b'{"v": 1, "method": "call_tool", "params": {"tool": "demo.echo", "args": "x"}}', "invalid-params",
     "/params/args"),
    (b'{"v": 1, "method": "audit", "params": {"limit": 100000}}', "invalid-params", "/params/limit"),
])
def test_bad_lines_get_an_error_object_and_the_connection_stays_usable(service, line, code, path):
    good = json.dumps({"v": 1, "id": "ctl", "method": "check",
                       "params": {"plugin": "demo", "request": SECRET}}).encode()
    bad, control = raw(service["sock"], line, good)
    assert bad["error"]["code"] == code, bad
    if path is not None:
        assert bad["error"].get("path") == path, bad
    assert control["id"] == "ctl" and control["result"]["verdict"] == "deny"


def test_the_id_is_echoed_even_when_the_params_are_refused(service):
    (reply,) = raw(service["sock"], b'{"v": 1, "id": 41, "method": "check", "params": {}}')
    assert reply["id"] == 41 and reply["error"]["code"] == "invalid-params"


def test_an_oversized_line_is_refused_and_skipped_to_its_end(service):
    big = b'{"v": 1, "method": "check", "params": {"plugin": "' + b"a" * (2 << 20) + b'"}}'
    good = json.dumps({"v": 1, "id": 2, "method": "check", "params": {"plugin": "demo", "request": DOC}}).encode()
    big_reply, control = raw(service["sock"], big, good)
    assert big_reply["error"]["code"] == "too-large"
    assert control["id"] == 2 and control["result"]["verdict"] == "allow"


def test_a_client_that_hangs_up_mid_line_does_not_hurt_the_service(service):
    for _ in range(20):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(service["sock"]))
            s.sendall(b'{"v": 1, "method": "che')
    with ServiceClient(service["sock"]) as c:
        assert c.check("demo", SECRET)["verdict"] == "deny"
    assert service["proc"].poll() is None


def test_concurrent_clients_each_get_their_own_answers(service):
    errors: list[str] = []

    def worker(n: int) -> None:
        try:
            with ServiceClient(service["sock"]) as c:
                for i in range(100):
                    req, want = (SECRET, "deny") if (i + n) % 2 else (DOC, "allow")
                    got = c.check("demo", dict(req, path=req["path"] + f"/{n}-{i}"))["verdict"]
                    if got != want:
                        errors.append(f"client {n} request {i}: {got} != {want}")
        except Exception as exc:  # noqa: BLE001
            errors.append(f"client {n}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]


def test_the_python_client_raises_the_error_object(service):
    with ServiceClient(service["sock"]) as c:
        with pytest.raises(ServiceError) as info:
            c.check("demo", {"action": "fs.read", "port": 70000})
        assert info.value.code == "invalid-params" and info.value.path == "/params/request/port"
        assert c.check("demo", SECRET)["verdict"] == "deny"


def test_another_uid_is_refused_by_peer_credentials(tmp_path):
    """The socket file is made world-connectable on purpose: SO_PEERCRED alone must refuse."""
    if os.geteuid() != 0:
        pytest.skip("needs root to connect as another uid")
    interpreter = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)), None)
    if interpreter is None:
        pytest.skip("no system python that uid 65534 may run")
    pub = Path(tempfile.mkdtemp(prefix="pl-peer-"))
    try:
        os.chmod(pub, 0o755)
        host = make_host(tmp_path)
        host["sock"] = pub / "s.sock"
        proc = start_service(tmp_path, host, "--no-watch")
        try:
            assert (os.stat(host["sock"]).st_mode & 0o777) == 0o600   # created owner-only
            os.chmod(host["sock"], 0o666)
            probe = (
                "import json, socket, sys\n"
                "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
                "try:\n"
                "    s.sendall(json.dumps({'v': 1, 'id': 1, 'method': 'check', 'params': {'plugin': 'demo',"
                " 'request': {'action': 'fs.read', 'path': '/srv/docs/x'}}}).encode() + b'\\n')\n"
                "except BrokenPipeError:\n"
                "    pass\n"
                "print(s.makefile('rb').readline().decode().strip())\n"
                "try:\n"
                "    print(repr(s.recv(100)))\n"
                "except ConnectionResetError:\n"
                "    print(repr(b''))\n")
            out = subprocess.run([interpreter, "-I", "-c", probe, str(host["sock"])], user=65534,
                                 capture_output=True, text=True, timeout=30, cwd="/")
            assert out.returncode == 0, out.stderr
            first, rest = out.stdout.splitlines()
            reply = json.loads(first)
            assert reply["error"]["code"] == "forbidden" and "uid 65534" in reply["error"]["message"]
            assert rest == "b''"          # then the service hung up
            with ServiceClient(host["sock"]) as c:      # the owner, same socket, same moment
                assert c.check("demo", DOC)["verdict"] == "allow"
        finally:
            stop_service(proc)
    finally:
        shutil.rmtree(pub, ignore_errors=True)


def test_the_service_hot_reloads_its_policy(tmp_path):
    host = make_host(tmp_path)
    proc = start_service(tmp_path, host)
    try:
        with ServiceClient(host["sock"]) as c:
            assert c.check("demo", DOC)["verdict"] == "allow"
            text = host["policy"].read_text().replace("id: docs-ok\n    effect: allow", "id: docs-ok\n    effect: deny")
            tmp = host["policy"].with_suffix(".new")
            tmp.write_text(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, host["policy"])
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and c.check("demo", DOC)["verdict"] != "deny":
                time.sleep(0.05)
            d = c.check("demo", DOC)
            assert d["verdict"] == "deny" and d["rules"][0]["id"] == "docs-ok"
            # a broken save keeps the policy in force
            host["policy"].write_text("rules: [oops\n")
            time.sleep(0.5)
            assert c.check("demo", DOC)["verdict"] == "deny"
            assert c.check("demo", SECRET)["rules"][0]["id"] == "no-secrets"
    finally:
        stop_service(proc)


def test_a_stale_socket_file_is_replaced_and_a_live_one_is_not(tmp_path):
    host = make_host(tmp_path)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(host["sock"]))
    stale.close()                                  # a socket file nobody listens on
    proc = start_service(tmp_path, host, "--no-watch")
    try:
        second = subprocess.run([sys.executable, "-m", "promptline", "serve", "--socket", str(host["sock"]),
                                 "--policy", str(host["policy"]), "--plugins", str(tmp_path / "none"),
                                 "--audit-log", str(tmp_path / "a2.jsonl"), "--no-watch"],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "already listening" in second.stderr
        with ServiceClient(host["sock"]) as c:
            assert c.check("demo", SECRET)["verdict"] == "deny"
    finally:
        stop_service(proc)


def test_args_as_an_object_never_changes_the_action(service):
    with ServiceClient(service["sock"]) as c:
        d = c.check("demo", dict(SECRET, args={"a": 1}))
        t = c.check("demo", {"action": "tool.call", "tool": "echo", "args": {"b": [1, 2]}})
        ex = c.explain("demo", {"action": "tool.call", "tool": "echo", "args": '{"b": [1, 2]}'})
    assert d["verdict"] == "deny" and d["rules"][0]["id"] == "no-secrets"
    assert t["verdict"] == ex["decision"]["verdict"]     # object and JSON text are the same request
