"""Hypothesis on the real socket: any line gets exactly one response that fits response.schema.json,
and the service keeps deciding correctly after it."""

from __future__ import annotations

import json
import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptline.loaders._service._protocol import validator

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
fields = st.sampled_from(["action", "plugin", "path", "host", "port", "scheme", "url", "name", "argv", "tool", "args",
                          "bogus"])
requests = st.dictionaries(fields, json_values | st.sampled_from(["fs.read", "/srv/secret", "tool.call"]), max_size=5)
messages = st.fixed_dictionaries(
    {}, optional={"v": st.sampled_from([1, 1, 1, 2, "1", None, 1.0]) | json_values,
                  "id": st.integers() | st.text(max_size=200) | json_values,
                  "method": st.sampled_from(["check", "explain", "audit", "load", "call_tool", "x"]) | json_values,
                  "params": st.fixed_dictionaries({}, optional={"plugin": st.text(max_size=10) | json_values,
                                                                "request": requests | json_values,
                                                                "tool": st.text(max_size=10), "args": json_values,
                                                                "limit": st.integers(), "what": json_values}),
                  "extra": json_values})
lines = (messages.map(lambda m: json.dumps(m).encode())
         | st.binary(max_size=300).map(lambda b: b.replace(b"\n", b""))
         | json_values.map(lambda v: json.dumps(v).encode()))

CONTROL = json.dumps({"v": 1, "id": "ctl", "method": "check",
                      "params": {"plugin": "demo", "request": {"action": "fs.read", "path": "/srv/secret/k"}}}).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(lines, min_size=1, max_size=4))
def test_any_line_gets_one_schema_valid_answer_and_the_service_survives(service, batch):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(20)
        s.connect(str(service["sock"]))
        f = s.makefile("rb")
        s.sendall(b"".join(line + b"\n" for line in batch) + CONTROL + b"\n")
        for line in batch:
            reply = json.loads(f.readline())
            validator("response").validate(reply)
            if "result" in reply:     # a valid request: its result fits its method's schema
                method = json.loads(line)["method"]
                validator(f"{method}.result").validate(reply["result"])
        control = json.loads(f.readline())
    assert control["id"] == "ctl" and control["result"]["verdict"] == "deny"
    assert service["proc"].poll() is None


@settings(max_examples=300, deadline=None)
@given(params=messages.map(lambda m: m.get("params", {})), method=st.sampled_from(
    ["check", "explain", "load", "call_tool", "audit"]))
def test_both_compilations_of_a_schema_agree(params, method):
    """The fast path (jsonschema-rs) and jsonschema judge every params object alike."""
    from promptline.loaders._service._protocol import _fast
    fast = _fast(f"{method}.params")
    if fast is None:
        return
    try:
        quick = fast.is_valid(params)
    except Exception:  # noqa: BLE001 - the server then asks jsonschema
        return
    assert quick == validator(f"{method}.params").is_valid(params), params
