"""Publisher keys in one canonical form: the key id.

A trusted key may be written as the full public key (``ed25519:<base64>``, standard or
URL-safe alphabet, padded or not) or as its key id (16 hex digits); a verified signature
yields the key id. Every comparison of keys goes through :func:`key_id_of`, so two spellings
of one key always compare equal and a key never equals an id by accident.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable

KEY_PREFIX = "ed25519:"
_KEY_ID = re.compile(r"^[0-9a-fA-F]{16}$")


def raw_key_id(raw: bytes) -> str:
    """The key id of a raw 32-byte Ed25519 public key: first 16 hex digits of its sha256."""
    if len(raw) != 32:
        raise ValueError(f"an ed25519 public key has 32 bytes, not {len(raw)}")
    return hashlib.sha256(raw).hexdigest()[:16]


def key_id_of(text: str) -> str:
    """The canonical key id of ``ed25519:<base64>`` or of a 16-hex key id; ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError("a key must be a string")
    text = text.strip()
    if _KEY_ID.match(text):
        return text.lower()
    if not text.startswith(KEY_PREFIX):
        raise ValueError(f"`{text[:40]}` is neither `ed25519:<base64>` nor a 16-hex key id")
    body = text[len(KEY_PREFIX):].replace("-", "+").replace("_", "/")
    body += "=" * (-len(body) % 4)
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"`{text[:40]}` is not valid base64") from None
    return raw_key_id(raw)


def key_ids(keys: Iterable[str]) -> frozenset[str]:
    """The canonical ids of ``keys``; a key that does not parse is left out (it trusts nothing)."""
    out = set()
    for k in keys:
        try:
            out.add(key_id_of(k))
        except ValueError:
            continue
    return frozenset(out)


def same_key(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` (keys or key ids, any spelling) name one key."""
    try:
        return key_id_of(a) == key_id_of(b)
    except ValueError:
        return False
