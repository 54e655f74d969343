"""Suite-wide settings. In CI (CI=true) hypothesis runs derandomized, so a run is repeatable;
locally it explores new examples each time."""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _default_audit_log(tmp_path_factory, monkeypatch):
    """Commands that write the audit log to its default place write to a temporary one in
    tests, never to the user's state directory (a test may still set its own)."""
    if "PROMPTLINE_AUDIT_LOG" not in os.environ:
        monkeypatch.setenv("PROMPTLINE_AUDIT_LOG", str(tmp_path_factory.mktemp("audit") / "audit.jsonl"))
