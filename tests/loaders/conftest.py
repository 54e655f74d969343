"""Fixtures for the loaders tests: keys and small plugin trees."""

from __future__ import annotations

from pathlib import Path

import pytest
from loader_helpers import make_plugin

from promptline.loaders._signing import generate_key


@pytest.fixture(scope="session")
def keypair(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("keys") / "publisher.pem"
    return path, generate_key(path)


@pytest.fixture(scope="session")
def other_keypair(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("keys2") / "other.pem"
    return path, generate_key(path)


@pytest.fixture
def plugin_dir(tmp_path) -> Path:
    return make_plugin(tmp_path / "plugins")
