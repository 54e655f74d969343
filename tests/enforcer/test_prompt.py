"""Prompters and resolve_ask; the terminal prompter is driven through a real pseudo-terminal."""

from __future__ import annotations

import os
import select
import termios
import threading
import time
import tty

import pytest

from promptline.enforcer._grants import GrantStore
from promptline.enforcer._prompt import (
    Answer,
    CallbackPrompter,
    DenyPrompter,
    Prompter,
    TerminalPrompter,
    escape_for_terminal,
    resolve_ask,
)
from promptline.policy._decision import DecidedBy, Decision, Effect, RuleRef, Verdict
from promptline.policy._request import Request

ASK_RULE = RuleRef("ask-config", Effect.ASK, "org", "/etc/promptline/org.yaml:12",
                   "config files need your consent")
ASK = Decision(Verdict.ASK, DecidedBy.RULE, "v1", rules=(ASK_RULE,))
REQ = Request("fs.read", "notes", path="/home/me/.config/db.yaml")


# --------------------------------------------------------------------------- escaping

@pytest.mark.parametrize("raw, shown", [
    ("plain /path é", "plain /path é"),
    ("\x1b[2J", "\\x1b[2J"),
    ("a\nb\rc\td", "a\\nb\\rc\\td"),
    ("\x00\x7f\x9b", "\\x00\\x7f\\x9b"),
    ("back\\slash", "back\\\\slash"),
    ("evil\u202egnp.exe", "evil\\u202egnp.exe"),
    ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),
    ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),
    ("\u200b\u200c\u200d\u200e\u200f", "\\u200b\\u200c\\u200d\\u200e\\u200f"),
    ("\u061c\ufeff\u2060\u00ad", "\\u061c\\ufeff\\u2060\\xad"),
    ("\u2028\u2029\u00a0\u3000", "\\u2028\\u2029\\xa0\\u3000"),
    ("tag\U000e0041", "tag\\U000e0041"),
], ids=["plain", "csi", "newlines", "c0-c1", "backslash", "rlo", "embeddings", "isolates",
        "zero-width", "format", "separators-spaces", "tag-char"])
def test_escape_for_terminal(raw, shown):
    assert escape_for_terminal(raw) == shown


def test_escape_truncates_long_values():
    out = escape_for_terminal("x" * 1000, limit=10)
    assert out.startswith("x" * 10) and "+990 chars" in out


# --------------------------------------------------------------------------- terminal

