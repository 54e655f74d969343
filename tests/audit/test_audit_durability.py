"""Several processes, SIGKILL, rotation and back-pressure, on real files."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import threading
import time

import pytest
from audit_helpers import PY, REPO, decision, lines, records, run_py

from promptline.enforcer.audit import AuditLog, AuditSettings, verify
from promptline.enforcer.audit._records import rotated_files

WRITER = """
import sys
from promptline.enforcer.audit import AuditLog, AuditSettings
path, tag, n, rotate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
log = AuditLog(path, AuditSettings(rotate_bytes=rotate or None))
for i in range(n):
    verdict = "deny" if i % 4 == 0 else "allow"
    log.decision(tag, "1.0", "fs.read", f"/{tag}/{i}", {"verdict": verdict, "rules": []})
log.close()
"""


def _spawn_writers(path, procs: int, n: int, rotate: int = 0):
    env = dict(os.environ, PYTHONPATH=REPO)
    ps = [subprocess.Popen([PY, "-c", WRITER, path, f"w{k}", str(n), str(rotate)], env=env,
                           stderr=subprocess.PIPE, text=True) for k in range(procs)]
    for p in ps:
        _out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err


def _all_records(path):
    from promptline.enforcer.audit import read_records

    return list(read_records(path))


@pytest.mark.slow
def test_concurrent_processes_keep_one_chain(log_path):
    _spawn_writers(log_path, procs=4, n=500)
    rep = verify(log_path)
    assert rep.ok, rep.problem
    assert rep.records == 2000
    recs = _all_records(log_path)
    assert [r["seq"] for r in recs] == list(range(1, 2001))
    per = collections.Counter(r["plugin"]["id"] for r in recs)
    assert per == {f"w{k}": 500 for k in range(4)}
    assert len({r["pid"] for r in recs}) == 4


@pytest.mark.slow
def test_concurrent_processes_with_rotation(log_path):
    _spawn_writers(log_path, procs=3, n=400, rotate=40_000)
    rep = verify(log_path)
    assert rep.ok, rep.problem
    recs = _all_records(log_path)
    rotations = sum(1 for r in recs if r["kind"] == "rotated")
    assert len(rep.files) > 3 and rotations == len(rep.files) - 1
    assert rep.records == 1200 + rotations
    assert [r["seq"] for r in recs] == list(range(1, 1201 + rotations))
    per = collections.Counter(r["plugin"]["id"] for r in recs if r["kind"] == "decision")
    assert per == {f"w{k}": 400 for k in range(3)}


def test_threads_share_one_log(log_path):
    log = AuditLog(log_path)

    def work(k):
        for i in range(200):
            log.decision(f"t{k}", "1", "fs.read", f"/{i}", decision("deny" if i % 2 else "allow"))

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    log.close()
    rep = verify(log_path)
    assert rep.ok and rep.records == 800


CRASH_CHILD = """
import sys
from promptline.enforcer.audit import AuditLog
log = AuditLog(sys.argv[1])
i = 0
while True:
    seq = log.decision("crashy", "1.0", "fs.write", f"/etc/x{i}", {"verdict": "deny",
                       "rules": [{"id": "r", "origin": "o.yaml:1"}]})
    log.decision("crashy", "1.0", "fs.read", f"/ok{i}", {"verdict": "allow"})
    sys.stdout.write(f"{seq}\\n")
    sys.stdout.flush()
    i += 1
