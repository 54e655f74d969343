"""JSON documents from untrusted places (indexes, signature files, state files), parsed so
that nothing a hostile document holds raises anything but ValueError."""

from __future__ import annotations

import json
from typing import Any

MAX_DOCUMENT_DEPTH = 64   # nesting of a document's JSON (an index nests 6 levels)


def loads(data: bytes | str, *, max_depth: int = MAX_DOCUMENT_DEPTH) -> Any:
    """``json.loads`` that raises ValueError (with why) for bad UTF-8, bad JSON, and JSON
    nested deeper than ``max_depth`` — including nesting deep enough for RecursionError."""
    from ._process._jsonrpc import depth_ok
    try:
        doc = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    except RecursionError:
        raise ValueError(f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not depth_ok(doc, max_depth):
        raise ValueError(f"nested deeper than {max_depth} levels")
    return doc