@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    yield master, slave
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def _read_until(fd: int, marker: bytes, seen: bytearray, count: int = 1,
                timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while seen.count(marker) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"prompt never showed {marker!r}; got {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break


def _drain(fd: int, seen: bytearray) -> None:
    while select.select([fd], [], [], 0.05)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        seen += chunk


def ask_on_pty(master, slave, replies=(), *, request=REQ, decision=ASK, timeout=5.0):
    """Run a TerminalPrompter on the slave side; type each reply after each question."""
    result: dict = {}
    prompter = TerminalPrompter(slave, slave, timeout=timeout)
    t = threading.Thread(target=lambda: result.update(
        answer=prompter.ask("notes", request, decision)))
    t.start()
    seen = bytearray()
    count = 0
    for reply in replies:
        count += 1
        _read_until(master, b"then Enter: ", seen, count)
        os.write(master, reply)
    t.join(timeout + 5)
    assert not t.is_alive(), "prompter hung"
    _drain(master, seen)
    return result["answer"], bytes(seen)


@pytest.mark.parametrize("typed, answer", [
    (b"o\n", Answer.ONCE), (b"once\n", Answer.ONCE),
    (b"a\n", Answer.ALWAYS), (b"ALWAYS\n", Answer.ALWAYS),
    (b"d\n", Answer.DENY), (b"deny\n", Answer.DENY),
    (b"n\n", Answer.NEVER), (b"  Never  \n", Answer.NEVER),
    (b"\n", Answer.DENY),
], ids=["o", "once", "a", "always-upper", "d", "deny", "n", "never-padded", "empty-enter"])
def test_terminal_answers(pty_pair, typed, answer):
    got, out = ask_on_pty(*pty_pair, [typed])
    assert got is answer
    assert b"plugin `notes` asks to fs.read" in out
    assert b"/home/me/.config/db.yaml" in out
    assert b"ask-config (/etc/promptline/org.yaml:12)" in out
    assert b"config files need your consent" in out


def test_unrecognised_answer_asks_again(pty_pair):
    got, out = ask_on_pty(*pty_pair, [b"yes\n", b"o\n"])
    assert got is Answer.ONCE
    assert b"unrecognised answer `yes`" in out


def test_repeated_nonsense_is_deny(pty_pair):
    got, _ = ask_on_pty(*pty_pair, [b"y\n", b"yes\n", b"sure\n"])
    assert got is Answer.DENY


def test_letter_without_enter_is_not_an_answer(pty_pair):
    t0 = time.monotonic()
    got, _ = ask_on_pty(*pty_pair, [b"a"], timeout=0.5)
    assert got is Answer.DENY and time.monotonic() - t0 < 4


def test_eof_is_deny(pty_pair):
    got, _ = ask_on_pty(*pty_pair, [b"\x04"])  # Ctrl-D on an empty line
    assert got is Answer.DENY


def test_timeout_is_deny(pty_pair):
    t0 = time.monotonic()
    got, out = ask_on_pty(*pty_pair, [], timeout=0.3)
    assert got is Answer.DENY
    assert time.monotonic() - t0 < 4
    assert b"no answer" in out


def test_pending_input_is_flushed(pty_pair):
    master, slave = pty_pair
    os.write(master, b"a\n")  # typed ahead (or injected) before the question
    time.sleep(0.2)           # let the line discipline take it
    got, _ = ask_on_pty(master, slave, [], timeout=0.5)
    assert got is Answer.DENY


def test_everything_shown_is_escaped(pty_pair):
    evil_path = "/tmp/\x1b]0;owned\x07\u202eexe.txt\u2066\u200b"
    rule = RuleRef("ask\u202e-x", Effect.ASK, "org", "org.yaml:1", "msg \x1b[2J\u2067")
    decision = Decision(Verdict.ASK, DecidedBy.RULE, "v1", rules=(rule,))
    got, out = ask_on_pty(*pty_pair, [b"d\n"], request=Request("fs.read", "notes",
                                                               path=evil_path),
                          decision=decision)
    assert got is Answer.DENY
    for raw in ("\x1b]", "\x1b[2J", "\x07", "\u202e", "\u2066", "\u2067", "\u200b"):
        assert raw.encode() not in out, raw
    for shown in (b"\\x1b]0;owned\\x07", b"\\u202eexe.txt\\u2066\\u200b", b"msg \\x1b[2J\\u2067",
                  b"ask\\u202e-x"):
        assert shown in out


def test_no_tty_is_immediate_deny():
    r, w = os.pipe()
    try:
        os.write(w, b"a\n")
        t0 = time.monotonic()
        assert TerminalPrompter(r, w, timeout=30).ask("notes", REQ, ASK) is Answer.DENY
        assert time.monotonic() - t0 < 1
    finally:
        os.close(r)
        os.close(w)


def test_output_not_a_tty_is_deny(pty_pair):
    master, slave = pty_pair
    r, w = os.pipe()
    try:
        os.write(master, b"a\n")
        assert TerminalPrompter(slave, w, timeout=30).ask("notes", REQ, ASK) is Answer.DENY
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("mode", ["raw", "cbreak", "noecho"])
def test_raw_terminal_is_immediate_deny(pty_pair, mode):
    master, slave = pty_pair
    if mode == "raw":
        tty.setraw(slave)
    elif mode == "cbreak":
        tty.setcbreak(slave)
    else:
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.write(master, b"a\n")
    t0 = time.monotonic()
    assert TerminalPrompter(slave, slave, timeout=30).ask("notes", REQ, ASK) is Answer.DENY
    assert time.monotonic() - t0 < 1
    seen = bytearray()
    _drain(master, seen)
    assert b"Allow?" not in seen  # nothing was asked


@pytest.mark.parametrize("stream", [None, object(), 987654], ids=["none", "no-fileno", "bad-fd"])
def test_unusable_streams_are_deny(stream, monkeypatch):
    if stream is None:
        monkeypatch.setattr("sys.stdin", None)
    assert TerminalPrompter(stream, stream, timeout=1).ask("notes", REQ, ASK) is Answer.DENY


# --------------------------------------------------------------------------- others

def test_callback_prompter_passes_the_question():
    calls = []
    p = CallbackPrompter(lambda pid, req, dec: calls.append((pid, req, dec)) or Answer.ONCE)
    assert p.ask("notes", REQ, ASK) is Answer.ONCE
    assert calls == [("notes", REQ, ASK)]


@pytest.mark.parametrize("returned, answer", [
    ("always", Answer.ALWAYS), ("NEVER", Answer.NEVER), ("yes", Answer.DENY),
    (True, Answer.DENY), (None, Answer.DENY),
], ids=["str-always", "str-never-upper", "str-unknown", "bool", "none"])
def test_callback_prompter_coerces_or_denies(returned, answer):
    assert CallbackPrompter(lambda *a: returned).ask("notes", REQ, ASK) is answer


def test_callback_prompter_exception_is_deny():
    def boom(*a):
        raise RuntimeError("ui gone")
    assert CallbackPrompter(boom).ask("notes", REQ, ASK) is Answer.DENY


def test_prompters_satisfy_protocol():
    for p in (TerminalPrompter(), CallbackPrompter(lambda *a: "once"), DenyPrompter()):
        assert isinstance(p, Prompter)
    assert DenyPrompter().ask("notes", REQ, ASK) is Answer.DENY


# --------------------------------------------------------------------------- resolve_ask

class Counting:
    def __init__(self, answer):
        self.answer, self.calls = answer, 0

    def ask(self, plugin_id, request, decision):
        self.calls += 1
        return self.answer


@pytest.fixture
def store(tmp_path):
    return GrantStore(tmp_path / "grants.yaml")


def test_non_ask_decisions_pass_through(store):
    allow = Decision(Verdict.ALLOW, DecidedBy.RULE, "v1")
    p = Counting(Answer.DENY)
    assert resolve_ask(p, "notes", REQ, allow, store) is allow and p.calls == 0


@pytest.mark.parametrize("answer, verdict", [(Answer.ONCE, Verdict.ALLOW),
                                             (Answer.DENY, Verdict.DENY)], ids=["once", "deny"])
def test_one_time_answers_are_not_remembered(store, answer, verdict):
    p = Counting(answer)
    for n in (1, 2):
        d = resolve_ask(p, "notes", REQ, ASK, store)
        assert (d.verdict, d.decided_by, p.calls) == (verdict, DecidedBy.PROMPT_ONCE, n)
        assert d.rules == (ASK_RULE,) and d.policy_version == "v1"
    assert store.list() == []


@pytest.mark.parametrize("answer, verdict", [(Answer.ALWAYS, Verdict.ALLOW),
                                             (Answer.NEVER, Verdict.DENY)],
                         ids=["always", "never"])
def test_remembered_answers_apply_at_once(store, answer, verdict):
    p = Counting(answer)
    d = resolve_ask(p, "notes", REQ, ASK, store)
    assert (d.verdict, d.decided_by) == (verdict, DecidedBy.PROMPT_ALWAYS)
    (grant,) = store.list()
    assert d.rules == (ASK_RULE, grant.rule_ref())
    assert grant.asked_by == "ask-config" and grant.effect == verdict.value
    # the next identical request is decided by the remembered rule, without asking
    d2 = resolve_ask(p, "notes", REQ, ASK, store)
    assert (d2.verdict, d2.decided_by, p.calls) == (verdict, DecidedBy.RULE, 1)
    assert d2.rule.id == grant.id and d2.rule.layer == "user"
    # ...but another resource, or another plugin, is asked again
    resolve_ask(p, "notes", Request("fs.read", "notes", path="/home/me/other"), ASK, store)
    resolve_ask(p, "other", Request("fs.read", "other", path=REQ.path), ASK, store)
    assert p.calls == 3


def test_revoked_grant_asks_again(store):
    p = Counting(Answer.ALWAYS)
    resolve_ask(p, "notes", REQ, ASK, store)
    store.revoke_all()
    resolve_ask(p, "notes", REQ, ASK, store)
    assert p.calls == 2


def test_always_without_store_applies_once_and_says_so():
    d = resolve_ask(Counting(Answer.ALWAYS), "notes", REQ, ASK, None)
    assert d.verdict is Verdict.ALLOW and "not remembered" in d.errors[0]


def test_raising_prompter_is_deny(store):
    class Broken:
        def ask(self, *a):
            raise RuntimeError("tty exploded")
    d = resolve_ask(Broken(), "notes", REQ, ASK, store)
    assert d.verdict is Verdict.DENY and "tty exploded" in d.errors[0]


def test_unreadable_grants_file_asks_and_reports(store):
    with open(store.path, "w") as f:
        f.write("rules: [unclosed\n")
    d = resolve_ask(Counting(Answer.ALWAYS), "notes", REQ, ASK, store)
    assert d.verdict is Verdict.ALLOW  # this request: the user said yes
    assert any(e.startswith("grants:") for e in d.errors)
    assert any("not remembered" in e for e in d.errors)
    assert open(store.path).read() == "rules: [unclosed\n"  # the user's file is untouched


def test_deny_prompter_never_remembers(store):
    d = resolve_ask(DenyPrompter(), "notes", REQ, ASK, store)
    assert d.verdict is Verdict.DENY and store.list() == []
