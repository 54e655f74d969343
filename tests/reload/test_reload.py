"""Hot reload with real watchdog observers and real files: policies, grants and plugins."""

import os
import random
import textwrap
import threading
import time

import pytest

from promptline.enforcer.audit import AuditLog, read_records
from promptline.loaders import ApprovalStore, PluginManager
from promptline.policy import Request

PLUGIN = '''
from promptline import Tool, ToolPlugin, ToolResult
VERSION = {version}

class Version(Tool):
    name = "version"
    description = "which code answers"
    def execute(self, args):
        return ToolResult.success(str(VERSION))

class Demo(ToolPlugin):
    def tools(self):
        return [Version()]
'''


def policy_text(i: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: promptline/v1
        kind: Policy
        layer: org
        settings:
          trust: [demo]
        rules:
          - id: deny-v{i}
            effect: deny
            actions: [fs.read]
            when: request.path == "/data/v{i}"
            message: "variant {i} is in force"
          - id: allow-data
            effect: allow
            actions: [fs.read]
            when: request.path.startsWith("/data/")
        """)


INVALID = [
    "apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules: [oops\n",
    "apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules:\n  - id: a\n    effect: deny\n    when: request.pth == \"x\"\n",
    "apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules:\n  - id: a\n    effect: deny\n    colour: red\n",
    "",
]


def write_atomic(path, text):
    tmp = f"{path}.tmp{random.randrange(1 << 30)}"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_plugin(root, version):
    d = root / "demo"
    if not d.exists():
        d.mkdir()
        (d / "plugin.yaml").write_text("id: demo\nversion: 1.0.0\nentry: {python: \"demo_mod:Demo\"}\nsandbox: none\n")
    write_atomic(d / "demo_mod.py", PLUGIN.format(version=version))


@pytest.fixture
def setup(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    write_plugin(plugins, 0)
    pol = tmp_path / "policy.yaml"
    write_atomic(pol, policy_text(0))
    os.chmod(pol, 0o644)
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    pm = PluginManager(policy_files=[str(pol)], search_path=[str(plugins)], config_path=False, entry_points=False,
                       audit_log=log, approvals=ApprovalStore(str(tmp_path / "approvals.yaml")), approve_all=True)
    yield pm, pol, plugins, tmp_path
    pm.shutdown()


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def denied(pm, i):
    return not pm.enforcer.check("demo", Request("fs.read", "demo", path=f"/data/v{i}")).allowed


def test_policy_reload_and_broken_file_keeps_the_old_policy(setup):
    pm, pol, plugins, tmp = setup
    pm.watch = True
    assert pm.load_all().loaded == ["demo"]
    assert denied(pm, 0) and not denied(pm, 1)
    write_atomic(pol, policy_text(1))
    assert wait_for(lambda: denied(pm, 1)), "the new policy takes effect"
    assert not denied(pm, 0)
    good_version = pm.policy_set.version
    write_atomic(pol, INVALID[1])
    assert wait_for(lambda: "request.pth" in pm.last_reload_error)
    assert pm.policy_set.version == good_version and denied(pm, 1), "a broken file keeps the old policy"
    assert f"{pol}:7:19:" in pm.last_reload_error
    with open(pol, "w") as fh:        # truncate then write, like some editors
        fh.write(policy_text(2))
    assert wait_for(lambda: denied(pm, 2)), "the next good save is picked up"
    pm.audit_log.flush()
    reloads = [r for r in read_records(str(tmp / "audit.jsonl")) if r.get("kind") == "policy_reload"]
    assert any(not r["ok"] and "pth" in r["error"] for r in reloads) and reloads[-1]["ok"]


def test_new_plugin_waits_for_approval_and_update_is_swapped(setup):
    pm, pol, plugins, tmp = setup
    pm.watch = True
    pm.load_all()
    assert pm.call_tool("demo.version", {}).content == "0"
    write_plugin(plugins, 1)
    assert wait_for(lambda: pm.call_tool("demo.version", {}).content == "1")
    pm.approve_all = False
    other = plugins / "intruder"
    other.mkdir()
    (other / "plugin.yaml").write_text("id: intruder\nversion: 1.0.0\nentry: {python: \"intr:Demo\"}\nsandbox: none\n")
    (other / "intr.py").write_text(PLUGIN.format(version=99))
    time.sleep(0.6)
    assert "intruder" not in pm.plugins, "a plugin that appears on its own is not activated"
    import shutil
    shutil.rmtree(plugins / "demo")
    assert wait_for(lambda: "demo" not in pm.plugins), "a removed plugin is unloaded"


def test_unsafe_policy_permissions_keep_the_last_good_policy(setup):
    pm, pol, plugins, tmp = setup
    pm.watch = True
    pm.load_all()
    os.chmod(pol, 0o666)
    write_atomic(pol, policy_text(3))
    os.chmod(pol, 0o666)
    assert wait_for(lambda: "writable by group or others" in pm.last_reload_error)
    assert denied(pm, 0) and not denied(pm, 3)


@pytest.mark.slow
def test_reload_under_load(setup):
    """Threads call tools and ask for decisions while the policy is rewritten 200 times and
    the plugin updated 20 times: no failed call, no decision from a broken or partial file."""
    pm, pol, plugins, tmp = setup
    pm.load_all()
    variants = 20
    versions = {}
    for i in range(variants):            # the version of every whole, valid policy
        write_atomic(pol, policy_text(i))
        versions[pm._build_policy(list(pm._candidates.values())).version] = i
    write_atomic(pol, policy_text(0))
    pm.reload_policy()
    from promptline.loaders._reload import Watcher
    pm.watcher = Watcher(pm)
    pm.watcher.start()

    stop = threading.Event()
    failures, bad = [], []
    counts = {"calls": 0, "decisions": 0}
    seen: set[str] = set()          # policy versions the deciders were answered under

    def caller():
        while not stop.is_set():
            r = pm.call_tool("demo.version", {})
            counts["calls"] += 1
            if not r.ok:
                failures.append(r.content)

    def decider():
        rnd = random.Random(threading.get_ident())
        while not stop.is_set():
            k = rnd.randrange(variants)
            d = pm.enforcer.check("demo", Request("fs.read", "demo", path=f"/data/v{k}"))
            counts["decisions"] += 1
            i = versions.get(d.policy_version)
            seen.add(d.policy_version)
            if i is None or d.allowed == (k == i):
                bad.append((k, d.policy_version, d.verdict))

    threads = [threading.Thread(target=caller) for _ in range(2)] + [threading.Thread(target=decider) for _ in range(2)]
    for t in threads:
        t.start()
    rnd = random.Random(1)
    try:
        for n in range(200):
            kind = n % 4
            i = rnd.randrange(variants)
            if kind == 0:
                write_atomic(pol, policy_text(i))                 # rename over
            elif kind == 1:
                write_atomic(pol, rnd.choice(INVALID))            # invalid
            elif kind == 2:                                       # partial write, then the rest
                text = policy_text(i)
                cut = text.index("variant") + 3                   # inside a quoted string: never valid
                with open(pol, "w") as fh:
                    fh.write(text[:cut])
                    fh.flush()
                    time.sleep(0.002)
                    fh.write(text[cut:])
            else:
                with open(pol, "w") as fh:                        # truncate, then write whole
                    fh.write(policy_text(i))
            if n % 10 == 5:
                write_plugin(plugins, n)                          # 20 plugin updates
            # short pauses, and every 25th a pause longer than the watcher's quiet window
            # even when it falls back to polling (a 1 s observer interval, e.g. once a long
            # test run has used up the inotify instances): the files settle, so reloads
            # happen while the callers run (a burst is applied once it has settled)
            time.sleep(1.6 if n % 25 == 24 else 0.01)
        write_atomic(pol, policy_text(7))
        assert wait_for(lambda: denied(pm, 7), timeout=10)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert counts["calls"] > 50 and counts["decisions"] > 500, counts
    assert not failures, failures[:3]
    assert not bad, bad[:3]
    # swaps really happened under load (by the policy watcher or a plugin update's rebuild)
    assert len(seen) > 5, (seen, pm.watcher.reloads)


def test_policy_show_reports_a_failed_reload(setup):
    import subprocess
    import sys
    pm, pol, plugins, tmp = setup
    pm.watch = True
    pm.load_all()
    write_atomic(pol, INVALID[0])
    assert wait_for(lambda: pm.last_reload_error)
    pm.audit_log.flush()
    out = subprocess.run([sys.executable, "-m", "promptline", "policy", "show", "--audit-log", str(tmp / "audit.jsonl"),
                          "--policy", str(tmp / "nonexistent.yaml")], capture_output=True, text=True, timeout=60)
    assert "last reload FAILED" in out.stderr and "policy.yaml:" in out.stderr
    assert out.returncode == 1 and "file not found" in out.stderr


def test_an_enforcer_without_a_manager_reloads_on_its_own(tmp_path):
    from promptline.enforcer import Enforcer
    from promptline.loaders import watch_policy
    from promptline.policy import load_policy_set
    pol = tmp_path / "policy.yaml"
    write_atomic(pol, policy_text(0))
    os.chmod(pol, 0o644)
    enf = Enforcer(load_policy_set([str(pol)]))
    w = watch_policy(enf, [str(pol)])
    try:
        check = lambda i: not enf.check("demo", Request("fs.read", "demo", path=f"/data/v{i}")).allowed  # noqa: E731
        assert check(0) and not check(4)
        write_atomic(pol, policy_text(4))
        assert wait_for(lambda: check(4))
        write_atomic(pol, INVALID[0])
        assert wait_for(lambda: bool(w.manager.last_reload_error)) and check(4)
    finally:
        w.stop()


def test_process_plugin_is_restarted_on_update(tmp_path):
    """An untrusted plugin runs in a child process; an update starts a new child and the
    old one is shut down once idle."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    d = plugins / "demo"
    d.mkdir()
    (d / "plugin.yaml").write_text("id: demo\nversion: 1.0.0\nentry: {python: \"demo_mod:Demo\"}\n")
    write_atomic(d / "demo_mod.py", PLUGIN.format(version=1))
    pol = tmp_path / "policy.yaml"
    write_atomic(pol, "apiVersion: promptline/v1\nkind: Policy\nlayer: org\n")
    os.chmod(pol, 0o644)
    pm = PluginManager(policy_files=[str(pol)], search_path=[str(plugins)], config_path=False, entry_points=False,
                       approvals=ApprovalStore(str(tmp_path / "approvals.yaml")), approve_all=True)
    with pm:
        assert pm.load_all().loaded == ["demo"]
        old = pm.plugins["demo"]
        assert old.sandbox == "process"
        assert pm.call_tool("demo.version", {}).content == "1"
        write_atomic(d / "demo_mod.py", PLUGIN.format(version=2))
        report = pm.reload_plugins()
        assert report.loaded == ["demo"], report
        assert pm.plugins["demo"] is not old
        assert pm.call_tool("demo.version", {}).content == "2"
        assert wait_for(lambda: not old.call_tool("version", {}).ok, timeout=10), "the old child is shut down"