"""


@pytest.mark.slow
@pytest.mark.parametrize("after", [5, 200, 800])
def test_sigkill_loses_no_deny(log_path, after):
    env = dict(os.environ, PYTHONPATH=REPO)
    child = subprocess.Popen([PY, "-c", CRASH_CHILD, log_path], stdout=subprocess.PIPE,
                             env=env, text=True)
    reported = []
    try:
        for line in child.stdout:
            reported.append(int(line))
            if len(reported) >= after:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    # anything the child reported after we stopped reading is also returned-and-durable
    reported += [int(x) for x in child.stdout.read().split()]
    rep = verify(log_path)  # accepted up to the last whole record (a torn tail is a note)
    assert rep.ok, rep.problem
    on_disk = {r["seq"]: r for r in _all_records(log_path)}
    missing = [s for s in reported if s not in on_disk or on_disk[s]["decision"] != "deny"]
    assert not missing
    # and the next writer continues the chain after the crash
    with AuditLog(log_path) as log:
        log.decision("p", "1", "fs.read", "/after-crash", decision())
    assert verify(log_path).ok


def test_rotation_continues_the_chain(log_path):
    settings = AuditSettings(rotate_bytes=5_000)
    with AuditLog(log_path, settings) as log:
        for i in range(100):
            log.decision("p", "1", "fs.read", f"/f{i}", decision("deny"))
    files = rotated_files(log_path)
    assert len(files) >= 5
    rep = verify(log_path)
    assert rep.ok and rep.records == 100 + len(files)
    # each later file starts with a `rotated` record chained to the last of the one before
    first = json.loads(lines(files[1][1])[0])
    assert first["seq"] == len(lines(files[0][1])) + 1
    assert (first["kind"], first["file"], first["removed_through"]) == ("rotated", 1, 0)
    active = json.loads(lines(log_path)[0])
    assert (active["kind"], active["file"]) == ("rotated", files[-1][0])


def test_retention_deletes_oldest_and_verify_notes_it(log_path):
    settings = AuditSettings(rotate_bytes=5_000, retention=2)
    with AuditLog(log_path, settings) as log:
        for i in range(100):
            log.decision("p", "1", "fs.read", f"/f{i}", decision("deny"))
    files = rotated_files(log_path)
    assert len(files) == 2 and files[0][0] > 1
    rep = verify(log_path)
    assert rep.ok and rep.first_seq > 1 and "rotated away" in rep.notes[0]
    decisions = [r for r in records(log_path) if r["kind"] == "decision"]
    assert decisions[-1]["resource"] == "/f99"


def test_a_removed_middle_file_is_reported_as_dropped(log_path):
    with AuditLog(log_path, AuditSettings(rotate_bytes=5_000)) as log:
        for i in range(60):
            log.decision("p", "1", "fs.read", f"/f{i}", decision("deny"))
    files = rotated_files(log_path)
    os.remove(files[1][1])
    p = verify(log_path).problem
    assert p.kind == "dropped" and "between files" in p.message


def _stall_writer(log: AuditLog, seconds: float) -> threading.Thread:
    """Hold the writer's in-process lock so the background thread cannot write."""
    def hold():
        with log._wlock:
            time.sleep(seconds)

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.05)
    return t


def test_backpressure_drop_is_counted(log_path):
    log = AuditLog(log_path, AuditSettings(queue_size=10, backpressure="drop"))
    log.start()
    stall = _stall_writer(log, 0.5)
    for i in range(200):
        log.decision("p", "1", "fs.read", f"/f{i}", decision("allow"))
    stall.join()
    log.close()
    dropped = log.counters()["dropped"]
    assert dropped > 0
    recs = records(log_path)
    assert sum(r["count"] for r in recs if r["kind"] == "dropped") == dropped
    assert sum(1 for r in recs if r["kind"] == "decision") == 200 - dropped
    assert verify(log_path).ok


def test_backpressure_drop_never_drops_denies(log_path):
    log = AuditLog(log_path, AuditSettings(queue_size=1, backpressure="drop"))
    for i in range(50):
        log.decision("p", "1", "fs.read", f"/a{i}", decision("allow"))
        log.decision("p", "1", "fs.read", f"/d{i}", decision("deny"))
    log.close()
    denies = [r for r in records(log_path) if r.get("decision") == "deny"]
    assert len(denies) == 50


def test_backpressure_block_waits_and_loses_nothing(log_path):
    log = AuditLog(log_path, AuditSettings(queue_size=5, backpressure="block"))
    log.start()
    stall = _stall_writer(log, 0.3)
    t0 = time.monotonic()
    for i in range(100):
        log.decision("p", "1", "fs.read", f"/f{i}", decision("allow"))
    waited = time.monotonic() - t0
    stall.join()
    log.close()
    assert waited >= 0.2
    assert log.counters()["dropped"] == 0
    assert verify(log_path).records == 100


