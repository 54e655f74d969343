"""A host pulling its org bundle from a real HTTP server on 127.0.0.1: ETag, tampering,
wrong key, rollback, outage, slow and truncated bodies, a bundle replaced mid-download,
offline start from the last good bundle, and the audit trail of each."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from promptline.enforcer.audit import AuditLog, read_records
from promptline.loaders import BundleConfig, PluginManager, build_bundle, generate_key, sign_bundle
from promptline.loaders._signing import load_private_key
from promptline.policy import Request

RULE = "apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules:\n  - {{id: {rid}, effect: deny, actions: [fs.read], when: 'within(request.path, \"{path}\")'}}\n"


class Server:
    """Serves one bundle with an ETag; ``mode`` makes it misbehave."""

    def __init__(self) -> None:
        self.body = b""
        self.mode = "ok"
        self.alt = b""
        self.seen: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.seen.append(self.headers.get("If-None-Match"))
                etag = '"' + hashlib.sha256(outer.body).hexdigest()[:16] + '"'
                if outer.mode == "ok" and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                body = outer.body
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                half = len(body) // 2
                if outer.mode == "slow":
                    self.wfile.write(body[:half])
                    self.wfile.flush()
                    time.sleep(3)
                    self.wfile.write(body[half:])
                elif outer.mode == "truncate":
                    self.wfile.write(body[:half])
                    self.wfile.flush()
                    self.close_connection = True
                elif outer.mode == "trickle":   # one byte at a time, never idle for a read timeout
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(0.3)
                elif outer.mode == "swap":   # the file was replaced on the server while being sent
                    self.wfile.write(body[:half])
                    self.wfile.flush()
                    self.wfile.write(outer.alt[half:half + (len(body) - half)].ljust(len(body) - half, b"\0"))
                else:
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/org.bundle"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def world(tmp_path):
    keys = tmp_path / "keys"
    pub = generate_key(keys / "org.pem")
    other_pub = generate_key(keys / "rogue.pem")
    server = Server()
    local = tmp_path / "local.yaml"
    local.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules:\n"
                     "  - {id: reads-ok, effect: allow, actions: [fs.read]}\n")
    plugins = tmp_path / "plugins"
    plugins.mkdir()

    def publish(revision: int, path: str, key: str = "org.pem", *, rid: str = "bundle-rule") -> bytes:
        src = tmp_path / f"src{revision}-{key}"
        src.mkdir(exist_ok=True)
        (src / "org.yaml").write_text(RULE.format(rid=rid, path=path))
        return sign_bundle(build_bundle(src, revision), load_private_key(keys / key))

    def host(**kw):
        cfg = BundleConfig(url=server.url, public_key=pub, poll=0, cache_dir=str(tmp_path / "cache"), timeout=1.0)
        return PluginManager(policy_files=[str(local)], search_path=[str(plugins)], config_path=False,
                             entry_points=False, audit_log=AuditLog(str(tmp_path / "audit.jsonl")),
                             bundle=cfg, **kw)

    yield dict(tmp=tmp_path, server=server, publish=publish, host=host, pub=pub, other=other_pub, local=local)
    server.close()


def verdict(pm, path):
    return pm.enforcer.check("p", Request("fs.read", "p", path=path)).verdict.value


def reloads(tmp):
    return [r for r in read_records(str(tmp / "audit.jsonl")) if r.get("kind") == "policy_reload"]


def test_pull_verify_swap_etag_rollback_tamper_wrong_key(world):
    srv, publish = world["server"], world["publish"]
    srv.body = publish(1, "/srv/one")
    pm = world["host"]()
    pm.load_all()
    pm.bundle.stop()
    assert verdict(pm, "/srv/one/x") == "allow"         # nothing pulled yet: only the local policy
    assert pm.bundle.poll_once() == "activated"
    assert verdict(pm, "/srv/one/x") == "deny"
    assert pm.bundle.poll_once() == "unchanged"         # 304 on the ETag
    assert srv.seen[-1] and srv.seen[-1].startswith('"')

    srv.body = publish(2, "/srv/two")
    assert pm.bundle.poll_once() == "activated"
    assert verdict(pm, "/srv/two/x") == "deny" and verdict(pm, "/srv/one/x") == "allow"
    version = pm.policy_set.version

    refusals = []
    srv.body = publish(1, "/srv/one")                   # rollback: validly signed, older
    refusals.append(pm.bundle.poll_once())
    srv.body = publish(3, "/srv/three", key="rogue.pem")   # wrong key
    refusals.append(pm.bundle.poll_once())
    good = publish(4, "/srv/four")
    tampered = bytearray(good)
    tampered[len(tampered) // 2] ^= 0x01
    srv.body = bytes(tampered)
    refusals.append(pm.bundle.poll_once())
    srv.body = publish(5, "/srv/five")                  # control further below
    assert "rollback" in refusals[0]
    assert "does not trust" in refusals[1]
    assert refusals[2].startswith("failed:")
    assert pm.policy_set.version == version and verdict(pm, "/srv/two/x") == "deny"   # still revision 2
    assert pm.bundle.state["revision"] == 2 and pm.bundle.state["last_error"]
    assert pm.bundle.poll_once() == "activated" and verdict(pm, "/srv/five/x") == "deny"   # a good one still lands

    recs = reloads(world["tmp"])
    assert [r["ok"] for r in recs].count(True) == 3
    failed = [r["error"] for r in recs if not r["ok"]]
    assert any("rollback" in e for e in failed) and any("does not trust" in e for e in failed)
    assert len(failed) == 3
    pm.shutdown()


@pytest.mark.parametrize("mode, why", [("truncate", "truncated"), ("slow", "longer than|timed out|within 1 s"),
                                       ("trickle", "did not finish within 1 s"),
                                       ("swap", "tampered|digest|not a readable|gzip|truncated|bad-signature|malformed"),
                                       ("down", "refused|connect")])
def test_outages_keep_the_running_policy(world, mode, why):
    import re
    srv, publish = world["server"], world["publish"]
    srv.body = publish(1, "/srv/one")
    pm = world["host"]()
    pm.load_all()
    pm.bundle.stop()
    assert pm.bundle.poll_once() == "activated"
    version = pm.policy_set.version
    srv.alt = publish(2, "/srv/alt")
    srv.body = publish(3, "/srv/three")
    srv.mode = mode
    if mode == "down":
        srv.close()
    t = time.monotonic()
    out = pm.bundle.poll_once()
    assert time.monotonic() - t < 6
    assert out.startswith("failed:") and re.search(why, out), out
    assert pm.policy_set.version == version and verdict(pm, "/srv/one/x") == "deny"
    assert verdict(pm, "/srv/three/x") == "allow"
    last = reloads(world["tmp"])[-1]
    assert last["ok"] is False and world["server"].url in last["error"]
    if mode != "down":     # control: the same server, behaving, delivers revision 3
        srv.mode = "ok"
        assert pm.bundle.poll_once() == "activated" and verdict(pm, "/srv/three/x") == "deny"
    pm.shutdown()


def test_offline_start_from_the_last_good_bundle_and_policy_show(world):
    srv, publish = world["server"], world["publish"]
    srv.body = publish(7, "/srv/seven")
    pm = world["host"]()
    pm.load_all()
    pm.bundle.stop()
    assert pm.bundle.poll_once() == "activated"
    pm.shutdown()
    srv.close()                                        # the server is gone
    pm2 = world["host"]()
    pm2.load_all()                                     # starts from cache/last-good.bundle
    assert verdict(pm2, "/srv/seven/x") == "deny"
    pm2.bundle.stop()
    assert pm2.bundle.poll_once().startswith("failed:")
    assert verdict(pm2, "/srv/seven/x") == "deny"
    pm2.shutdown()
    # a tampered cache is not trusted at start
    cache = world["tmp"] / "cache" / "last-good.bundle"
    cfg = world["tmp"] / "config.yaml"
    cfg.write_text(json.dumps({"bundle": {"url": srv.url, "public_key": world["pub"], "poll": 0,
                                          "cache_dir": str(world["tmp"] / "cache")}}))
    out = subprocess.run([sys.executable, "-m", "promptline", "policy", "show", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "revision 7" in out.stdout and "bundle-rule" in out.stdout and "cannot fetch" in out.stdout
    data = bytearray(cache.read_bytes())
    data[-30] ^= 0xFF
    cache.write_bytes(bytes(data))
    pm3 = world["host"]()
    pm3.load_all()
    assert verdict(pm3, "/srv/seven/x") == "allow"     # refused cache: only the local policy
    assert "refused" in pm3.bundle.state["last_error"]
    pm3.shutdown()


def test_a_bundle_whose_policy_does_not_compile_is_refused(world):
    srv, tmp = world["server"], world["tmp"]
    srv.body = world["publish"](1, "/srv/one")
    pm = world["host"]()
    pm.load_all()
    pm.bundle.stop()
    assert pm.bundle.poll_once() == "activated"
    src = tmp / "bad"
    src.mkdir()
    (src / "org.yaml").write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules:\n"
                                  "  - {id: x, effect: deny, actions: [fs.read], when: 'request.nope('}\n")
    srv.body = sign_bundle(build_bundle(src, 2), load_private_key(tmp / "keys" / "org.pem"))
    out = pm.bundle.poll_once()
    assert out.startswith("failed:") and "revision 2" in out
    assert verdict(pm, "/srv/one/x") == "deny" and pm.bundle.state["revision"] == 1
    pm.shutdown()


def test_cli_build_sign_verify(tmp_path):
    src = tmp_path / "org"
    (src / "keys").mkdir(parents=True)
    (src / "org.yaml").write_text(RULE.format(rid="r", path="/x"))
    env = dict(os.environ, PROMPTLINE_KEYS_DIR=str(tmp_path / "k"))
    run = lambda *a: subprocess.run([sys.executable, "-m", "promptline", *a], capture_output=True, text=True,
                                    timeout=60, env=env)
    assert run("keys", "generate", "--name", "org").returncode == 0
    pub = (tmp_path / "k" / "org.pem.pub").read_text().strip()
    (src / "keys" / "pub.pub").write_text(pub + "\n")
    b = tmp_path / "org.bundle"
    assert run("policy", "bundle", "build", str(src), "-o", str(b), "--revision", "3").returncode == 0
    unsigned = run("policy", "bundle", "verify", str(b), "--key", pub)
    assert unsigned.returncode == 1 and "not signed" in unsigned.stderr
    assert run("policy", "bundle", "sign", str(b), "--key", "org").returncode == 0
    ok = run("policy", "bundle", "verify", str(b), "--key", str(tmp_path / "k" / "org.pem.pub"))
    assert ok.returncode == 0 and "revision 3" in ok.stdout
    (src / "bad.yaml").write_text("rules: [\n")
    bad = run("policy", "bundle", "build", str(src), "-o", str(tmp_path / "bad.bundle"), "--revision", "4")
    assert bad.returncode == 1 and "bad.yaml" in bad.stderr and not (tmp_path / "bad.bundle").exists()
