"""verify: every kind of tampering, crash damage and foreign input is named, never a traceback."""

from __future__ import annotations

import json

import pytest
from audit_helpers import decision, lines, set_lines, write_log
from click.testing import CliRunner

from promptline.cli.audit_cmd import audit_group
from promptline.enforcer.audit import AuditError, AuditLog, canonical, line_hash, verify


def _edit(raw: bytes, **changes) -> bytes:
    rec = json.loads(raw)
    rec.update(changes)
    return canonical(rec).encode() + b"\n"


def _problem(path):
    rep = verify(path)
    assert not rep.ok
    return rep.problem


def test_intact_log_verifies(log_path):
    write_log(log_path, 20)
    rep = verify(log_path)
    assert rep.ok and rep.records == 20 and (rep.first_seq, rep.last_seq) == (1, 20)


def test_empty_log_is_whole(log_path):
    open(log_path, "wb").close()
    assert verify(log_path).ok


@pytest.mark.parametrize("field,value", [("decision", "ask"), ("resource", "/innocent"),
                                         ("time", "2001-01-01T00:00:00.000000Z")])
def test_edited_record(log_path, field, value):
    write_log(log_path, 10)
    ls = lines(log_path)
    ls[4] = _edit(ls[4], **{field: value})
    set_lines(log_path, ls)
    p = _problem(log_path)
    assert (p.kind, p.line, p.seq) == ("edited", 5, 5)


def test_reformatted_record_is_an_edit(log_path):
    write_log(log_path, 5)
    ls = lines(log_path)
    ls[2] = json.dumps(json.loads(ls[2]), indent=None).encode() + b"\n"  # spaces added
    set_lines(log_path, ls)
    p = _problem(log_path)
    assert (p.kind, p.line) == ("edited", 3)


def test_edited_seq(log_path):
    write_log(log_path, 6)
    ls = lines(log_path)
    ls[3] = _edit(ls[3], seq=40)
    set_lines(log_path, ls)
    p = _problem(log_path)
    assert (p.kind, p.line) == ("edited", 4)


@pytest.mark.parametrize("drop", [[3], [3, 4, 5], [0]])
def test_dropped_records(log_path, drop):
    write_log(log_path, 10)
    ls = [x for i, x in enumerate(lines(log_path)) if i not in drop]
    set_lines(log_path, ls)
    rep = verify(log_path)
    p = rep.problem
    if drop == [0]:
        # no rotation happened, so nothing explains a chain starting at seq 2
        assert (p.kind, p.seq, p.line) == ("dropped", 2, 1), p
        assert "records before it were deleted" in p.message
        return
    assert p.kind == "dropped" and p.seq == drop[-1] + 2
    assert f"{len(drop)} record(s) missing" in p.message


def test_reordered_records(log_path):
    write_log(log_path, 10)
    ls = lines(log_path)
    ls[4], ls[5] = ls[5], ls[4]
    set_lines(log_path, ls)
    p = _problem(log_path)
    assert (p.kind, p.line, p.seq) == ("reordered", 5, 6)
    assert "before seq 5" in p.message


def test_reordered_far(log_path):
    write_log(log_path, 10)
    ls = lines(log_path)
    moved = ls.pop(2)
    ls.append(moved)
    set_lines(log_path, ls)
    assert _problem(log_path).kind == "reordered"


def test_inserted_forged_record_with_correct_hash(log_path):
    write_log(log_path, 6)
    ls = lines(log_path)
    fake = json.loads(ls[3])  # seq 4
    fake.update(resource="/forged", prev=line_hash(ls[2].rstrip(b"\n")))
    ls.insert(3, canonical(fake).encode() + b"\n")
    set_lines(log_path, ls)
    p = _problem(log_path)
    assert p.kind == "inserted" and p.line == 4


def test_inserted_record_with_bad_hash(log_path):
    write_log(log_path, 6)
    ls = lines(log_path)
    ls.insert(3, _edit(ls[3], resource="/forged", prev="ab" * 32))
    set_lines(log_path, ls)
    p = _problem(log_path)
    assert (p.kind, p.line) == ("inserted", 4)


def test_duplicated_record(log_path):
    write_log(log_path, 6)
    ls = lines(log_path)
    ls.insert(3, ls[2])
    set_lines(log_path, ls)
    assert _problem(log_path).kind == "inserted"


def test_torn_tail(log_path):
    write_log(log_path, 6)
    data = open(log_path, "rb").read()
    open(log_path, "wb").write(data[:-30])
    rep = verify(log_path)  # accepted up to the last whole record, and said
    assert rep.ok and rep.last_seq == 5 and rep.torn_tail == f"{log_path}:6"
    assert "torn-tail" in rep.notes[0] and "records up to seq 5 are whole" in rep.notes[0]


def test_torn_tail_is_recovered_by_the_next_writer(log_path):
    write_log(log_path, 6)
    data = open(log_path, "rb").read()
    open(log_path, "wb").write(data[:-30])
    with AuditLog(log_path) as log:
        assert log.decision("p", "1", "fs.read", "/after", decision()) == 7
    rep = verify(log_path)
    assert rep.ok, rep.problem
    assert any("torn" in n for n in rep.notes)
    assert json.loads(lines(log_path)[6])["kind"] == "recovered"


