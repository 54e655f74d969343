"""Fixtures for the process-sandbox tests: real children, real Landlock and seccomp."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from promptline.loaders._process import landlock_abi  # noqa: E402

if not sys.platform.startswith("linux") or landlock_abi() < 4:
    pytest.skip("the process sandbox tests need Linux with Landlock ABI >= 4", allow_module_level=True)
