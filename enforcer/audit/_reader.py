"""Reading the audit log: records, the chain check, filters and statistics.

``verify`` walks every file of a log (rotated files oldest first, then the active file)
in one pass and stops at the first break, which it classifies:

    edited     a record's content, seq or form changed after it was written
    dropped    records missing (seq gap, and the next record does not chain)
    reordered  a record appears before one with a lower seq
    inserted   a record that is not part of the chain (duplicate seq / foreign parent)
    torn-tail  (a note, not a break) the last line is incomplete: a writer died mid-write;
               every record before it is whole, and the next writer repairs it
    corrupt    a line that is not a valid audit record
    foreign    a file that is not a PromptLine audit log at all
    anchor     the log does not contain the record an external anchor names

Limits, said plainly: a chain protects each record through its successor, so an edit of
the very last record, or the removal of records from the end, needs an anchor kept
elsewhere (``verify --anchor SEQ:HASH``; verify prints the head to keep, and the syslog
sink ships each record's hash off the machine). Retention removes the oldest files, so a
chain may start above seq 1, but only a real rotation explains that: the oldest kept file
must start with the ``rotated`` record the writer put there, and retention must have
removed every file before it (its ``removed_through``). A log whose first records were
deleted by hand is reported as ``dropped``.
"""

from __future__ import annotations

import collections
import datetime as _dt
import fnmatch
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._records import GENESIS, AuditError, check_record, line_hash, rotated_files

