"""The record schema (version 1), canonical JSON and the hash chain.

Every line of an audit log is one record serialized as *canonical JSON*: keys sorted,
no insignificant whitespace, UTF-8 (``ensure_ascii=False``), no NaN/Infinity. A record's
hash is the SHA-256 of that line (without its newline); the next record stores it in
``prev``. The first record of a log has ``prev`` = ``GENESIS`` (64 zeros).

The schema is documented for auditors in ``docs/audit-log.md``; keep both in step and bump
``SCHEMA_VERSION`` on any incompatible change.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import re
import socket
import time
from typing import Any

from promptline.policy import PromptLineError

SCHEMA_VERSION = 1
"""Version written in every record's ``v`` field."""

GENESIS = "0" * 64
"""``prev`` of the very first record of a log."""

KINDS = ("decision", "lifecycle", "policy_reload", "plugin_reload", "dropped", "recovered", "rotated")
"""Every record ``kind``."""

LIFECYCLE_EVENTS = ("discovered", "verified", "approved", "loaded", "reloaded", "unloaded",
                    "failed", "protocol_error", "registered")
"""Every ``event`` of a lifecycle record."""

VERDICTS = ("allow", "deny", "ask")

_COMMON_FIELDS = {"v": int, "seq": int, "time": str, "pid": int, "host": str, "kind": str,
                  "prev": str}

_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)
_encode = _encoder.encode
_sha256 = hashlib.sha256


def canonical(record: dict) -> str:
    """The canonical JSON text of ``record`` (what is written and hashed)."""
    return _encode(record)


def line_hash(line: bytes) -> str:
    """SHA-256 (hex) of one record line, without its trailing newline."""
    return _sha256(line).hexdigest()


# -- time -----------------------------------------------------------------------------------

_time_cache: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """Current UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (sorts as text)."""
    global _time_cache
    t = time.time()
    sec = int(t)
    cached = _time_cache
    if cached[0] != sec:
        cached = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
        _time_cache = cached
    return f"{cached[1]}.{int((t - sec) * 1_000_000):06d}Z"


# -- process identity (re-read after fork) --------------------------------------------------

_HOST = socket.gethostname()


def host_name() -> str:
    return _HOST


# -- JSON-safe values -----------------------------------------------------------------------

_PATH_TYPES = (pathlib.PurePosixPath, pathlib.PureWindowsPath, pathlib.PosixPath,
               pathlib.WindowsPath, pathlib.Path, pathlib.PurePath)


def plain(value: Any, _depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` built from exact builtin types only.

    Never calls methods of foreign objects (this may run inside an audit hook on values a
    plugin supplied): anything that is not an exact str/int/float/bool/None/bytes/list/
    tuple/dict or a stdlib path becomes ``"<typename>"``.
    """
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        return value if math.isfinite(value) else repr(value)
    if _depth > 8:  # nesting limit for request payloads; deeper values are summarized
        return "<nested>"
    if t is dict:
        return {k if type(k) is str else str(plain(k, _depth + 1)): plain(v, _depth + 1)
                for k, v in value.items()}
    if t is list or t is tuple:
        return [plain(v, _depth + 1) for v in value]
    if t is bytes:
        return value.decode("utf-8", "backslashreplace")
    if t in _PATH_TYPES:
        return os.fspath(value)
    return f"<{type.__dict__['__name__'].__get__(t)}>"


# -- validation (reader side) ---------------------------------------------------------------

def check_record(rec: object) -> str | None:
    """Why ``rec`` is not a valid v1 record, or None when it is."""
    if type(rec) is not dict:
        return "not a JSON object"
    for name, typ in _COMMON_FIELDS.items():
        if name not in rec:
            return f"missing field `{name}`"
        if type(rec[name]) is not typ:
            return f"field `{name}` has the wrong type"
    if rec["v"] != SCHEMA_VERSION:
        if rec["v"] > SCHEMA_VERSION:
            return (f"schema version {rec['v']} is newer than this PromptLine understands "
                    f"({SCHEMA_VERSION}): upgrade promptline")
        return f"unknown schema version {rec['v']}"
    if rec["seq"] < 1:
        return "field `seq` must be positive"
    prev = rec["prev"]
    if len(prev) != 64 or prev.strip("0123456789abcdef"):
        return "field `prev` is not a SHA-256 hex digest"
    if rec["kind"] not in KINDS:
        return f"unknown kind `{rec['kind']}`"
    return None


# -- errors ---------------------------------------------------------------------------------



class AuditError(PromptLineError):
    """The audit log cannot be written or read (message names the file and the fix).

    Raised by ``AuditLog.decision`` when a deny/ask record cannot be made durable: the
    enforcer must then refuse the call (fail closed).
    """

    code = "audit"


# -- file layout: the active file plus numbered rotated files ------------------------------

def rotated_name(path: str, number: int) -> str:
    """``/d/audit.jsonl`` + 3 -> ``/d/audit.000003.jsonl`` (older files have lower numbers)."""
    root, ext = os.path.splitext(path)
    return f"{root}.{number:06d}{ext}"


def rotated_files(path: str) -> list[tuple[int, str]]:
    """The rotated files of the log at ``path`` as ``(number, path)``, oldest first."""
    directory, base = os.path.split(path)
    root, ext = os.path.splitext(base)
    pat = re.compile(re.escape(root) + r"\.(\d{6,})" + re.escape(ext) + r"\Z")
    try:
        names = os.listdir(directory or ".")
    except OSError:  # no such directory, not a directory, a name too long...
        return []
    found = []
    for name in names:
        m = pat.match(name)
        if m:
            found.append((int(m.group(1)), os.path.join(directory, name)))
    found.sort()
    return found
