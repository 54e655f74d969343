"""Only a real rotation explains a chain that starts above seq 1 (deleted heads are found)."""

from __future__ import annotations

import os

from audit_helpers import decision, lines, set_lines
from hypothesis import given, settings
from hypothesis import strategies as st

from promptline.enforcer.audit import AuditLog, AuditSettings, rotated_files, verify


def _rotating_log(path, n=60, retention=None):
    with AuditLog(path, AuditSettings(rotate_bytes=4_000, retention=retention)) as log:
        for i in range(n):
            log.decision("p", "1", "fs.read", f"/f{i}", decision("deny"))
    return rotated_files(path)


def test_deleted_first_records_of_a_single_file_are_refused(log_path):
    with AuditLog(log_path) as log:
        for i in range(8):
            log.decision("p", "1", "fs.read", f"/f{i}", decision("deny"))
    set_lines(log_path, lines(log_path)[3:])
    p = verify(log_path).problem
    assert p is not None and (p.kind, p.seq, p.line) == ("dropped", 4, 1)
    # control: the untouched prefix-free log of another writer verifies
    other = log_path + ".other.jsonl"
    with AuditLog(other) as log:
        log.decision("p", "1", "fs.read", "/x", decision("deny"))
    assert verify(other).ok


def test_retention_explains_a_late_start(log_path):
    files = _rotating_log(log_path, retention=2)
    assert files[0][0] > 1
    rep = verify(log_path)
    assert rep.ok and rep.first_seq > 1 and "retention removed files" in rep.notes[0]


def test_retention_zero_keeps_only_the_active_file(log_path):
    assert _rotating_log(log_path, retention=0) == []
    rep = verify(log_path)
    assert rep.ok and rep.first_seq > 1, rep.problem


def test_deleting_the_head_of_the_oldest_kept_file_is_refused(log_path):
    files = _rotating_log(log_path, retention=2)
    oldest = files[0][1]
    set_lines(oldest, lines(oldest)[2:])
    assert verify(log_path).problem.kind == "dropped"


def test_deleting_the_oldest_file_without_retention_is_refused(log_path):
    files = _rotating_log(log_path)
    assert files[0][0] == 1
    os.remove(files[0][1])
    p = verify(log_path).problem
    assert p.kind == "dropped" and "retention never removed" in p.message


def test_deleting_one_file_more_than_retention_is_refused(log_path):
    files = _rotating_log(log_path, retention=3)
    os.remove(files[0][1])
    p = verify(log_path).problem
    assert p.kind == "dropped" and "retention never removed" in p.message


def test_renumbering_files_to_hide_a_gap_is_refused(log_path):
    files = _rotating_log(log_path)
    os.remove(files[0][1])
    os.rename(files[1][1], files[0][1])  # file 2 now poses as file 1
    assert verify(log_path).problem.kind == "dropped"


def test_a_writer_killed_between_rename_and_new_file_is_repaired(log_path):
    files = _rotating_log(log_path, n=30)
    set_lines(log_path, [])  # as if the new active file was created but nothing written
    with AuditLog(log_path, AuditSettings(rotate_bytes=None)) as log:
        log.decision("p", "1", "fs.read", "/after", decision("deny"))
    recs = [__import__("json").loads(x) for x in lines(log_path)]
    assert [r["kind"] for r in recs] == ["rotated", "decision"]
    assert recs[0]["file"] == files[-1][0]
    assert verify(log_path).ok


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(min_value=1, max_value=200), retention=st.sampled_from([None, 2]))
def test_no_deleted_head_verifies(tmp_path_factory, cut, retention):
    """Delete the first ``cut`` lines of the log (whole files first, as an attacker with
    write access would): verify never accepts it."""
    path = str(tmp_path_factory.mktemp("head") / "audit.jsonl")
    _rotating_log(path, n=50, retention=retention)
    files = [p for _n, p in rotated_files(path)] + [path]
    total = sum(len(lines(f)) for f in files)
    cut = min(cut, total - 1)
    for f in files:
        ls = lines(f)
        if cut >= len(ls) and f != path:
            os.remove(f)
            cut -= len(ls)
            continue
        set_lines(f, ls[cut:])
        break
    assert not verify(path).ok