MAX_LINE_BYTES = 16 * 1024 * 1024  # no record is longer; a longer line is skipped unread
_READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One line of a log file: the record, or why it is not one."""

    file: str
    line: int
    raw: bytes
    record: dict | None
    error: str | None
    newline: bool

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Problem:
    """The first break in a log."""

    kind: str
    file: str
    line: int
    seq: int | None
    message: str

    def __str__(self) -> str:
        seq = f" seq {self.seq}:" if self.seq is not None else ""
        return f"{self.file}:{self.line}:{seq} {self.kind}: {self.message}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "file": self.file, "line": self.line, "seq": self.seq,
                "message": self.message}


@dataclass(slots=True)
class VerifyReport:
    """What ``verify`` found: ``ok`` with the head to anchor, or the first ``problem``."""

    files: list[str]
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    head_hash: str | None = None
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)
    torn_tail: str | None = None  # file:line of an incomplete last line (a crashed writer)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict:
        return {"ok": self.ok, "files": self.files, "records": self.records,
                "first_seq": self.first_seq, "last_seq": self.last_seq,
                "head_hash": self.head_hash,
                "problem": self.problem.to_dict() if self.problem else None,
                "torn_tail": self.torn_tail, "notes": self.notes}


# -- reading --------------------------------------------------------------------------------

def log_files(path: str | os.PathLike) -> list[str]:
    """Every file of the log at ``path``, oldest first (rotated files, then the active one)."""
    path = os.path.abspath(os.fspath(path))
    files = [p for _n, p in rotated_files(path)]
    if os.path.exists(path):
        files.append(path)
    return files


def _entry(file: str, lineno: int, raw: bytes, newline: bool | None = None,
           escapes: bool = True) -> LogEntry:
    if newline is None:
        newline = raw.endswith(b"\n")
        if newline:
            raw = raw[:-1]
    try:
        rec = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return LogEntry(file, lineno, raw, None, "not UTF-8 text", newline)
    except ValueError:
        return LogEntry(file, lineno, raw, None, "not JSON", newline)
    except RecursionError:
        return LogEntry(file, lineno, raw, None, "nested too deeply for a record", newline)
    why = check_record(rec)
    if why is None and escapes and b"\\u" in raw and _has_surrogate(rec):
        why = "a lone surrogate (\\ud800-\\udfff) that no writer produces"
    if why is not None:
        return LogEntry(file, lineno, raw, None, why, newline)
    return LogEntry(file, lineno, raw, rec, None, newline)


def _has_surrogate(value: object) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) is str:
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif type(v) is dict:
            stack.extend(v.keys())
            stack.extend(v.values())
        elif type(v) is list:
            stack.extend(v)
    return False


_PSEUDO_FS = ("/proc/", "/sys/", "/dev/")


def open_log_file(file: str):
    """``file`` opened for binary reading; AuditError (naming the file and the fix) unless it
    is a regular file on a real file system (never a device, FIFO or ``/proc`` file, whose
    reads never end or fail)."""
    try:
        real = os.path.realpath(file)
        # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise AuditError(f"cannot read `{file}`: {why}: check --log or "
                         f"$PROMPTLINE_AUDIT_LOG") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or real.startswith(_PSEUDO_FS):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise AuditError(f"cannot read `{file}`: it is a directory: pass the log file "
                             f"with --log")
        raise AuditError(f"`{file}` is not an audit log (not a regular file): pass the log "
                         f"file with --log")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def parse_line(raw: bytes) -> dict | None:
    """The valid record on one line (with or without its newline), or None."""
    if len(raw) > MAX_LINE_BYTES:
        return None
    return _entry("", 0, raw).record


def read_log(path: str | os.PathLike) -> Iterator[LogEntry]:
    """Every line of every file of the log, parsed; raises AuditError if there is no log.

    Files are read in chunks; a line longer than any record (``MAX_LINE_BYTES``) is one
    invalid entry, and the rest of it is skipped without holding it in memory."""
    files = log_files(path)
    if not files:
        raise AuditError(f"no audit log at `{os.fspath(path)}`: check --log or "
                         f"$PROMPTLINE_AUDIT_LOG")
    for file in files:
        with open_log_file(file) as f:
            lineno = 0
            buf = b""
            skipping = False
            while True:
                try:
                    chunk = f.read(_READ_CHUNK)
                except OSError as exc:
                    raise AuditError(f"cannot read `{file}`: {exc.strerror or exc}") from exc
                if not chunk:
                    break
                if skipping:
                    k = chunk.find(b"\n")
                    if k < 0:
                        continue
                    chunk, skipping = chunk[k + 1:], False
                buf += chunk
                if b"\n" in chunk:
                    escapes = b"\\u" in buf   # one scan per chunk: most hold no \u escape
                    *whole, buf = buf.split(b"\n")
                    for raw in whole:
                        lineno += 1
                        yield _entry(file, lineno, raw, True, escapes)
                if len(buf) > MAX_LINE_BYTES:
                    lineno += 1
                    yield LogEntry(file, lineno, buf[:64], None, "a line longer than any "
                                   "record", True)
                    buf, skipping = b"", True
            if buf:
                yield _entry(file, lineno + 1, buf, False)


def read_records(path: str | os.PathLike) -> Iterator[dict]:
    """The valid records of the log, in file order (invalid lines are skipped)."""
    for e in read_log(path):
        if e.record is not None:
            yield e.record


# -- verify ---------------------------------------------------------------------------------

def _with_next(it: Iterator[LogEntry]) -> Iterator[tuple[LogEntry, LogEntry | None]]:
    cur = next(it, None)
    while cur is not None:
        nxt = next(it, None)
        yield cur, nxt
        cur = nxt


def _chain_one(first: LogEntry, rest: Iterator[LogEntry]) -> Iterator[LogEntry]:
    yield first
    yield from rest


def verify(path: str | os.PathLike, anchor: tuple[int, str] | None = None) -> VerifyReport:
    """Check the hash chain of the whole log; stop at the first break.

    ``anchor`` is ``(seq, hash)`` of a record known from elsewhere (an earlier verify's
    head, a shipped copy): the log must still hold that exact record.
    """
    files = log_files(path)
    if not files:
        raise AuditError(f"no audit log at `{os.fspath(path)}`: check --log or "
                         f"$PROMPTLINE_AUDIT_LOG")
    report = VerifyReport(files=files)
    entries = read_log(path)
    pairs = _with_next(entries)
    prev1: Any = None  # last accepted record (a LogEntry once the chain has started)
    prev2: Any = None  # the one before it
    h1 = h2 = None
    exp_seq: int | None = None
    anchor_seen = False
    numbers = {p: n for n, p in rotated_files(os.path.abspath(os.fspath(path)))}
    late: Any = None  # the first record (LogEntry), when the chain starts above seq 1
    late_by: Any = None  # the `rotated` record that explains it
    removed_through = 0  # highest file number retention removed (from `rotated` records)

    def fail(kind: str, e: LogEntry, msg: str, seq: int | None = None) -> VerifyReport:
        if seq is None and e.record is not None:
            seq = e.record["seq"]
        report.problem = Problem(kind, e.file, e.line, seq, msg)
        return report

    def find_later(seq: int, nxt: LogEntry | None) -> LogEntry | None:
        rest = entries if nxt is None else _chain_one(nxt, entries)
        for later in rest:
            if later.record is not None and later.record["seq"] == seq:
                return later
        return None

    nxt: Any
    for e, nxt in pairs:
        rec = e.record
        if rec is None:
            if nxt is None and not e.newline:
                whole = f"records up to seq {prev1.record['seq']} are whole" if prev1 else \
                    "no whole record before it"
                report.torn_tail = e.location
                report.notes.append(f"{e.location}: torn-tail: the last line is incomplete "
                                    f"({len(e.raw)} bytes), a writer died mid-write; {whole} "
                                    f"(the next writer closes it with a `recovered` record)")
                continue
            nrec = nxt.record if nxt is not None else None
            if (nrec is not None and nrec["kind"] == "recovered"
                    and nrec.get("torn_bytes") == len(e.raw)
                    and nrec.get("torn_sha256") == line_hash(e.raw)):
                report.notes.append(f"{e.location}: a record torn by a crashed writer, "
                                    f"recovered at seq {nrec['seq']}")
                continue
            if e.line == 1:
                return fail("foreign", e, f"not a PromptLine audit log: line 1 is not an "
                            f"audit record ({e.error})")
            return fail("corrupt", e, f"not an audit record ({e.error})")
        seq = rec["seq"]
        # The hash covers the line as written (the writer writes canonical JSON), so any
        # change to a line, even re-spacing, breaks the `prev` of the next record.
        h = line_hash(e.raw)
        if rec["kind"] == "rotated" and type(rec.get("removed_through")) is int:
            removed_through = max(removed_through, rec["removed_through"])
        if exp_seq is None:
            if seq != 1 or rec["prev"] != GENESIS:
                late = e
                late_by = e if rec["kind"] == "rotated" else None
            report.first_seq = seq
        elif seq == exp_seq and rec["prev"] == h1:
            if late is not None and late_by is None:
                # a torn first line and its `recovered` record may come before `rotated`
                if (rec["kind"] == "rotated" and prev1 is late
                        and late.record["kind"] == "recovered" and e.file == late.file):
                    late_by = e
                else:
                    report.problem = _late_start(report, late, None, numbers, removed_through)
                    return report
        elif seq == exp_seq:
            nrec = nxt.record if nxt is not None else None
            if nrec is not None and nrec["seq"] == seq and nrec["prev"] == h1:
                return fail("inserted", e, f"this record is not part of the chain (seq {seq} "
                            f"at {nxt.location} follows seq {prev1.record['seq']})")
            return fail("edited", prev1, f"the record was changed after it was written: its "
                        f"hash no longer matches the `prev` recorded by seq {seq} at "
                        f"{e.location}")
        elif seq > exp_seq:
            if rec["prev"] == h1:
                return fail("edited", e, f"the seq was changed (it chains to seq "
                            f"{exp_seq - 1} at {prev1.location}, so it should be {exp_seq})")
            later = find_later(exp_seq, nxt)
            if later is not None:
                return fail("reordered", e, f"seq {seq} comes before seq {exp_seq} "
                            f"({later.location})")
            n = seq - exp_seq
            where = (f"between {prev1.location} and {e.location}"
                     if prev1.file == e.file else
                     f"between files `{os.path.basename(prev1.file)}` and "
                     f"`{os.path.basename(e.file)}`")
            span = f"seq {exp_seq}" if n == 1 else f"seq {exp_seq}..{seq - 1}"
            return fail("dropped", e, f"{n} record(s) missing {where} ({span})")
        elif seq >= report.first_seq:
            # a seq already in the chain: someone added a record
            if (seq == prev1.record["seq"] and prev2 is not None and rec["prev"] == h2
                    and nxt is not None and nxt.record is not None
                    and nxt.record["prev"] == h):
                return fail("inserted", prev1, f"this record is not part of the chain (seq "
                            f"{seq} at {e.location} is the genuine one)")
            return fail("inserted", e, f"seq {seq} is already in the chain: this record was "
                        f"added (or copied) after seq {prev1.record['seq']}")
        else:
            return fail("reordered", e, f"seq {seq} comes after seq {prev1.record['seq']}")
        prev2, h2 = prev1, h1
        prev1, h1 = e, h
        exp_seq = seq + 1
        report.records += 1
        if anchor is not None and seq == anchor[0]:
            if h != anchor[1]:
                return fail("anchor", e, f"the record differs from the anchor (hash "
                            f"{h[:16]}…, anchor {anchor[1][:16]}…): it was edited")
            anchor_seen = True
        if nxt is None and not e.newline:
            report.notes.append(f"{e.location}: the last record has no final newline "
                                f"(a writer died just before it); the record is whole")
    if late is not None:
        problem = _late_start(report, late, late_by, numbers, removed_through)
        if problem is not None:
            report.problem = problem
            return report
    if prev1 is not None:
        report.last_seq = prev1.record["seq"]
        report.head_hash = h1
    if anchor is not None and not anchor_seen:
        if report.last_seq is None or anchor[0] > report.last_seq:
            report.problem = Problem(
                "anchor", files[-1], 0, anchor[0],
                f"the log ends at seq {report.last_seq} but the anchor names seq {anchor[0]}: "
                f"records were removed from the end")
        else:
            report.problem = Problem(
                "anchor", files[0], 0, anchor[0],
                f"seq {anchor[0]} is older than the oldest kept record "
                f"(seq {report.first_seq}): cannot check the anchor")
    return report


def _late_start(report: VerifyReport, first: LogEntry, rotated: LogEntry | None,
                numbers: dict[str, int], removed_through: int) -> Problem | None:
    """A chain starting above seq 1 is fine only when a rotation explains it: the oldest
    kept file starts with its ``rotated`` record, and retention removed every file before
    it. Otherwise the first records were deleted: the returned problem says so (None: it
    is explained, and a note says how)."""
    frec = first.record
    assert frec is not None
    seq = frec["seq"]
    if rotated is None:
        return Problem(
            "dropped", first.file, first.line, seq,
            f"the log starts at seq {seq}, and no rotation explains it (the first record is "
            f"neither seq 1 nor the `rotated` record that starts a rotated file): the "
            f"records before it were deleted")
    rrec = rotated.record
    assert rrec is not None
    prior = rrec.get("file")
    number = numbers.get(first.file)
    if type(prior) is not int or (number is not None and prior != number - 1):
        return Problem(
            "dropped", rotated.file, rotated.line, rrec["seq"],
            f"this file's `rotated` record follows file {prior}, but the file is "
            f"`{os.path.basename(first.file)}`: log files were renamed or removed")
    if prior > removed_through:
        gone = f"file {prior}" if prior == removed_through + 1 else \
            f"files {removed_through + 1}..{prior}"
        return Problem(
            "dropped", rotated.file, rotated.line, rrec["seq"],
            f"the log starts at seq {seq}, but rotated {gone} (seq 1.."
            f"{rrec['seq'] - 1}) missing and retention never removed it: the "
            f"records were deleted")
    report.notes.append(f"the chain starts at seq {seq} ({first.location}): older records "
                        f"were rotated away (retention removed files 1..{removed_through})")
    return None


# -- filters --------------------------------------------------------------------------------

_RELATIVE = re.compile(r"\A(\d+)\s*([smhdw])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(text: str, now: _dt.datetime | None = None) -> str:
    """A time bound as the records write it: ``30m``/``2h``/``7d`` ago, or ISO 8601
    (naive times are UTC)."""
    text = text.strip()
    now = now or _dt.datetime.now(_dt.UTC)
    m = _RELATIVE.match(text)
    if m:
        try:
            t = now - _dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
        except (OverflowError, ValueError):
            raise ValueError(f"`{text[:40]}` is further back than any date: use an age under "
                             f"a few thousand years, or an ISO 8601 time") from None
    else:
        try:
            t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"cannot read time `{text}`: use ISO 8601 "
                             f"(2025-01-31T12:00) or an age like 30m, 2h, 7d") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.UTC)
    return t.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def select(records: Iterable[dict], *, plugin: str | None = None, action: str | None = None,
           decision: str | None = None, rule: str | None = None, kind: str | None = None,
           since: str | None = None, until: str | None = None) -> Iterator[dict]:
    """Records matching every given filter. ``plugin`` and ``action`` are globs
    (``fs.*``); ``since``/``until`` are ``parse_when`` results."""
    for r in records:
        if kind is not None and r.get("kind") != kind:
            continue
        if plugin is not None:
            p = r.get("plugin")
            if type(p) is not dict or not fnmatch.fnmatchcase(str(p.get("id", "")), plugin):
                continue
        if action is not None and not fnmatch.fnmatchcase(str(r.get("action", "")), action):
            continue
        if decision is not None and r.get("decision") != decision:
            continue
        if rule is not None and rule not in _rule_ids(r):
            continue
        t = r.get("time", "")
        if since is not None and t < since:
            continue
        if until is not None and t > until:
            continue
        yield r


def _rule_ids(r: dict) -> list[str]:
    rules = r.get("rules")
    if type(rules) is list:
        return [x["id"] for x in rules if type(x) is dict and type(x.get("id")) is str]
    return []


# -- stats ----------------------------------------------------------------------------------

@dataclass(slots=True)
class Stats:
    """Counts over a set of records (see ``stats``)."""

    records: int
    by_kind: dict[str, int]
    matrix: list[tuple[str, str, str, int]]  # plugin, action, decision, count (most first)
    refused: list[tuple[str, str, int]]  # action, resource, denies (most first)
    rule_hits: list[tuple[str, int]]  # rule id, decisions it took part in (most first)
    dead_rules: list[str] | None  # known rules never seen; None when no rule ids were given
    dropped: int  # allow records lost to back-pressure (sum of `dropped` records)
    allows_logged: bool  # False when the log holds no allow decision at all

    def to_dict(self) -> dict:
        return {"records": self.records, "by_kind": self.by_kind,
                "matrix": [{"plugin": p, "action": a, "decision": d, "count": n}
                           for p, a, d, n in self.matrix],
                "refused": [{"action": a, "resource": r, "count": n}
                            for a, r, n in self.refused],
                "rule_hits": dict(self.rule_hits), "dead_rules": self.dead_rules,
                "dropped": self.dropped, "allows_logged": self.allows_logged}


def stats(records: Iterable[dict], known_rule_ids: Iterable[str] | None = None,
          top: int = 10) -> Stats:
    """Counts by plugin x action x decision, the ``top`` most refused resources, hits per
    rule, and the ``known_rule_ids`` that no record cites (dead rules)."""
    by_kind: collections.Counter = collections.Counter()
    matrix: collections.Counter = collections.Counter()
    refused: collections.Counter = collections.Counter()
    hits: collections.Counter = collections.Counter()
    dropped = 0
    allows = False
    n = 0
    for r in records:
        n += 1
        kind = r.get("kind", "")
        by_kind[kind] += 1
        if kind == "dropped":
            c = r.get("count")
            dropped += c if type(c) is int else 0
        if kind != "decision":
            continue
        p = r.get("plugin")
        pid = str(p.get("id", "")) if type(p) is dict else ""
        verdict = str(r.get("decision", ""))
        allows = allows or verdict == "allow"
        matrix[(pid, str(r.get("action", "")), verdict)] += 1
        if verdict == "deny":
            refused[(str(r.get("action", "")), str(r.get("resource", "")))] += 1
        for rid in set(_rule_ids(r)):
            hits[rid] += 1
    dead = None
    if known_rule_ids is not None:
        dead = sorted(set(known_rule_ids) - set(hits))
    return Stats(
        records=n, by_kind=dict(by_kind),
        matrix=[(p, a, d, c) for (p, a, d), c in
                sorted(matrix.items(), key=lambda kv: (-kv[1], kv[0]))],
        refused=[(a, res, c) for (a, res), c in refused.most_common(top)],
        rule_hits=sorted(hits.items(), key=lambda kv: (-kv[1], kv[0])),
        dead_rules=dead, dropped=dropped, allows_logged=allows)
