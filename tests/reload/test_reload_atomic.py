"""No decision from a half-written policy file: slow writers, writers in several opens, the
end marker, manual apply, and failures of any kind recorded. Real watchdog observers, real
file writes, real Enforcer decisions from concurrent threads."""

from __future__ import annotations

import os
import threading
import time

import pytest

from promptline.enforcer import Enforcer
from promptline.enforcer.audit import AuditLog, read_records
from promptline.loaders import END_MARKER, rebuild_and_swap, watch_policy
from promptline.policy import PolicyError, Request, load_policy_set

HEAD = """\
apiVersion: promptline/v1
kind: Policy
layer: org
settings:
  trust: [demo]
rules:
"""
ALLOW_DATA = """\
  - id: allow-data
    effect: allow
    actions: [fs.read]
    when: request.path.startsWith("/data/")
"""
DENY_SECRET = """\
  - id: deny-secret
    effect: deny
    actions: [fs.read]
    when: request.path == "/data/secret"
"""
DENY_NEW = """\
  - id: deny-new
    effect: deny
    actions: [fs.read]
    when: request.path == "/data/new"
"""

OLD = HEAD + DENY_SECRET + ALLOW_DATA
NEW = HEAD + ALLOW_DATA + DENY_SECRET + DENY_NEW
# pieces of NEW whose every prefix but the last is valid YAML that compiles
PIECES = [HEAD + ALLOW_DATA,                     # allows /data/secret: the dangerous prefix
          DENY_SECRET[:DENY_SECRET.index("    actions")],  # ends at `effect: deny`
          DENY_SECRET[DENY_SECRET.index("    actions"):],
          DENY_NEW]


def _prefixes(text_pieces):
    out, acc = [], ""
    for p in text_pieces[:-1]:
        acc += p
        out.append(acc)
    return out


class Decider:
    """Threads deciding requests against the live enforcer, keeping every policy version."""

    def __init__(self, enf: Enforcer, threads: int = 2) -> None:
        self.enf = enf
        self.versions: dict[str, int] = {}
        self.count = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        reqs = [Request("fs.read", "demo", path=p) for p in ("/data/secret", "/data/new", "/data/x")]
        while not self._stop.is_set():
            for r in reqs:
                v = self.enf.check("demo", r).policy_version
                with self._lock:
                    self.versions[v] = self.versions.get(v, 0) + 1
                    self.count += 1

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(10)


