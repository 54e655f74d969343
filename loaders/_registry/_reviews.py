"""Reviews: index entries signed by the reviewer's ed25519 key.

``index.json`` may hold ``"reviews": {"<plugin id>": [<review>, ...]}``; a review is::

    {"plugin": "<id>", "author": "<name>", "rating": 1..5, "text": "<text>", "date": "<ISO time>",
     "key": "ed25519:<b64>", "key_id": "<16 hex>",
     "signature": "<b64 of ed25519(REVIEW_PREFIX + canonical JSON of the signed fields)>"}

Reviews are hostile input like the rest of the index: :func:`verified_reviews` returns only
those whose signature verifies for the key they carry (shown with its key id); anything
malformed or altered is dropped, never shown. A key id tells reviews by one key apart; it
says nothing about who holds the key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from filelock import FileLock, Timeout

from promptline.enforcer import write_atomic

from .._errors import SignatureError
from .._signing import format_public_key, key_id, load_private_key, parse_public_key
from ._errors import RegistryError
from ._index import INDEX_FILE, PLUGIN_ID, _read, index_base, parse_index

REVIEW_PREFIX = b"promptline-review/v1\x00"         # domain separation from index entries and trees
REVIEW_FIELDS = ("plugin", "author", "rating", "text", "date")
MAX_TEXT = 4000
MAX_AUTHOR = 80
MAX_REVIEWS = 1000            # per plugin, read
INDEX_LOCK = ".index.lock"    # the lock publish takes


@dataclass(frozen=True)
class Review:
    plugin: str
    author: str
    rating: int
    text: str
    date: str
    key: str
    key_id: str
    signature: str

    def signed_message(self) -> bytes:
        doc = {k: getattr(self, k) for k in REVIEW_FIELDS}
        return REVIEW_PREFIX + json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (*REVIEW_FIELDS, "key", "key_id", "signature")}

    def verifies(self) -> bool:
        """True when the signature is valid for the carried key and the key id matches it."""
        try:
            public = parse_public_key(self.key)
            public.verify(base64.b64decode(self.signature, validate=True), self.signed_message())
        except (SignatureError, InvalidSignature, binascii.Error, ValueError):
            return False
        return key_id(public) == self.key_id


def _check(plugin: str, author: str, rating: Any, text: str) -> None:
    if not PLUGIN_ID.match(plugin):
        raise ValueError(f"`{plugin[:64]}` is not a plugin id")
    if type(rating) is not int or not 1 <= rating <= 5:
        raise ValueError("rating must be a whole number from 1 to 5")
    if not author or len(author) > MAX_AUTHOR or any(ord(c) < 32 for c in author):
        raise ValueError(f"author must be 1-{MAX_AUTHOR} characters without control characters")
    if len(text) > MAX_TEXT:
        raise ValueError(f"review text is longer than {MAX_TEXT} characters")


def parse_review(data: Any) -> Review | None:
    """A review from the index, or None when it is malformed (never raises)."""
    if not isinstance(data, dict):
        return None
    fields = {k: data.get(k) for k in (*REVIEW_FIELDS, "key", "key_id", "signature")}
    if not all(isinstance(fields[k], str) for k in fields if k != "rating"):
        return None
    try:
        _check(fields["plugin"], fields["author"], fields["rating"], fields["text"])
    except ValueError:
        return None
    return Review(**fields)


def verified_reviews(doc: Any, plugin_id: str) -> list[Review]:
    """The reviews of ``plugin_id`` in an index document whose signatures verify, newest first."""
    reviews = doc.get("reviews") if isinstance(doc, dict) else None
    found = reviews.get(plugin_id) if isinstance(reviews, dict) else None
    if not isinstance(found, list):
        return []
    out = []
    for item in found[:MAX_REVIEWS]:
        review = parse_review(item)
        if review is not None and review.plugin == plugin_id and review.verifies():
            out.append(review)
    return sorted(out, key=lambda r: r.date, reverse=True)


def write_review(index_dir: str | os.PathLike, plugin_id: str, *, key: str | os.PathLike, author: str,
                 rating: int, text: str, date: str | None = None) -> Review:
    """Sign a review with ``key`` and add it to the index directory (one per key and plugin:
    a second review by the same key replaces the first)."""
    if str(index_dir).startswith(("http://", "https://")):
        raise RegistryError("a review is written into an index directory, not a URL", reason="bad-source",
                            fix="write it into a local copy of the index tree and upload that")
    try:
        _check(plugin_id, author, rating, text)
    except ValueError as exc:
        raise RegistryError(str(exc), reason="bad-review", plugin=plugin_id, fix="fix the review") from None
    try:
        private = load_private_key(key)
    except SignatureError as exc:
        raise RegistryError(exc.message, reason="signature", fix=exc.fix) from None
    public = private.public_key()
    unsigned = Review(plugin_id, author, rating, text,
                      date or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                      format_public_key(public), key_id(public), "")
    review = Review(**{**unsigned.to_json(),
                       "signature": base64.b64encode(private.sign(unsigned.signed_message())).decode("ascii")})
    base = Path(index_base(index_dir))
    lock = FileLock(str(base / INDEX_LOCK), timeout=30.0)
    try:
        lock.acquire()
    except Timeout:
        raise RegistryError(f"index `{base}` is locked by another publish", reason="io",
                            fix="retry when it has finished") from None
    try:
        path = base / INDEX_FILE
        raw = _read(str(path), 64 * 1024 * 1024, what="index")
        parse_index(raw, str(base))                    # refuse to extend a broken index
        doc = json.loads(raw.decode("utf-8"))
        if plugin_id not in doc["plugins"]:
            raise RegistryError(f"plugin `{plugin_id}` is not in the index {base}", reason="not-found",
                                plugin=plugin_id, fix="review a plugin the index lists")
        reviews = doc.setdefault("reviews", {})
        mine = [r for r in reviews.get(plugin_id, []) if not (isinstance(r, dict) and r.get("key") == review.key)]
        reviews[plugin_id] = [*mine, review.to_json()]
        write_atomic(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    finally:
        lock.release()
    return review


__all__ = ["Review", "parse_review", "verified_reviews", "write_review", "REVIEW_PREFIX"]