def test_edited_torn_fragment_is_not_accepted(log_path):
    write_log(log_path, 6)
    data = open(log_path, "rb").read()
    open(log_path, "wb").write(data[:-30])
    with AuditLog(log_path) as log:
        log.decision("p", "1", "fs.read", "/after", decision())
    ls = lines(log_path)
    ls[5] = b"[" + ls[5][1:]
    set_lines(log_path, ls)
    assert _problem(log_path).kind == "corrupt"


def test_missing_final_newline_of_a_whole_record_is_accepted(log_path):
    write_log(log_path, 3)
    data = open(log_path, "rb").read()
    open(log_path, "wb").write(data[:-1])
    rep = verify(log_path)
    assert rep.ok and "no final newline" in rep.notes[0]
    with AuditLog(log_path) as log:
        log.decision("p", "1", "fs.read", "/after", decision())
    rep = verify(log_path)
    assert rep.ok and rep.records == 4


@pytest.mark.parametrize("content,kind", [
    (b"hello world\n", "foreign"),
    (b'{"some": "json"}\n', "foreign"),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary\xff\xfe\n", "foreign"),
    (b'[1, 2, 3]\n', "foreign"),
])
def test_foreign_file(log_path, content, kind):
    open(log_path, "wb").write(content)
    p = _problem(log_path)
    assert p.kind == kind and "not a PromptLine audit log" in p.message


def test_corrupt_line_in_the_middle(log_path):
    write_log(log_path, 5)
    ls = lines(log_path)
    ls[2] = b"\x00\x00\x00garbage\n"
    set_lines(log_path, ls)
    p = _problem(log_path)
    assert (p.kind, p.line) == ("corrupt", 3)


def test_newer_schema_is_explained(log_path):
    write_log(log_path, 1)
    (raw,) = lines(log_path)
    set_lines(log_path, [_edit(raw, v=2)])
    assert "upgrade promptline" in _problem(log_path).message


def test_anchor_catches_an_edit_of_the_last_record(log_path):
    write_log(log_path, 5)
    head = verify(log_path)
    ls = lines(log_path)
    ls[-1] = _edit(ls[-1], resource="/nothing-to-see")
    set_lines(log_path, ls)
    assert verify(log_path).ok  # nothing after it to notice...
    p = verify(log_path, anchor=(head.last_seq, head.head_hash)).problem
    assert p.kind == "anchor" and "edited" in p.message  # ...but the anchor does


def test_anchor_catches_truncation(log_path):
    write_log(log_path, 5)
    head = verify(log_path)
    set_lines(log_path, lines(log_path)[:3])
    p = verify(log_path, anchor=(head.last_seq, head.head_hash)).problem
    assert p.kind == "anchor" and "removed from the end" in p.message


def test_missing_log_raises_audit_error(tmp_path):
    with pytest.raises(AuditError, match="no audit log"):
        verify(tmp_path / "nope.jsonl")


# -- the CLI says the same, with stable exit codes and no traceback -------------------------

def _cli(*args):
    return CliRunner().invoke(audit_group, list(args))


def test_cli_verify_ok(log_path):
    write_log(log_path, 4)
    r = _cli("verify", "--log", log_path)
    assert r.exit_code == 0 and "ok: 4 records" in r.output and "head: 4:" in r.output


@pytest.mark.parametrize("damage,kind", [
    (lambda ls: ls.__setitem__(1, _edit(ls[1], resource="/x")), "edited"),
    (lambda ls: ls.__delitem__(1), "dropped"),
    (lambda ls: ls.insert(1, ls.pop(2)), "reordered"),
    (lambda ls: ls.insert(1, ls[1]), "inserted"),
    (lambda ls: ls.__setitem__(0, b"<html>\n"), "foreign"),
    (lambda ls: ls.__setitem__(2, b"\xff\xfe\n"), "corrupt"),
], ids=["edited", "dropped", "reordered", "inserted", "foreign", "corrupt"])
def test_cli_verify_names_the_break(log_path, damage, kind):
    write_log(log_path, 6)
    ls = lines(log_path)
    damage(ls)
    set_lines(log_path, ls)
    r = _cli("verify", "--log", log_path)
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert f" {kind}: " in r.output and f"{log_path}:" in r.output
    assert "Traceback" not in r.output
    rj = _cli("verify", "--log", log_path, "--json")
    assert rj.exit_code == 1 and json.loads(rj.output)["problem"]["kind"] == kind


def test_cli_verify_accepts_a_torn_tail_up_to_the_last_whole_record(log_path):
    write_log(log_path, 6)
    ls = lines(log_path)
    ls[-1] = ls[-1][:-20]
    set_lines(log_path, ls)
    r = _cli("verify", "--log", log_path)
    assert r.exit_code == 0, r.output
    assert "torn-tail" in r.output and "ok: 5 records" in r.output


def test_cli_verify_missing_log_exit_2(tmp_path):
    r = _cli("verify", "--log", str(tmp_path / "none.jsonl"))
    assert r.exit_code == 2 and "error: no audit log" in r.output


def test_cli_verify_bad_anchor(log_path):
    write_log(log_path, 2)
    r = _cli("verify", "--log", log_path, "--anchor", "nonsense")
    assert r.exit_code == 2 and "SEQ:HASH" in r.output


def test_cli_verify_directory_is_a_clear_error(tmp_path):
    d = tmp_path / "dir.jsonl"
    d.mkdir()
    r = _cli("verify", "--log", str(d))
    assert r.exit_code == 2 and "error: cannot read" in r.output
