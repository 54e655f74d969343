"""Loading wasm plugins: verified bytes, bad modules, the compiled-module cache, options."""

from __future__ import annotations

import os
import threading

import pytest
import wasmtime

from promptline.loaders._errors import LoaderError
from promptline.loaders._wasm import WasmLoader

EMPTY_START = '(module (memory (export "memory") 1) (func (export "_start")))'


def wat(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def test_loader_kind_and_no_side_effects_at_construction(tmp_path):
    before = threading.active_count()
    loader = WasmLoader(cache_dir=tmp_path / "c")
    assert loader.kind == "wasm"
    assert loader._runtime is None
    assert threading.active_count() == before
    assert not (tmp_path / "c").exists()


def test_tools_listed_with_schemas(probe):
    specs = {s.name: s for s in probe.tools()}
    assert {"read_file", "write_file", "get_env", "spin", "emit"} <= set(specs)
    assert specs["read_file"].parameters["required"] == ["path"]
    assert probe.sandbox == "wasm" and probe.id == "probe" and probe.version == "0.1.0"


# -- exactly the verified bytes ---------------------------------------------------------


def test_verified_bytes_are_loaded_not_the_file_on_disk(world):
    ctx = world.context()
    (ctx.plugin.wasm).write_bytes(b"\0asm garbage written after verification")
    plugin = world.loader.load(ctx)
    assert plugin.call_tool("echo", {"text": "verified"}).content == "verified"


def test_changed_file_on_disk_does_not_sneak_in(world):
    ctx = world.context(module=b"\0asm\x01\0\0\0 not the verified module")
    ctx.plugin.wasm.write_bytes((world.root / "plugins" / "probe" / "probe.wasm").read_bytes())
    with pytest.raises(LoaderError, match="not a valid WebAssembly module"):
        world.loader.load(ctx)


def test_module_missing_from_verified_files(world):
    from dataclasses import replace
    ctx = world.context()
    ctx = replace(ctx, files={"plugin.yaml": b""})
    with pytest.raises(LoaderError, match="not among the plugin's verified files"):
        world.loader.load(ctx)


def test_unverified_load_reads_the_file(world):
    plugin = world.loader.load(world.context(verified=False))
    assert plugin.call_tool("echo", {"text": "disk"}).ok


# -- bad modules -----------------------------------------------------------------------


@pytest.mark.parametrize("module, message", [
    (b"MZ not wasm at all", "not a WebAssembly binary"),
    (b"\0asm\x01\0\0\0\xff\xff", "not a valid WebAssembly module"),
    (wat('(module (import "env" "evil" (func)) (func (export "_start")))'), "imports `env.evil`"),
    (wat('(module (func (export "run")))'), "exports no `_start`"),
    (wat(EMPTY_START), "nothing on stdout"),
    (wat('(module (func (export "_start") unreachable))'), "trapped: unreachable"),
], ids=["not-wasm", "invalid", "foreign-import", "no-start", "silent", "trap-on-list"])
def test_bad_modules_refused_with_a_clear_error(world, module, message):
    with pytest.raises(LoaderError, match=message) as info:
        world.loader.load(world.context(module=module))
    assert "plugin `probe`" in str(info.value)


def test_module_needing_more_memory_than_the_limit(world):
    module = wat('(module (memory (export "memory") 1000) (func (export "_start")))')   # 62.5 MiB
    with pytest.raises(LoaderError, match="memory limit"):
        world.loader.load(world.context(module=module, options={"memory_bytes": 16 * 1024 * 1024}))


@pytest.mark.parametrize("options", [{"fuel": 0}, {"memory_bytes": -1}, {"fuel": "lots"}])
def test_bad_options(world, options):
    with pytest.raises((LoaderError, ValueError)):
        world.loader.load(world.context(options=options))


# -- the compiled-module cache ---------------------------------------------------------


@pytest.fixture(scope="session")
def filled_cache(tmp_path_factory):
    """A cache dir holding the compiled probe (compiling takes most of a second)."""
    from wasm_helpers import World
    root = tmp_path_factory.mktemp("filled")
    cache = root / "cache"
    (root / "w").mkdir()
    world = World(root / "w", WasmLoader(cache_dir=cache))
    world.load()
    return cache


@pytest.fixture
def cache(filled_cache, tmp_path):
    import shutil
    target = tmp_path / "cache"
    shutil.copytree(filled_cache, target)
    os.chmod(target, 0o700)
    return target


def _cache_files(directory):
    return sorted(p for p in directory.iterdir() if p.suffix == ".cwasm")


def test_memory_cache_shares_the_compiled_module(world):
    a, b = world.load(), world.load()
    assert a._compiled is b._compiled


def test_disk_cache_is_private_and_reused(world, cache, tmp_path):
    assert oct(os.stat(cache).st_mode & 0o777) == "0o700"
    (f,) = _cache_files(cache)
    assert oct(os.stat(f).st_mode & 0o777) == "0o600"
    loader = WasmLoader(cache_dir=cache)
    runtime = loader.runtime
    digest = f.name.split("-")[0]
    assert runtime._from_disk(digest) is not None
    assert loader.load(world.context()).call_tool("echo", {"text": "cached"}).content == "cached"


def test_tampered_cache_file_is_ignored(world, cache, tmp_path):
    (f,) = _cache_files(cache)
    blob = bytearray(f.read_bytes())
    blob[-100] ^= 0xFF
    f.write_bytes(bytes(blob))
    loader = WasmLoader(cache_dir=cache)
    assert loader.runtime._from_disk(f.name.split("-")[0]) is None
    assert loader.load(world.context()).call_tool("echo", {"text": "recompiled"}).ok


def test_cache_file_of_wrong_mode_or_symlink_is_ignored(world, cache, tmp_path):
    (f,) = _cache_files(cache)
    digest = f.name.split("-")[0]
    os.chmod(f, 0o644)
    assert WasmLoader(cache_dir=cache).runtime._from_disk(digest) is None
    os.chmod(f, 0o600)
    real = tmp_path / "elsewhere.cwasm"
    f.rename(real)
    f.symlink_to(real)
    assert WasmLoader(cache_dir=cache).runtime._from_disk(digest) is None


def test_shared_cache_dir_is_not_used(world, tmp_path):
    cache = tmp_path / "shared"
    cache.mkdir(mode=0o755)
    os.chmod(cache, 0o755)
    plugin = WasmLoader(cache_dir=cache).load(world.context())
    assert plugin.call_tool("echo", {"text": "x"}).ok
    assert _cache_files(cache) == []


def test_cache_disabled(world, tmp_path):
    plugin = WasmLoader(cache_dir=False).load(world.context())
    assert plugin.call_tool("echo", {"text": "x"}).ok


def test_cache_key_names_the_wasmtime_version(cache):
    """A different wasmtime (or engine setting) gives a different file name, never a stale
    artifact: the name is digest-fingerprint, the fingerprint hashing the version."""
    from promptline.loaders._wasm import _engine_fingerprint
    (f,) = _cache_files(cache)
    assert f.stem.endswith(_engine_fingerprint())
