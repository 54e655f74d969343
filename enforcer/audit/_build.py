"""Record building: what one record says, before it has a place in the chain.

A record is built as a dict (``body``), or, on the hot decision path, as a
``(head, middle, tail)`` triple of canonical JSON text around the ``prev`` value and the
``seq`` number, which the chained file splices in (``_chainfile.chain``). Redaction is
applied here, so nothing unredacted ever reaches the file or a sink.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
import os
from typing import Any

from ._records import LIFECYCLE_EVENTS, SCHEMA_VERSION, host_name, plain, utc_now
from ._redact import Redactor

PROMPTED = ("prompt-once", "prompt-always")
"""``decided_by`` values of allows the user answered (always written)."""

_enc_str = json.encoder.encode_basestring  # JSON string literal, ensure_ascii=False (C)
_enc = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                        allow_nan=False).encode
_HOST_JSON = _enc_str(host_name())


def text(value: object) -> str:
    """``value`` as record text (str enums from policy give their value)."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    v = getattr(value, "value", None)
    return v if type(v) is str else str(plain(value))


class RecordBuilder:
    """Builds the records of one process (its pid and host go into each)."""

    def __init__(self, redactor: Redactor, log_allows: bool = True) -> None:
        self._redactor = redactor
        self._log_allows = log_allows
        self.pid = os.getpid()

    def decision(self, plugin_id: str, plugin_version: str, action: str, resource: str,
                 decision: Any, request: dict | None = None,
                 message: str = "", extra: dict | None = None) -> tuple[tuple | None, bool]:
        """(the record as a triple, durable?); (None, False) for an allow not logged.

        ``extra`` adds fields (sorted into place); the hot path passes none.
        """
        if type(decision) is not dict:
            decision = decision.to_dict()
        verdict = text(decision.get("verdict"))
        decided_by = text(decision.get("decided_by"))
        would_deny = bool(decision.get("would_deny", False))
        durable = verdict != "allow" or would_deny
        if not durable and not self._log_allows and decided_by not in PROMPTED:
            return None, False
        red = self._redactor.text
        E = _enc_str
        rules: list[str] = []
        first_id = first_origin = "null"
        for r in decision.get("rules") or ():
            if type(r) is not dict:
                r = r.to_dict()
            rid, origin = E(text(r.get("id"))), E(text(r.get("origin")))
            if not rules:
                first_id, first_origin = rid, origin
            rules.append(f'{{"effect":{E(text(r.get("effect")))},"id":{rid},'
                         f'"layer":{E(text(r.get("layer")))},'
                         f'"message":{E(red(text(r.get("message"))))},'
                         f'"mode":{E(text(r.get("mode") or "enforce"))},"origin":{origin}}}')
        action = text(action)
        errors = ",".join([E(red(text(e))) for e in decision.get("errors") or ()])
        request_json = ""
        if request is not None:
            request_json = ('"request":' + _enc(self._redactor.payload(plain(request), action))
                            + ",")
        # Canonical JSON written field by field (keys in sorted order) so the hot path
        # avoids a dict and json.dumps. A test checks that the result equals
        # canonical(json.loads(line)).
        pre_host = pre_msg = pre_rec = pre_time = ""
        if extra:
            pre_host, pre_msg, pre_rec, pre_time = _extra_fields(extra)
        head = (f'{{"action":{E(action)},"decided_by":{E(decided_by)},"decision":{E(verdict)},'
                f'"errors":[{errors}],"hint":{E(red(text(decision.get("hint"))))},'
                f'{pre_host}"host":{_HOST_JSON},"kind":"decision",{pre_msg}'
                f'"message":{E(red(text(message)))},'
                f'"pid":{self.pid},"plugin":{{"id":{E(text(plugin_id))},'
                f'"version":{E(text(plugin_version))}}},'
                f'"policy_version":{E(text(decision.get("policy_version")))},"prev":"')
        middle = (f'",{pre_rec}{request_json}"resource":{E(red(text(resource)))},'
                  f'"rule":{first_id},'
                  f'"rule_origin":{first_origin},"rules":[{",".join(rules)}],"seq":')
        tail = (f',{pre_time}"time":"{utc_now()}","v":{SCHEMA_VERSION},'
                f'"would_deny":{"true" if would_deny else "false"}}}')
        return (head, middle, tail), durable

    def body(self, kind: str, fields: dict) -> dict:
        """A record of ``kind`` with the common fields (seq and prev come later)."""
        rec = {"v": SCHEMA_VERSION, "time": utc_now(), "pid": self.pid, "host": host_name(),
               "kind": kind}
        rec.update(fields)
        return rec

    def lifecycle(self, plugin_id: str, plugin_version: str, event: str, detail: str) -> dict:
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"unknown lifecycle event `{event}` — use one of "
                             f"{', '.join(LIFECYCLE_EVENTS)}")
        return self.body("lifecycle", {
            "plugin": {"id": text(plugin_id), "version": text(plugin_version)},
            "event": event, "detail": self._redactor.text(text(detail))})

    def policy_reload(self, ok: bool, version: str, error: str) -> dict:
        return self.body("policy_reload", {
            "ok": bool(ok), "policy_version": text(version),
            "error": self._redactor.text(text(error))})

    def plugin_reload(self, plugin_id: str, plugin_version: str, ok: bool, error: str) -> dict:
        return self.body("plugin_reload", {
            "plugin": {"id": text(plugin_id), "version": text(plugin_version)},
            "ok": bool(ok), "error": self._redactor.text(text(error))})

    def dropped(self, count: int, message: str) -> dict:
        return self.body("dropped", {"count": count, "message": message})

    def recovered(self, fragment: bytes) -> dict:
        return self.body("recovered", {
            "torn_bytes": len(fragment), "torn_sha256": hashlib.sha256(fragment).hexdigest(),
            "message": "the previous line is a record torn by a writer that died mid-write"})

    def rotated(self, file: int, removed_through: int) -> dict:
        return self.body("rotated", {
            "file": file, "removed_through": removed_through,
            "message": f"the previous records are in rotated file {file}"
                       + (f"; retention removed files 1..{removed_through}"
                          if removed_through else "")})


def _extra_fields(extra: dict) -> tuple[str, str, str, str]:
    """The ``extra`` fields as canonical JSON pieces for the four gaps of the triple."""
    gaps: dict[str, list[str]] = {"host": [], "message": [], "request": [], "time": []}
    for key in sorted(extra):
        if "hint" < key < "host":
            gaps["host"].append(key)
        elif "kind" < key < "message":
            gaps["message"].append(key)
        elif "prev" < key < "request":
            gaps["request"].append(key)
        elif "seq" < key < "time":
            gaps["time"].append(key)
        else:
            raise ValueError(f"decision field `{key}` cannot be added")
    host, message, request, time = ("".join(f"{_enc_str(k)}:{_enc(plain(extra[k]))}," for k in gaps[g])
                                    for g in ("host", "message", "request", "time"))
    return host, message, request, time
