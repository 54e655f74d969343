"""What a wasm plugin can and cannot reach: files, environment, compute, memory, time, output.

Every check runs the C probe (fixtures/probe.c) inside the real wasmtime sandbox.
"""

from __future__ import annotations

import threading
import time

import pytest

WRITE_MODES = ["O_WRONLY", "O_RDWR", "O_WRONLY|O_CREAT", "O_RDONLY|O_CREAT", "O_RDONLY|O_TRUNC",
               "O_WRONLY|O_TRUNC", "O_RDWR|O_TRUNC", "O_WRONLY|O_APPEND", "O_RDWR|O_APPEND",
               "O_WRONLY|O_CREAT|O_TRUNC", "O_RDONLY|O_APPEND"]


def call(plugin, tool, **args):
    return plugin.call_tool(tool, args)


# -- files ---------------------------------------------------------------------------


def test_read_allowed_in_read_granted_dir(probe, world):
    r = call(probe, "read_file", path=str(world.ro / "a.txt"))
    assert r.ok, r.content
    assert r.content == "alpha"


def test_read_only_grant_is_preopened_read_only(probe, world):
    modes = {p.guest: p.writable for p in probe.preopens}
    assert modes == {str(world.ro): False, str(world.rw): True}


@pytest.mark.parametrize("flags", WRITE_MODES)
def test_every_write_mode_refused_in_read_only_dir(probe, world, flags):
    target = world.ro / "a.txt"
    r = call(probe, "open_file", path=str(target), flags=flags)
    assert "wrote" not in r.content, f"{flags} wrote to a file in a read-only preopen"
    if "O_WRONLY" in flags or "O_RDWR" in flags or "O_TRUNC" in flags or "O_CREAT" in flags:
        assert not r.ok, f"{flags} opened a file in a read-only preopen"
    assert target.read_text() == "alpha"            # not truncated, not appended to


@pytest.mark.parametrize("flags", ["O_WRONLY|O_CREAT", "O_RDWR|O_CREAT", "O_WRONLY|O_CREAT|O_EXCL",
                                   "O_RDONLY|O_CREAT"])
def test_create_refused_in_read_only_dir(probe, world, flags):
    r = call(probe, "open_file", path=str(world.ro / "new.txt"), flags=flags)
    assert not r.ok, r.content
    assert not (world.ro / "new.txt").exists()


def test_write_file_refused_in_read_only_dir(probe, world):
    r = call(probe, "write_file", path=str(world.ro / "a.txt"), text="overwritten")
    assert not r.ok
    assert (world.ro / "a.txt").read_text() == "alpha"


@pytest.mark.parametrize("flags", ["O_WRONLY", "O_RDWR|O_TRUNC", "O_WRONLY|O_APPEND"])
def test_write_modes_work_in_write_granted_dir(probe, world, flags):
    """The control for the refusals above: the same opens succeed where writing is granted."""
    r = call(probe, "open_file", path=str(world.rw / "b.txt"), flags=flags)
    assert r.ok and "wrote 1 byte" in r.content, r.content
    assert "X" in (world.rw / "b.txt").read_text()


def test_write_allowed_in_write_granted_dir(probe, world):
    r = call(probe, "write_file", path=str(world.rw / "new.txt"), text="hello wasm")
    assert r.ok, r.content
    assert (world.rw / "new.txt").read_text() == "hello wasm"


@pytest.mark.parametrize("how", ["absolute", "dotdot", "dotdot-from-rw", "symlink-file", "symlink-dir",
                                 "etc-passwd", "relative", "root"])
def test_reads_outside_preopens_refused(probe, world, how):
    path = {
        "absolute": str(world.outside / "secret.txt"),
        "dotdot": f"{world.ro}/../outside/secret.txt",
        "dotdot-from-rw": f"{world.rw}/../../{world.root.name}/outside/secret.txt",
        "symlink-file": str(world.ro / "link-out.txt"),
        "symlink-dir": str(world.ro / "link-dir" / "secret.txt"),
        "etc-passwd": "/etc/passwd",
        "relative": "outside/secret.txt",
        "root": "/",
    }[how]
    r = call(probe, "read_file", path=path)
    assert not r.ok, f"read {path}: {r.content!r}"
    assert "secret" not in r.content


@pytest.mark.parametrize("how", ["dotdot", "symlink-dir", "absolute"])
def test_writes_outside_preopens_refused(probe, world, how):
    path = {"dotdot": f"{world.rw}/../outside/new.txt",
            "symlink-dir": str(world.ro / "link-dir" / "new.txt"),
            "absolute": str(world.outside / "new.txt")}[how]
    r = call(probe, "write_file", path=path, text="escaped")
    assert not r.ok
    assert not (world.outside / "new.txt").exists()