def _wait(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def pol(tmp_path):
    p = tmp_path / "policy.yaml"
    p.write_text(OLD)
    os.chmod(p, 0o644)
    return p


def test_the_prefixes_would_compile(tmp_path):
    """Control: every prefix the slow writers leave on disk is a policy the loader accepts,
    and the first one allows what the whole file refuses."""
    for i, text in enumerate(_prefixes(PIECES)):
        f = tmp_path / f"p{i}.yaml"
        f.write_text(text)
        os.chmod(f, 0o644)
        ps = load_policy_set([str(f)])
        assert ps.version
    f = tmp_path / "p0.yaml"
    assert Enforcer(load_policy_set([str(f)])).check(
        "demo", Request("fs.read", "demo", path="/data/secret")).allowed


def test_a_slow_writer_inside_one_open_is_never_applied_half_written(pol, tmp_path):
    enf = Enforcer(load_policy_set([str(pol)]))
    old = enf.policy_set.version
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    w = watch_policy(enf, [str(pol)], audit_log=log)
    try:
        with Decider(enf) as dec:
            time.sleep(0.1)
            with open(pol, "w") as fh:           # one open; pauses far past the debounce
                for piece in PIECES:
                    fh.write(piece)
                    fh.flush()
                    time.sleep(0.2)
            assert _wait(lambda: enf.policy_set.version != old), w.waiting
            new = enf.policy_set.version
            time.sleep(0.1)
        assert set(dec.versions) == {old, new}, dec.versions
        assert dec.count > 1000
        assert new == load_policy_set([str(pol)]).version  # the whole file's version
        assert not enf.check("demo", Request("fs.read", "demo", path="/data/new")).allowed
        log.flush()
        reloads = [r for r in read_records(log.path) if r["kind"] == "policy_reload"]
        assert [r["ok"] for r in reloads] == [True]  # one reload, of the whole file
    finally:
        w.stop()
        log.close()


def test_a_writer_in_several_opens_is_waited_for_by_the_end_marker(pol, tmp_path):
    pol.write_text(OLD + END_MARKER + "\n")
    enf = Enforcer(load_policy_set([str(pol)]))
    old = enf.policy_set.version
    w = watch_policy(enf, [str(pol)])
    pieces = PIECES[:-1] + [PIECES[-1] + END_MARKER + "\n"]
    try:
        with Decider(enf) as dec:
            time.sleep(0.1)
            for i, piece in enumerate(pieces):  # open, write, close; pause; append the next
                with open(pol, "w" if i == 0 else "a") as fh:
                    fh.write(piece)
                time.sleep(0.25)
                if i < len(pieces) - 1:
                    assert "end marker" in w.waiting or END_MARKER in w.waiting, w.waiting
            assert _wait(lambda: enf.policy_set.version != old)
            new = enf.policy_set.version
            time.sleep(0.1)
        assert set(dec.versions) == {old, new}, dec.versions
        assert not enf.check("demo", Request("fs.read", "demo", path="/data/new")).allowed
    finally:
        w.stop()


def test_a_marker_before_the_end_is_not_applied(pol):
    enf = Enforcer(load_policy_set([str(pol)]))
    old = enf.policy_set.version
    w = watch_policy(enf, [str(pol)])
    try:
        tmp = str(pol) + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(HEAD + ALLOW_DATA + END_MARKER + "\n" + DENY_SECRET)
        os.replace(tmp, pol)
        assert _wait(lambda: "before its end" in w.waiting)
        assert enf.policy_set.version == old
        with open(tmp, "w") as fh:               # control: the whole file applies
            fh.write(NEW + END_MARKER + "\n")
        os.replace(tmp, pol)
        assert _wait(lambda: enf.policy_set.version != old)
        assert not w.waiting
    finally:
        w.stop()


def test_manual_mode_applies_only_on_apply(pol):
    enf = Enforcer(load_policy_set([str(pol)]))
    old = enf.policy_set.version
    w = watch_policy(enf, [str(pol)], mode="manual")
    try:
        tmp = str(pol) + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(NEW)
        os.replace(tmp, pol)
        time.sleep(0.5)
        assert enf.policy_set.version == old
        w.apply()
        assert _wait(lambda: enf.policy_set.version != old)
        assert not enf.check("demo", Request("fs.read", "demo", path="/data/new")).allowed
    finally:
        w.stop()


@pytest.mark.parametrize("exc", [RecursionError("maximum recursion depth exceeded"),
                                 MemoryError(), ValueError("odd"), KeyError("k"),
                                 PolicyError("bad rule", file="p.yaml", line=3)])
def test_any_failure_is_recorded_and_keeps_the_old_policy(tmp_path, exc):
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    installed = []

    class Current:
        version = "v-old"

    def build():
        raise exc

    why = rebuild_and_swap(build, installed.append, audit_log=log, current=Current())
    log.close()
    assert why and not installed
    (rec,) = [r for r in read_records(log.path) if r["kind"] == "policy_reload"]
    assert rec["ok"] is False and rec["policy_version"] == "v-old" and rec["error"] == why
    if not isinstance(exc, PolicyError):
        assert type(exc).__name__ in why and "fix the file" in why


def test_a_recursion_error_through_the_watcher_sets_last_reload_error(pol, tmp_path, monkeypatch):
    import promptline.policy as policy_pkg

    enf = Enforcer(load_policy_set([str(pol)]))
    old = enf.policy_set.version
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    w = watch_policy(enf, [str(pol)], audit_log=log)
    real = policy_pkg.load_policy_set

    def exploding(*a, **kw):
        raise RecursionError("maximum recursion depth exceeded")

    try:
        monkeypatch.setattr(policy_pkg, "load_policy_set", exploding)
        pol.write_text(NEW)
        assert _wait(lambda: "RecursionError" in w.manager.last_reload_error)
        assert enf.policy_set.version == old
        monkeypatch.setattr(policy_pkg, "load_policy_set", real)
        pol.write_text(NEW + "\n")                 # control: the next save applies
        # the swap lands a moment before the reload's result is stored: wait for both
        assert _wait(lambda: enf.policy_set.version != old and w.manager.last_reload_error == "")
    finally:
        w.stop()
        log.close()
    oks = [r["ok"] for r in read_records(log.path) if r["kind"] == "policy_reload"]
    assert oks[0] is False and oks[-1] is True


def test_files_changing_during_the_build_are_never_swapped_in(tmp_path):
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    installed = []

    class New:
        version = "v-new"

    why = rebuild_and_swap(New, installed.append, audit_log=log, settled=lambda: False)
    log.close()
    assert why and not installed
    assert not os.path.exists(log.path)  # nothing recorded: nothing happened
    assert rebuild_and_swap(New, installed.append, settled=lambda: True) == "" and installed
