"""Asking the user about an ASK decision, and turning the answer into a decision.

A ``Prompter`` answers one question: may this plugin do this one thing? The answer is one
of ``Answer.ONCE`` (allow this request), ``ALWAYS`` (allow, and remember), ``DENY`` (refuse
this request) or ``NEVER`` (refuse, and remember). Remembered answers are ordinary rules in
the user layer, kept by ``GrantStore`` (``_grants.py``).

The terminal prompter is hardened the way Deno's is (docs/design.md §10): pending input is
flushed before asking; control characters and Unicode bidi/invisible marks in everything
shown are escaped; an answer needs a word or letter followed by Enter; no TTY, a terminal
in raw (or no-echo) mode, a background process group, end of input or a timeout all mean
DENY — never a hang.
"""

from __future__ import annotations

import enum
import logging
import os
import select
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from promptline.policy import DecidedBy, Decision, Effect, Request, Verdict

if TYPE_CHECKING:
    from ._protocols import GrantLookup

try:  # termios is POSIX-only; without it no terminal prompt is possible (deny)
    import termios
except ImportError:  # pragma: no cover - Windows
    termios = None  # type: ignore[assignment]

log = logging.getLogger("promptline.enforcer.prompt")

PROMPT_TIMEOUT_S = 60.0
"""Seconds a terminal prompt waits for an answer before denying."""

MAX_SHOWN_CHARS = 400
"""Longest value shown in a prompt or table cell; the rest is summarised as ``…(+N)``."""

MAX_ANSWER_BYTES = 256
"""Longest answer line read from the terminal; longer input is refused (deny)."""

MAX_ATTEMPTS = 3
"""Unrecognised answers re-ask this many times in all before denying."""


class Answer(str, enum.Enum):
    """The user's answer to one prompt."""

    ONCE = "once"
    ALWAYS = "always"
    DENY = "deny"
    NEVER = "never"

    @property
    def allows(self) -> bool:
        return self in (Answer.ONCE, Answer.ALWAYS)

    @property
    def remembered(self) -> bool:
        return self in (Answer.ALWAYS, Answer.NEVER)


@runtime_checkable
class Prompter(Protocol):
    """Anything that can ask the user about one request; must not raise, must not hang."""

    def ask(self, plugin_id: str, request: Request, decision: Decision) -> Answer: ...


# --------------------------------------------------------------------------- escaping

_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _is_safe_char(ch: str) -> bool:
    # str.isprintable() is False for Cc, Cf (bidi embeddings/isolates, zero-width chars,
    # BOM, soft hyphen), Cs, Co, Cn, Zl, Zp and every space but U+0020.
    if not ch.isprintable():
        return False
    # Belt and braces: format characters and private/unassigned code points stay escaped
    # even if a future Unicode database changes isprintable().
    return unicodedata.category(ch) not in ("Cf", "Co", "Cn", "Cs", "Cc")