def test_nothing_preopened_without_filesystem_grants(world):
    plugin = world.load({})
    assert plugin.preopens == ()
    assert not call(plugin, "read_file", path=str(world.ro / "a.txt")).ok


def test_policy_deny_on_directory_keeps_it_closed(world):
    rule = {"id": "no-ro", "effect": "deny", "actions": ["fs.read"], "when": f'within(request.path, "{world.ro}")'}
    plugin = world.load(rules=[rule])
    assert str(world.ro) not in {p.guest for p in plugin.preopens}
    assert any("refuses reading" in n for n in plugin.notes)
    assert not call(plugin, "read_file", path=str(world.ro / "a.txt")).ok


def test_policy_deny_inside_directory_keeps_whole_directory_closed(world):
    """WASI cannot hide one file of a preopened directory: the directory is left out."""
    (world.ro / "id_rsa").write_text("private key")
    rule = {"id": "no-keys", "effect": "deny", "actions": ["fs.read"],
            "when": f'request.path == "{world.ro}/id_rsa"'}
    plugin = world.load(rules=[rule])
    assert str(world.ro) not in {p.guest for p in plugin.preopens}
    assert not call(plugin, "read_file", path=str(world.ro / "id_rsa")).ok


def test_policy_write_deny_makes_directory_read_only(world):
    rule = {"id": "ro-only", "effect": "deny", "actions": ["fs.write"], "when": f'within(request.path, "{world.rw}")'}
    plugin = world.load(rules=[rule])
    assert {p.guest: p.writable for p in plugin.preopens}[str(world.rw)] is False
    assert not call(plugin, "write_file", path=str(world.rw / "b.txt"), text="x").ok
    assert call(plugin, "read_file", path=str(world.rw / "b.txt")).content == "beta"


def test_write_grant_covering_the_policy_file_is_refused_at_load(world):
    """An org policy inside a plugin's write grant is refused before any sandbox starts (a
    preopen or Landlock rule derived from the grant would let the module rewrite it)."""
    from promptline.policy import PolicyError
    caps = {"filesystem": {"read": [str(world.root)], "write": [str(world.root)]}}
    with pytest.raises(PolicyError, match="inside plugin `probe`'s write grant"):
        world.load(caps)
    assert world.load(world.caps())       # control: the usual grants load


def test_patterns_files_and_missing_dirs_are_not_preopened(world):
    caps = {"filesystem": {"read": [f"{world.ro}/*.txt", str(world.ro / "a.txt"), str(world.root / "nope")]}}
    plugin = world.load(caps)
    assert plugin.preopens == ()
    assert len(plugin.notes) == 3


# -- environment ---------------------------------------------------------------------


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("PL_TEST_GRANTED", "yes")
    monkeypatch.setenv("PL_TEST_PREFIX_ONE", "one")
    monkeypatch.setenv("PL_TEST_DENIED", "no")
    monkeypatch.setenv("PL_TEST_NOT_GRANTED", "hidden")


def test_env_granted_name_and_pattern(world, env):
    plugin = world.load()
    assert call(plugin, "get_env", name="PL_TEST_GRANTED").content == "yes"
    assert call(plugin, "get_env", name="PL_TEST_PREFIX_ONE").content == "one"


def test_env_not_granted_is_unset(world, env):
    plugin = world.load()
    for name in ("PL_TEST_NOT_GRANTED", "HOME", "PATH"):
        assert not call(plugin, "get_env", name=name).ok


def test_env_denied_by_policy_is_unset(world, env):
    rule = {"id": "no-denied", "effect": "deny", "actions": ["env.read"], "when": 'request.name == "PL_TEST_DENIED"'}
    plugin = world.load(rules=[rule])
    assert not call(plugin, "get_env", name="PL_TEST_DENIED").ok
    assert call(plugin, "get_env", name="PL_TEST_GRANTED").ok


def test_env_holds_exactly_the_allowed_names(world, env):
    rule = {"id": "no-denied", "effect": "deny", "actions": ["env.read"], "when": 'request.name == "PL_TEST_DENIED"'}
    plugin = world.load(rules=[rule])
    names = call(plugin, "env_names").content.split("\n")
    assert sorted(names) == ["PL_TEST_GRANTED", "PL_TEST_PREFIX_ONE"]
    assert plugin.env_names == ("PL_TEST_GRANTED", "PL_TEST_PREFIX_ONE")


