"""A client in another language (Node, plain `net`) drives the decision service."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from promptline.loaders._service._protocol import validator

NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_a_node_client_gets_the_same_decisions(service):
    out = subprocess.run([NODE, str(Path(__file__).with_name("node_client.mjs")), str(service["sock"])],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    replies = json.loads(out.stdout)
    for r in replies:
        validator("response").validate(r)
    deny, allow, explain, tool, v2, garbage, audit = replies
    assert deny["id"] == 1 and deny["result"]["verdict"] == "deny" and deny["result"]["rules"][0]["id"] == "no-secrets"
    assert allow["result"]["verdict"] == "allow"
    assert [r["id"] for r in explain["result"]["rules"] if r["matched"]] == ["no-secrets"]
    assert tool["result"] == {"ok": True, "content": "from node"}
    assert v2["id"] == 5 and v2["error"]["code"] == "unsupported-version"
    assert garbage["error"]["code"] == "parse-error"
    assert audit["result"]["records"][-1]["resource"] == "/srv/secret/key"
