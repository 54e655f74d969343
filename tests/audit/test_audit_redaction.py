"""Redaction: secrets never reach the file."""

from __future__ import annotations

import pytest
from audit_helpers import decision, records

from promptline.enforcer.audit import AuditLog, AuditSettings

SECRETS = {
    "url-credentials": ("https://alice:S3cr3tPassw0rd@db.example.com/x", "S3cr3tPassw0rd"),
    "url-token-user": ("https://ghtoken123456@github.com/org/repo", "ghtoken123456"),
    "bearer": ("Authorization: Bearer abc.def-ghi_jkl123", "abc.def-ghi_jkl123"),
    "github": ("cloned with ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "ghp_aBcDeFgHiJkL"),
    "aws": ("key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
    "openai": ("sk-proj-abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnopqrstuvwxyz"),
    "slack": ("xoxb-123456789012-abcdefghij", "xoxb-123456789012"),
    "jwt": ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
            "dozjgNryP4J3jVmNHl0w5N"),
    "query-token": ("https://api.example.com/v1?token=tok_live_998877&x=1", "tok_live_998877"),
    "password-kv": ("connect password=hunter2hunter2 host=db", "hunter2hunter2"),
    "pem": ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
            "-----END PRIVATE KEY-----", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
}


@pytest.mark.parametrize("text,secret", SECRETS.values(), ids=SECRETS.keys())
def test_secret_shapes_are_masked_everywhere(log_path, text, secret):
    d = decision("deny", errors=[text], hint=text)
    d["rules"][0]["message"] = text
    with AuditLog(log_path) as log:
        log.decision("p", "1", "net.connect", text, d, request={"url": text, "argv": [text]},
                     message=text)
        log.lifecycle("p", "1", "failed", text)
        log.policy_reload(False, "v1", text)
    data = open(log_path, "rb").read().decode()
    assert secret not in data
    assert "***" in data


def test_ordinary_text_is_left_alone(log_path):
    with AuditLog(log_path) as log:
        log.decision("p", "1", "fs.read", "/home/user/projects/notes_2024.md", decision(),
                     message="rule keys are off limits")
    (rec,) = records(log_path)
    assert rec["resource"] == "/home/user/projects/notes_2024.md"
    assert rec["message"] == "rule keys are off limits"


def test_secret_environment_values_are_masked(log_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_TOKEN", "zq9-very-private-value")
    monkeypatch.setenv("HOME_DIR_NAME", "zq9-not-a-secret")
    log = AuditLog(log_path)
    log.decision("p", "1", "process.exec", "deploy --with zq9-very-private-value", decision(),
                 request={"argv": ["deploy", "zq9-very-private-value"]})
    log.decision("p", "1", "fs.read", "/srv/zq9-not-a-secret", decision())
    log.close()
    data = open(log_path).read()
    assert "zq9-very-private-value" not in data
    assert "zq9-not-a-secret" in data


def test_env_write_values_are_masked(log_path):
    with AuditLog(log_path) as log:
        log.decision("p", "1", "env.write", "PATH", decision(),
                     request={"name": "PATH", "value": "/evil/bin:/usr/bin"})
    (rec,) = records(log_path)
    assert rec["request"] == {"name": "PATH", "value": "***"}


def test_secret_named_fields_and_policy_mask_fields(log_path):
    settings = AuditSettings(mask_fields=("query", "args.headers.x-tenant"))
    req = {"args": {"query": "select * from salaries", "password": "pw",
                    "headers": {"Authorization": "Basic Zm9vOmJhcg==", "X-Tenant": "acme",
                                "Accept": "json"}},
           "tool": "sql"}
    with AuditLog(log_path, settings) as log:
        log.decision("p", "1", "tool.call", "sql", decision(), request=req)
    (rec,) = records(log_path)
    args = rec["request"]["args"]
    assert args["query"] == "***" and args["password"] == "***"
    assert args["headers"] == {"Authorization": "***", "X-Tenant": "***", "Accept": "json"}
    assert rec["request"]["tool"] == "sql"


def test_foreign_objects_in_requests_are_never_called(log_path):
    called = []

    class Sneaky:
        def __repr__(self):
            called.append("repr")
            return "x"

        __str__ = __repr__

        def __fspath__(self):
            called.append("fspath")
            return "/x"

    with AuditLog(log_path) as log:
        log.decision("p", "1", "fs.read", "/a", decision(), request={"path": Sneaky(),
                                                                      "b": b"bytes\xff"})
    (rec,) = records(log_path)
    assert rec["request"] == {"path": "<Sneaky>", "b": "bytes\\xff"}
    assert called == []