def escape_for_terminal(text: Any, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` made safe to show on a terminal: one line, nothing invisible or reordering.

    Control characters, bidi embeddings/overrides/isolates (U+202A-202E, U+2066-2069),
    zero-width and other format characters (U+200B-200F, U+2060-2064, U+FEFF, U+061C...),
    line/paragraph separators, unusual spaces and lone surrogates are shown as ``\\xNN``,
    ``\\uNNNN`` or ``\\UNNNNNNNN``; a backslash is doubled so escapes cannot be faked.
    """
    text = str(text)
    out: list[str] = []
    for ch in text:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif _is_safe_char(ch):
            out.append(ch)
        else:
            cp = ord(ch)
            out.append(f"\\x{cp:02x}" if cp < 0x100 else
                       f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}")
    shown = "".join(out)
    if limit and len(shown) > limit:
        shown = f"{shown[:limit]}…(+{len(shown) - limit} chars)"
    return shown


# --------------------------------------------------------------------------- prompters

_ANSWER_WORDS = {
    "o": Answer.ONCE, "once": Answer.ONCE,
    "a": Answer.ALWAYS, "always": Answer.ALWAYS,
    "d": Answer.DENY, "deny": Answer.DENY,
    "n": Answer.NEVER, "never": Answer.NEVER,
}

_TERMINAL_LOCK = threading.Lock()  # one prompt on the terminal at a time


def _fileno(stream: Any) -> int | None:
    if isinstance(stream, int):
        return stream
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


class TerminalPrompter:
    """Asks on a terminal; anything short of a clear answer typed on a real TTY is DENY.

    ``stdin``/``stdout`` are file descriptors or objects with ``fileno()``; by default
    ``sys.stdin`` and ``sys.stderr`` as they are when a question is asked. Both must be
    terminals; the prompt is written to ``stdout``.
    """

    def __init__(self, stdin: Any = None, stdout: Any = None,
                 timeout: float = PROMPT_TIMEOUT_S) -> None:
        self._stdin = stdin
        self._stdout = stdout
        self.timeout = timeout

    def ask(self, plugin_id: str, request: Request, decision: Decision) -> Answer:
        # one question on the terminal at a time; waiting for the turn counts as timeout
        if not _TERMINAL_LOCK.acquire(timeout=max(self.timeout, 0)):
            return Answer.DENY
        try:
            return self._ask(plugin_id, request, decision)
        except Exception as exc:  # a prompter never raises: failing to ask is a refusal
            log.warning("terminal prompt failed, denying: %s", exc)
            return Answer.DENY
        finally:
            _TERMINAL_LOCK.release()

    # -- internals

    def _fds(self) -> tuple[int | None, int | None]:
        return (_fileno(self._stdin if self._stdin is not None else sys.stdin),
                _fileno(self._stdout if self._stdout is not None else sys.stderr))

    def _ask(self, plugin_id: str, request: Request, decision: Decision) -> Answer:
        in_fd, out_fd = self._fds()
        refusal = self._unusable(in_fd, out_fd)
        if refusal:
            log.info("no interactive terminal (%s): denying %s of %s", refusal,
                     request.action, plugin_id)
            return Answer.DENY
        assert in_fd is not None and out_fd is not None
        # Deno's lesson: input typed before the question (or queued by the plugin writing
        # to the terminal) must not answer it.
        termios.tcflush(in_fd, termios.TCIFLUSH)
        _write(out_fd, render_prompt(plugin_id, request, decision))
        deadline = time.monotonic() + self.timeout
        for attempt in range(MAX_ATTEMPTS):
            _write(out_fd, _QUESTION)
            line = _read_line(in_fd, deadline)
            if line is None:
                _write(out_fd, "\nno answer — denied\n")
                return Answer.DENY
            word = line.strip().lower()
            if not word:
                _write(out_fd, "denied\n")
                return Answer.DENY
            answer = _ANSWER_WORDS.get(word)
            if answer is not None:
                _write(out_fd, f"{_CONFIRM[answer]}\n")
                return answer
            if attempt + 1 < MAX_ATTEMPTS:
                _write(out_fd, f"unrecognised answer `{escape_for_terminal(word, 40)}`\n")
        _write(out_fd, "no clear answer — denied\n")
        return Answer.DENY

    @staticmethod
    def _unusable(in_fd: int | None, out_fd: int | None) -> str:
        """Why this terminal cannot be used for a prompt ("" when it can)."""
        if termios is None:
            return "no termios on this platform"
        if in_fd is None or out_fd is None:
            return "no stdin/stdout file descriptor"
        if not os.isatty(in_fd):
            return "stdin is not a terminal"
        if not os.isatty(out_fd):
            return "prompt output is not a terminal"
        lflag = termios.tcgetattr(in_fd)[3]
        if not lflag & termios.ICANON or not lflag & termios.ECHO:
            return "terminal is in raw or no-echo mode"
        try:
            foreground = os.tcgetpgrp(in_fd)
        except OSError:  # not our controlling terminal: reading cannot stop us (SIGTTIN)
            foreground = None
        if foreground is not None and foreground != os.getpgrp():
            return "process is not in the terminal's foreground"
        return ""


_QUESTION = "Allow? [o]nce, [a]lways, [d]eny, [n]ever — type a letter or word, then Enter: "
_CONFIRM = {Answer.ONCE: "allowed once", Answer.ALWAYS: "allowed, remembered",
            Answer.DENY: "denied", Answer.NEVER: "denied, remembered"}


def render_prompt(plugin_id: str, request: Request, decision: Decision) -> str:
    """The text of a prompt, every value escaped (see ``escape_for_terminal``)."""
    e = escape_for_terminal
    lines = ["", f"PromptLine: plugin `{e(plugin_id)}` asks to {e(request.action)}",
             f"  resource: {e(request.resource)}"]
    if request.action == "tool.call" and request.args and request.args != "{}":
        lines.append(f"  args:     {e(request.args)}")
    for rule in decision.rules:
        lines.append(f"  rule:     {e(rule.id)} ({e(rule.origin)})")
        if rule.message:
            lines.append(f"  message:  {e(rule.message)}")
    if not decision.rules:
        lines.append("  rule:     (none named)")
    return "\n".join(lines) + "\n"


def _write(fd: int, text: str) -> None:
    data = text.encode("utf-8", "backslashreplace")
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _read_line(fd: int, deadline: float) -> str | None:
    """One line typed on a canonical-mode terminal, or None on EOF/timeout/overlong input."""
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return None
        chunk = os.read(fd, MAX_ANSWER_BYTES + 1)
        if not chunk:  # end of input (Ctrl-D): no answer
            return None
        buf += chunk
        if len(buf) > MAX_ANSWER_BYTES:
            return None
    return buf.split(b"\n", 1)[0].decode("utf-8", "replace")


class CallbackPrompter:
    """Delegates to a host's own UI: ``fn(plugin_id, request, decision)`` returns an
    ``Answer`` (or its value, e.g. ``"once"``). Anything else, or an exception, is DENY."""

    def __init__(self, fn: Callable[[str, Request, Decision], Any]) -> None:
        self._fn = fn

    def ask(self, plugin_id: str, request: Request, decision: Decision) -> Answer:
        try:
            result = self._fn(plugin_id, request, decision)
        except Exception as exc:
            log.warning("prompt callback failed, denying %s of %s: %s",
                        request.action, plugin_id, exc)
            return Answer.DENY
        if isinstance(result, Answer):
            return result
        if isinstance(result, str):
            try:
                return Answer(result.lower())
            except ValueError:
                pass
        log.warning("prompt callback returned %r, not an answer: denying", result)
        return Answer.DENY


class DenyPrompter:
    """For non-interactive hosts: every question is answered DENY (nothing remembered)."""

    def ask(self, plugin_id: str, request: Request, decision: Decision) -> Answer:
        return Answer.DENY


# --------------------------------------------------------------------------- resolve

def resolve_ask(prompter: Prompter, plugin_id: str, request: Request, decision: Decision,
                grants: GrantLookup | None = None) -> Decision:
    """Turn an ASK decision into ALLOW or DENY; other decisions are returned unchanged.

    A remembered answer in ``grants`` decides first (``decided_by`` RULE, citing the grant).
    Otherwise the prompter is asked: ONCE/DENY apply to this request only (PROMPT_ONCE);
    ALWAYS/NEVER also become a rule in ``grants`` (PROMPT_ALWAYS, citing the new grant
    after the asking rules). Failing to remember still applies the answer to this request
    and records the failure in ``errors``. A prompter that raises counts as DENY.
    """
    if decision.verdict is not Verdict.ASK:
        return decision
    errors = list(decision.errors)
    if grants is not None:
        try:
            grant = grants.lookup(plugin_id, request)
        except Exception as exc:  # unreadable grants: ask again rather than guess
            errors.append(f"grants: {exc}")
            grant = None
        if grant is not None:
            verdict = Verdict.ALLOW if grant.effect == "allow" else Verdict.DENY
            return replace(decision, verdict=verdict, decided_by=DecidedBy.RULE,
                           rules=(grant.rule_ref(),), errors=tuple(errors))
    try:
        answer = prompter.ask(plugin_id, request, decision)
    except Exception as exc:  # the Prompter contract says never raise; fail closed anyway
        errors.append(f"prompt failed: {exc}")
        return replace(decision, verdict=Verdict.DENY, decided_by=DecidedBy.DEFAULT,
                       errors=tuple(errors))
    if not isinstance(answer, Answer):
        errors.append(f"prompt returned `{answer!r}`, not an answer")
        answer = Answer.DENY
    verdict = Verdict.ALLOW if answer.allows else Verdict.DENY
    rules = decision.rules
    if not answer.remembered:
        return replace(decision, verdict=verdict, decided_by=DecidedBy.PROMPT_ONCE,
                       errors=tuple(errors))
    if grants is None:
        errors.append(f"answer `{answer.value}` not remembered: no grant store")
    else:
        try:
            grant = grants.remember(plugin_id, request,
                                    Effect.ALLOW if answer.allows else Effect.DENY,
                                    asked_by=decision.rule)
            rules = rules + (grant.rule_ref(),)
        except Exception as exc:
            errors.append(f"answer `{answer.value}` not remembered: {exc}")
    return replace(decision, verdict=verdict, decided_by=DecidedBy.PROMPT_ALWAYS,
                   rules=rules, errors=tuple(errors))