# -- compute, memory, time -------------------------------------------------------------


def test_fuel_exhaustion_is_an_error_and_the_host_survives(world):
    plugin = world.load(options={"fuel": 20_000_000})
    r = call(plugin, "spin")
    assert not r.ok and r.error.kind == "timeout"
    assert "fuel" in r.content
    assert call(plugin, "echo", text="still here").content == "still here"


def test_wall_clock_timeout_interrupts_a_loop(world):
    plugin = world.load(options={"fuel": 10**15})
    t0 = time.monotonic()
    r = plugin.call_tool("spin", {}, timeout=0.3)
    elapsed = time.monotonic() - t0
    assert not r.ok and r.error.kind == "timeout"
    assert "0.3 s" in r.content
    assert elapsed < 3, elapsed
    assert call(plugin, "echo", text="after").ok


def test_timeouts_of_concurrent_calls_are_independent(world):
    plugin = world.load(options={"fuel": 10**15})
    results = {}

    def spin():
        results["spin"] = plugin.call_tool("spin", {}, timeout=0.5)

    t = threading.Thread(target=spin)
    t.start()
    echoes = [plugin.call_tool("echo", {"text": str(i)}, timeout=5) for i in range(50)]
    t.join(10)
    assert all(r.ok for r in echoes)
    assert results["spin"].error.kind == "timeout"


def test_memory_limit(world):
    plugin = world.load(options={"memory_bytes": 16 * 1024 * 1024})
    assert call(plugin, "alloc", mb=4).ok
    r = call(plugin, "alloc", mb=64)
    assert not r.ok and "out of memory" in r.content
    assert call(plugin, "alloc", mb=4).ok


def test_sleep_is_refused_not_blocking(probe):
    t0 = time.monotonic()
    r = call(probe, "sleep", ms=60_000)
    assert not r.ok
    assert time.monotonic() - t0 < 2


def test_each_call_starts_fresh(probe, world):
    assert call(probe, "write_file", path=str(world.rw / "x"), text="1").ok
    assert call(probe, "echo", text="a").content == "a"


# -- output ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["garbage", "empty", "two", "deep", "huge", "invalid-utf8"])
def test_malformed_output_is_an_error_result(probe, kind):
    r = call(probe, "emit", kind=kind)
    assert not r.ok
    assert r.error.kind == "malformed-result", r.content
    assert len(r.content) < 1000


def test_wrong_shape_is_a_malformed_result(probe):
    r = call(probe, "emit", kind="wrong-shape")
    assert not r.ok and r.error.kind == "malformed-result"


def test_stderr_is_capped_and_does_not_spoil_the_answer(probe):
    r = call(probe, "emit", kind="stderr")
    assert r.ok and r.content == "done"


def test_nonzero_exit_and_trap_are_errors(probe):
    r = call(probe, "exit", code=3)
    assert not r.ok and "status 3" in r.content
    r = call(probe, "trap")
    assert not r.ok and r.error.kind == "exception" and "unreachable" in r.content
    assert call(probe, "echo", text="ok").ok


def test_unicode_round_trip(probe):
    text = 'héllo "wörld" \\ \n tab\t €'
    assert call(probe, "echo", text=text).content == text


# -- calls -----------------------------------------------------------------------------


def test_unknown_tool_and_bad_arguments(probe):
    r = probe.call_tool("nope", {})
    assert not r.ok and "no tool `nope`" in r.content
    r = probe.call_tool("read_file", {})
    assert not r.ok and r.error.kind == "invalid-arguments" and r.error.field == "path"
    r = probe.call_tool("read_file", "not an object")
    assert not r.ok and r.error.kind == "invalid-arguments"


def test_oversized_arguments_refused(probe):
    r = probe.call_tool("echo", {"text": "x" * (5 * 1024 * 1024)})
    assert not r.ok and r.error.kind == "invalid-arguments"


def test_call_after_shutdown(probe):
    probe.shutdown()
    r = call(probe, "echo", text="x")
    assert not r.ok and r.error.kind == "unavailable"


def test_no_sockets(probe):
    """WASI preview1 cannot create sockets and none is handed over: the module's only
    imports are WASI preview1 functions, and its fds are stdio plus the preopens."""
    imports = {(i.module, i.name) for i in probe._compiled.module.imports}
    assert all(m == "wasi_snapshot_preview1" for m, _ in imports)
    assert not any(n.startswith("sock_open") or n == "sock_connect" for _, n in imports)
