"""Fixtures for the wasm sandbox tests (helpers in wasm_helpers.py)."""

from __future__ import annotations

import pytest
from wasm_helpers import World

from promptline.loaders._wasm import WasmLoader, WasmPlugin


@pytest.fixture(scope="session")
def wasm_loader(tmp_path_factory) -> WasmLoader:
    """One engine for the session, so the probe is compiled once."""
    return WasmLoader(cache_dir=tmp_path_factory.mktemp("wasm-cache") / "cache")


@pytest.fixture
def world(tmp_path, wasm_loader) -> World:
    w = World(tmp_path, wasm_loader)
    yield w
    for p in w.plugins:
        p.shutdown()


@pytest.fixture
def probe(world) -> WasmPlugin:
    return world.load()