def test_child_process_writes_into_host_log(log_path):
    # a sandboxed child appends to the host's log between host records
    with AuditLog(log_path) as log:
        log.decision("host", "1", "plugin.load", "p", decision("deny"))
        res = run_py(f"""
from promptline.enforcer.audit import AuditLog
with AuditLog({log_path!r}) as log:
    log.decision("child", "1", "fs.read", "/x", {{"verdict": "deny"}})
""")
        assert res.returncode == 0, res.stderr
        log.decision("host", "1", "plugin.load", "q", decision("deny"))
    recs = records(log_path)
    assert [r["plugin"]["id"] for r in recs] == ["host", "child", "host"]
    assert verify(log_path).ok


def test_sidecar_lock_interoperates_with_filelock(log_path):
    import filelock

    held = filelock.FileLock(log_path + ".lock")
    held.acquire()
    log = AuditLog(log_path)
    done = threading.Event()
    t = threading.Thread(target=lambda: (log.decision("p", "1", "fs.read", "/a", decision()),
                                         done.set()))
    t.start()
    assert not done.wait(0.3)  # the writer waits for the FileLock holder
    held.release()
    assert done.wait(5)
    t.join()
    log.close()
    assert verify(log_path).records == 1


KILL_WRITER = """
import sys
from promptline.enforcer.audit import AuditLog, AuditSettings
path, tag = sys.argv[1], sys.argv[2]
log = AuditLog(path, AuditSettings(rotate_bytes=20_000))
i = 0
while True:
    seq = log.decision(tag, "1.0", "fs.write", f"/{tag}/{i}", {"verdict": "deny",
                       "rules": [{"id": "r", "effect": "deny", "origin": "o.yaml:1"}]})
    log.decision(tag, "1.0", "fs.read", f"/{tag}/ok{i}", {"verdict": "allow"})
    sys.stdout.write(f"{seq}\\n")
    sys.stdout.flush()
    i += 1
"""


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(4))
def test_sigkill_of_concurrent_writers_during_rotation_loses_no_deny(log_path, trial):
    """Three processes append to one rotating log; each is SIGKILLed at its own moment.
    Every deny a writer got back is in the chain, the log verifies up to the last whole
    record, and the next writer repairs and continues it."""
    import random
    import selectors

    rnd = random.Random(trial)
    env = dict(os.environ, PYTHONPATH=REPO)
    procs = {f"k{j}": subprocess.Popen([PY, "-c", KILL_WRITER, log_path, f"k{j}"],
                                       stdout=subprocess.PIPE, env=env) for j in range(3)}
    stop_at = {tag: rnd.randrange(50, 600) for tag in procs}
    returned: dict[str, list[int]] = {tag: [] for tag in procs}
    sel = selectors.DefaultSelector()
    for tag, p in procs.items():
        sel.register(p.stdout, selectors.EVENT_READ, tag)
    bufs = {tag: b"" for tag in procs}
    deadline = time.monotonic() + 60
    try:
        while sel.get_map() and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                tag = key.data
                chunk = os.read(key.fileobj.fileno(), 65536)
                bufs[tag] += chunk
                *whole, bufs[tag] = bufs[tag].split(b"\n")
                returned[tag] += [int(x) for x in whole]
                if len(returned[tag]) >= stop_at[tag] or not chunk:
                    os.kill(procs[tag].pid, signal.SIGKILL)
                    procs[tag].wait()
                    rest = procs[tag].stdout.read()  # returned before the kill, unread yet
                    returned[tag] += [int(x) for x in (bufs[tag] + rest).split()]
                    sel.unregister(key.fileobj)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    rep = verify(log_path)
    assert rep.ok, rep.problem
    on_disk = {r["seq"]: r for r in _all_records(log_path)}
    for tag, seqs in returned.items():
        assert len(seqs) >= stop_at[tag]
        lost = [s for s in seqs if s not in on_disk or on_disk[s]["decision"] != "deny"
                or on_disk[s]["plugin"]["id"] != tag]
        assert not lost, (tag, lost[:5])
    assert len(rep.files) > 2  # the writers rotated while they were killed
    with AuditLog(log_path, AuditSettings(rotate_bytes=20_000)) as log:
        log.decision("after", "1", "fs.read", "/after-crash", decision())
    rep = verify(log_path)
    assert rep.ok and rep.torn_tail is None, rep
