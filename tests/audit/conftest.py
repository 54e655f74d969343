"""Fixtures for the audit log tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def log_path(tmp_path):
    return str(tmp_path / "audit.jsonl")
