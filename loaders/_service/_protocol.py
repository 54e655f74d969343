"""The decision service's wire protocol: JSON Lines, versioned, validated by its JSON Schemas.

One request per line, one response per line, in order (docs/service.md)::

    {"v": 1, "id": 7, "method": "check", "params": {"plugin": "notes", "request": {...}}}
    {"v": 1, "id": 7, "result": {"verdict": "deny", ...}}
    {"v": 1, "id": 7, "error": {"code": "invalid-params", "message": "...", "path": "/params/request"}}

The schemas under ``schemas/`` (published as docs/schemas/service/) are the single source: the
server validates every request against them; nothing here re-states their rules.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from .._process._jsonrpc import depth_ok

PROTOCOL_VERSION = 1
METHODS = ("check", "explain", "load", "call_tool", "audit")
MAX_MESSAGE = 1 << 20          # bytes of one request line (without its newline)
MAX_JSON_DEPTH = 64            # nesting of a request (deeper is a parse error, never a RecursionError)


class ProtocolError(Exception):
    """A request refused with an error object (``code`` from error.schema.json)."""

    def __init__(self, code: str, message: str, path: str = "", rid: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path
        self.rid = rid    # the request's id, when it could be read

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.path:
            out["path"] = self.path
        return out


@cache
def schema(name: str) -> dict:
    """The JSON Schema ``name`` (e.g. ``check.params``) as shipped in the package."""
    text = resources.files(__package__).joinpath("schemas", f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


@cache
def _registry():
    from referencing import Registry, Resource
    names = [p.name.removesuffix(".schema.json") for p in resources.files(__package__).joinpath("schemas").iterdir()
             if p.name.endswith(".schema.json")]
    reg = Registry()
    for n in names:
        doc = schema(n)
        reg = reg.with_resource(doc["$id"], Resource.from_contents(doc))
    return reg


@cache
def validator(name: str):
    """A compiled Draft 2020-12 validator for schema ``name`` (refs resolve between our files)."""
    from jsonschema import Draft202012Validator
    return Draft202012Validator(schema(name), registry=_registry())


@cache
def _fast(name: str):
    """jsonschema-rs's compiled validator of the same schema file, or None (then only jsonschema runs)."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.validator_for(schema(name))


def _pointer(path) -> str:
    return "".join(f"/{p}" for p in path)


def validate(name: str, value: Any, prefix: str = "") -> None:
    """Raise ProtocolError(invalid-params/-request) naming the first field ``value`` gets wrong.

    The same schema file is compiled twice: jsonschema-rs answers "valid" in about a
    microsecond; anything it does not call valid goes to jsonschema, which names the field
    (and if jsonschema finds nothing, it is still refused). A property test checks that the
    two agree (tests/service/test_service_fuzz.py)."""
    fast = _fast(name)
    if fast is not None:
        try:
            if fast.is_valid(value):
                return
        except Exception:  # noqa: BLE001 - e.g. an integer beyond 64 bits: let jsonschema judge
            pass
    v = validator(name)
    err = next(iter(sorted(v.iter_errors(value), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))), None)
    code = "invalid-request" if name == "request" else "invalid-params"
    if err is None:
        if fast is None:
            return
        raise ProtocolError(code, f"{prefix or '/'}: does not match {name}.schema.json", prefix or "/")
    code = "invalid-request" if name == "request" else "invalid-params"
    where = prefix + _pointer(err.absolute_path)
    raise ProtocolError(code, f"{where or '/'}: {_clip(err.message, 300)}", where or "/")


def _no_constant(name: str):
    raise ValueError(f"`{name}` is not JSON")


def decode(line: bytes) -> tuple[Any, dict]:
    """(id, request) from one line; ProtocolError says what is wrong (the id is echoed when readable)."""
    try:
        text = line.decode("utf-8")
        msg = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ProtocolError("parse-error", f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("parse-error", f"not a JSON line: {_clip(str(exc), 200)}") from None
    if type(msg) is not dict:
        raise ProtocolError("invalid-request", "a request must be a JSON object", "/")
    rid = msg.get("id")
    if not (rid is None or type(rid) is str and len(rid) <= 128 or type(rid) is int and abs(rid) <= 2 ** 53):
        rid = None
    try:
        _check(msg)
    except ProtocolError as exc:
        exc.rid = rid
        raise
    return rid, msg


def _check(msg: dict) -> None:
    if not depth_ok(msg, MAX_JSON_DEPTH - 1):   # the top level counts as the first
        raise ProtocolError("parse-error", f"nested deeper than {MAX_JSON_DEPTH} levels")
    v = msg.get("v")
    if type(v) is not int or v != PROTOCOL_VERSION:
        raise ProtocolError("unsupported-version",
                            f"protocol version `{_clip(json.dumps(v), 20)}` is not supported; send \"v\": {PROTOCOL_VERSION}",
                            "/v")
    method = msg.get("method")
    if type(method) is str and method not in METHODS:
        raise ProtocolError("unknown-method", f"unknown method `{_clip(method, 40)}`; one of: {', '.join(METHODS)}",
                            "/method")
    validate("request", msg)
    validate(f"{method}.params", msg.get("params", {}), "/params")


def encode_result(rid: Any, result: dict) -> bytes:
    return _line({"v": PROTOCOL_VERSION, "id": rid, "result": result})


def encode_error(rid: Any, err: ProtocolError) -> bytes:
    return _line({"v": PROTOCOL_VERSION, "id": rid, "error": err.to_dict()})


def _line(obj: dict) -> bytes:
    return (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode("utf-8")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
