"""The ``wasm`` sandbox: WASI (preview1) modules run by wasmtime (docs/design.md §7).

This is the only module that imports wasmtime. A plugin is a WASI command module. Each
call runs a fresh instance of the compiled module: one JSON request on stdin, one JSON
response on stdout, then the instance is dropped (no state survives between calls)::

    {"method": "tools/list"}
        -> {"tools": [{"name": ..., "description": ..., "inputSchema": {...}}]}
    {"method": "tools/call", "params": {"name": ..., "arguments": {...}}}
        -> {"ok": true, "content": "...", "data": ...}     (ToolResult.to_dict form)
        |  {"ok": false, "content": "...", "error": {"kind": "failed", "message": "..."}}

What the module can reach is decided once, at load:

- files: each ``capabilities.filesystem`` directory the policy allows becomes a WASI
  preopen at the same path inside the guest (guest path = host path, so a plugin opens
  ``/home/me/notes/a.txt`` as it would natively). A directory granted only ``read`` is
  preopened READ-ONLY (wasmtime's Python API opens preopens writable unless told
  otherwise; this module always says which); ``write`` grants are read-write. Globs, plain
  files and missing directories cannot be preopened and are left out, with a note in
  ``WasmPlugin.notes``. The guest cannot leave a preopen (``..``, absolute paths and
  symlinks pointing outside are refused by wasmtime). The policy is asked about each
  directory and about what lies directly in it: a directory holding something the policy
  refuses (say ``~/.ssh`` under a ``~`` grant, or a policy file under a write grant) is
  not preopened (or only read-only), since WASI cannot hide part of a directory;
- environment: only variables the manifest names (exact names, ``PREFIX_*`` patterns)
  that are set in the host and that the enforcer allows (``env.read``) — a snapshot taken
  at load;
- no sockets (WASI preview1 has none and none is handed over), no host stdio, no argv
  beyond the module's name, and no sleeping: ``poll_oneoff`` is refused so a call cannot
  block the host thread where the epoch timer cannot reach it;
- fuel (compute), linear memory, and wall-clock time (epoch interruption, one shared
  timer thread that runs only while calls are in flight) are limited per call;
- stdio goes only through wasmtime's public API: stdin is the request in a private file,
  stdout and stderr are FIFOs drained by one host thread per runtime (capped), and each
  call's store is closed on the calling thread. No Python callback runs on wasmtime's own
  threads: they outlive a trapped call, and a callback into a finalizing interpreter
  aborted the host at exit (Rust panic, exit 134). A module may only offer tools
  (``types: [tool]``); anything else is refused at load.

Compiled modules are cached in memory by the SHA-256 of the module's bytes and on disk
(``Module.serialize``) in a private (0700) directory, keyed by that digest, the wasmtime
version and the engine settings; a cache file is deserialized only if this user wrote it
(owner, mode 0600, not a symlink) and its checksum matches. When the manager passes the
verified bytes (``LoadContext.files``), exactly those bytes are compiled.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import importlib.metadata
import inspect
import json
import logging
import math
import os
import platform
import selectors
import shutil
import stat
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import wasmtime

from promptline.policy import Request
from promptline.sdk import (
    TOOL_NAME,
    ToolResult,
    ToolSpec,
    coerce_result,
    compiled_validator,
    schema_key,
    validate_arguments,
)

from ._errors import LoaderError, ToolError
from ._loader import DEFAULT_CALL_TIMEOUT, LoadContext, LoadedPlugin

log = logging.getLogger("promptline.loaders.wasm")

# -- limits (per call unless said otherwise) ---------------------------------------------
DEFAULT_FUEL = 2_000_000_000             # wasmtime fuel units (~1 per instruction): ~1-3 s of compute
DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024  # linear memory a call may grow to
DEFAULT_LIST_TIMEOUT = 10.0              # seconds for the `tools/list` call made at load
MAX_STDOUT_BYTES = 16 * 1024 * 1024      # a response longer than this is an error (content cap is 8 Mi chars)
MAX_STDERR_BYTES = 64 * 1024             # stderr kept per call (for error messages and the log)
MAX_REQUEST_BYTES = 4 * 1024 * 1024      # a request larger than this is refused before the call
MAX_MODULE_BYTES = 64 * 1024 * 1024      # a bigger .wasm is refused at load
MAX_TOOLS = 256                          # tools one module may list
MAX_INSTANCES = 4                        # wasm instances/tables/memories one call may create
MAX_PROBE_ENTRIES = 1_000                # entries looked at directly inside a granted directory
EPOCH_TICK = 0.01                        # seconds between epoch increments (timeout resolution)
TICKER_LINGER = 2.0                      # seconds the epoch timer outlives the last call
STDIO_DRAIN_TIMEOUT = 5.0                # seconds to wait for a finished call's stdio to close
STDERR_IN_ERRORS = 400                   # characters of stderr quoted in an error result
CACHE_MAGIC = b"promptline-cwasm-1\n"    # header of a disk cache file, then sha256(payload), then payload

WASI_MODULE = "wasi_snapshot_preview1"
_WASI_ENOSYS = 52                        # WASI errno: function not supported


@dataclass(frozen=True)
class Preopen:
    """A directory the guest can open: ``host`` on disk, seen as ``guest`` inside."""

    host: str
    guest: str
    writable: bool


# ---------------------------------------------------------------------------------------
# The loader


class WasmLoader:
    """Loads ``sandbox: wasm`` plugins. One engine (and compiled-module cache) per loader.

    ``cache_dir``: where compiled modules are kept (None: the user cache dir; False: no
    disk cache). ``fuel``, ``memory_bytes``, ``max_output_bytes``: defaults for every
    plugin, which ``LoadContext.options`` (same keys) may override per plugin.
    """

    kind = "wasm"

    def __init__(self, *, cache_dir: str | os.PathLike | None | bool = None,
                 fuel: int = DEFAULT_FUEL, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                 max_output_bytes: int = MAX_STDOUT_BYTES) -> None:
        _check_limits(fuel, memory_bytes, max_output_bytes)
        self.fuel = fuel
        self.memory_bytes = memory_bytes
        self.max_output_bytes = max_output_bytes
        if cache_dir is None:
            import platformdirs
            cache_dir = Path(platformdirs.user_cache_dir("promptline")) / "wasm"
        self.cache_dir = Path(cache_dir) if cache_dir not in (False, True) else None
        self._runtime: _Runtime | None = None
        self._lock = threading.Lock()

    @property
    def runtime(self) -> _Runtime:
        with self._lock:   # created on first use: no engine or thread at construction
            if self._runtime is None:
                self._runtime = _Runtime(self.cache_dir)
            return self._runtime

    def load(self, ctx: LoadContext) -> WasmPlugin:
        plugin = ctx.plugin
        pid = plugin.id
        manifest = getattr(ctx.info, "manifest", None) or plugin.manifest
        options = dict(ctx.options or {})
        fuel = int(options.get("fuel", self.fuel))
        memory = int(options.get("memory_bytes", self.memory_bytes))
        limits = getattr(ctx.info, "limits", None)
        if limits is not None and (manifest.limits.memory is not None or "memory" in limits.capped):
            memory = min(memory, limits.memory) if "memory_bytes" in options else limits.memory
        max_output = int(options.get("max_output_bytes", self.max_output_bytes))
        try:
            _check_limits(fuel, memory, max_output)
        except ValueError as exc:
            raise LoaderError(f"bad wasm options: {exc}", plugin=pid, fix="fix the loader options") from None
        other = [t for t in manifest.types if t != "tool"]
        if other:
            raise LoaderError(f"a wasm plugin can only offer tools, but plugin.yaml declares types "
                              f"{', '.join(f'`{t}`' for t in other)}", plugin=pid,
                              fix="set `types: [tool]`, or use `entry: {python: ...}` for model, prompt "
                                  "and context plugins")
        name, data = _module_bytes(ctx, manifest)
        runtime = self.runtime
        compiled = runtime.compiled(data, plugin=pid, name=name)
        notes: list[str] = []
        preopens = _preopens(ctx, manifest, notes)
        env = _environment(ctx, manifest)
        instance = WasmPlugin(pid, manifest.version, runtime, compiled, name=name,
                              preopens=preopens, env=env, fuel=fuel, memory_bytes=memory,
                              max_output_bytes=max_output, notes=notes)
        timeout = float(options.get("list_timeout", DEFAULT_LIST_TIMEOUT))
        instance._list_tools(timeout)
        for note in notes:
            log.warning("plugin `%s`: %s", pid, note)
        return instance


def _check_limits(fuel: int, memory: int, max_output: int) -> None:
    for what, value in (("fuel", fuel), ("memory_bytes", memory), ("max_output_bytes", max_output)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"`{what}` must be a positive integer, got `{value!r}`")


# ---------------------------------------------------------------------------------------
# A loaded plugin


class WasmPlugin(LoadedPlugin):
    """A wasm plugin: its compiled module and what each call may reach."""

    sandbox = "wasm"

    def __init__(self, plugin_id: str, version: str, runtime: _Runtime, compiled: _Compiled, *,
                 name: str, preopens: Sequence[Preopen], env: Sequence[tuple[str, str]],
                 fuel: int, memory_bytes: int, max_output_bytes: int, notes: Sequence[str] = ()) -> None:
        self.id = plugin_id
        self.version = version
        self.module_name = name
        self.digest = compiled.digest
        self.preopens = tuple(preopens)
        self.env_names = tuple(n for n, _ in env)
        self.fuel = fuel
        self.memory_bytes = memory_bytes
        self.max_output_bytes = max_output_bytes
        self.notes = tuple(notes)
        self._env = tuple(env)
        self._runtime = runtime
        self._compiled = compiled
        self._specs: dict[str, ToolSpec] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"<WasmPlugin {self.id} {self.version} {self.module_name} tools={len(self._specs)}>"

    # -- LoadedPlugin -----------------------------------------------------------------

    def tools(self) -> Sequence[ToolSpec]:
        return tuple(self._specs.values())

    def call_tool(self, name: str, args: dict, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> ToolResult:
        try:
            return self._call_tool(name, args, timeout)
        except Exception as exc:  # noqa: BLE001 - never raise into the host; a bug here is an error result
            log.exception("plugin `%s`: wasm call of `%s` failed", self.id, name)
            return _failure(name, f"the wasm host failed: {_clip(str(exc) or type(exc).__name__, 200)}",
                            "exception")

    def shutdown(self) -> None:
        self._closed = True

    # -- internals ----------------------------------------------------------------------

    def _call_tool(self, name: str, args: Any, timeout: float) -> ToolResult:
        if self._closed:
            return _failure(name, "the plugin was shut down", "unavailable")
        spec = self._specs.get(name)
        if spec is None:
            return _failure(name, f"plugin `{self.id}` has no tool `{_clip(str(name), 64)}`", "invalid-arguments")
        try:
            clean = validate_arguments(_SchemaTool(spec), args)
        except ToolError as exc:
            return ToolResult(False, exc.message, None, exc)
        request = _encode({"method": "tools/call", "params": {"name": name, "arguments": clean}})
        if request is None or len(request) > MAX_REQUEST_BYTES:
            return _failure(name, f"arguments exceed {MAX_REQUEST_BYTES} bytes of JSON", "invalid-arguments")
        run = self._run(request, timeout)
        if run.error is not None:
            return _failure(name, run.error, run.kind, retryable=run.kind == "timeout" and not run.fuel_out)
        value, problem = _parse(run.stdout, self.max_output_bytes)
        if problem is not None:
            return _failure(name, f"returned a malformed response: {problem}{_stderr_tail(run.stderr)}",
                            "malformed-result")
        return coerce_result(value, tool=name)

    def _list_tools(self, timeout: float) -> None:
        run = self._run(_encode({"method": "tools/list"}) or b"", timeout)
        if run.error is not None:
            raise LoaderError(f"module `{self.module_name}` failed to list its tools: {run.error}", plugin=self.id,
                              fix="run the module by hand with `{\"method\": \"tools/list\"}` on stdin")
        value, problem = _parse(run.stdout, self.max_output_bytes)
        if problem is None and not (isinstance(value, dict) and isinstance(value.get("tools"), list)):
            problem = "expected an object with a `tools` list"
        if problem is not None:
            raise LoaderError(f"module `{self.module_name}` answered `tools/list` with a malformed response: "
                              f"{problem}", plugin=self.id, fix="print `{\"tools\": [...]}` on stdout")
        tools = value["tools"]
        if len(tools) > MAX_TOOLS:
            raise LoaderError(f"module `{self.module_name}` lists {len(tools)} tools, more than {MAX_TOOLS}",
                              plugin=self.id, fix="split the plugin")
        specs: dict[str, ToolSpec] = {}
        for i, entry in enumerate(tools):
            spec = _tool_spec(entry, i, self.id, self.module_name)
            if spec.name in specs:
                raise LoaderError(f"module `{self.module_name}` lists tool `{spec.name}` twice", plugin=self.id,
                                  fix="give each tool its own name")
            specs[spec.name] = spec
        self._specs = specs

    def _run(self, request: bytes, timeout: float) -> _Run:
        return self._runtime.run(self._compiled, request, timeout=timeout, fuel=self.fuel,
                                 memory_bytes=self.memory_bytes, max_output=self.max_output_bytes,
                                 preopens=self.preopens, env=self._env, argv=(self.module_name,))


class _SchemaTool:
    """Enough of a Tool for ``validate_arguments``: a name and a parameter schema."""

    __slots__ = ("name", "parameters")

    def __init__(self, spec: ToolSpec) -> None:
        self.name = spec.name
        self.parameters = spec.parameters


def _tool_spec(entry: Any, index: int, plugin: str, module: str) -> ToolSpec:
    where = f"module `{module}`: tool #{index}"
    if not isinstance(entry, dict):
        raise LoaderError(f"{where} is not an object", plugin=plugin, fix="list tools as objects")
    name = entry.get("name")
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise LoaderError(f"{where} has name `{_clip(repr(name), 70)}`", plugin=plugin,
                          fix="use 1-64 of letters, digits, `_.-`")
    description = entry.get("description", "")
    schema = entry.get("inputSchema", {"type": "object", "properties": {}})
    if not isinstance(description, str):
        raise LoaderError(f"{where} (`{name}`): description is not a string", plugin=plugin, fix="use a string")
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise LoaderError(f"{where} (`{name}`): inputSchema must describe an object", plugin=plugin,
                          fix='use `{"type": "object", "properties": {...}}`')
    try:
        compiled_validator(schema_key(schema))   # checks the schema; compiled once per distinct schema
    except (TypeError, ValueError) as exc:
        detail = str(exc)
        raise LoaderError(f"{where} (`{name}`): inputSchema is not a valid JSON Schema: {_clip(detail, 200)}",
                          plugin=plugin, fix="fix the schema (see https://json-schema.org)") from None
    return ToolSpec(name, description, MappingProxyType(schema))


# ---------------------------------------------------------------------------------------
# The engine, compiled modules, the epoch timer and one call


@dataclass(frozen=True)
class _Compiled:
    digest: str
    module: Any            # wasmtime.Module
    pre: Any               # wasmtime.InstancePre: imports resolved once


@dataclass
class _Run:
    stdout: bytes = b""
    stderr: bytes = b""
    error: str | None = None       # set when the call did not finish normally
    kind: str = "failed"           # ToolError kind for ``error``
    fuel_out: bool = False


class _Runtime:
    """One wasmtime engine (fuel and epoch interruption on), its linker, the module caches
    and the epoch timer."""

    def __init__(self, cache_dir: Path | None) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()
        self.linker.allow_shadowing = True
        i32 = wasmtime.ValType.i32()
        self.linker.define_func(WASI_MODULE, "poll_oneoff", wasmtime.FuncType([i32] * 4, [i32]),
                                _refuse_poll)
        self.linker.allow_shadowing = False
        self.cache_dir = cache_dir
        self.fingerprint = _engine_fingerprint()
        self._modules: dict[str, _Compiled] = {}
        self._lock = threading.Lock()
        self._ticker = _EpochTicker(self.engine)
        self.io_dir = tempfile.mkdtemp(prefix="promptline-wasm-io-")   # 0700: the calls' stdio
        self._pump = _Pump()
        weakref.finalize(self, shutil.rmtree, self.io_dir, True)

    # -- compiling ----------------------------------------------------------------------

    def compiled(self, data: bytes, *, plugin: str, name: str) -> _Compiled:
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            hit = self._modules.get(digest)
        if hit is not None:
            return hit
        module = self._from_disk(digest)
        if module is None:
            try:
                module = wasmtime.Module(self.engine, data)
            except wasmtime.WasmtimeError as exc:
                raise LoaderError(f"`{name}` is not a valid WebAssembly module: {_first_line(exc)}", plugin=plugin,
                                  fix="rebuild it for wasm32-wasi") from None
            self._to_disk(digest, module)
        _check_interface(module, plugin, name)
        try:
            pre = self.linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise LoaderError(f"module `{name}` cannot be linked: {_first_line(exc)}", plugin=plugin,
                              fix=f"import only `{WASI_MODULE}` functions") from None
        compiled = _Compiled(digest, module, pre)
        with self._lock:
            return self._modules.setdefault(digest, compiled)

    def _cache_path(self, digest: str) -> Path | None:
        if self.cache_dir is None or not _private_dir(self.cache_dir):
            return None
        return self.cache_dir / f"{digest}-{self.fingerprint}.cwasm"

    def _from_disk(self, digest: str) -> Any:
        path = self._cache_path(digest)
        if path is None:
            return None
        payload = _read_private(path)
        if payload is None:
            return None
        try:
            return wasmtime.Module.deserialize(self.engine, payload)
        except wasmtime.WasmtimeError as exc:
            log.warning("ignoring wasm cache file %s: %s", path, _first_line(exc))
            return None

    def _to_disk(self, digest: str, module: Any) -> None:
        path = self._cache_path(digest)
        if path is None:
            return
        try:
            payload = bytes(module.serialize())
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".cwasm")   # mode 0600
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(CACHE_MAGIC + hashlib.sha256(payload).digest() + payload)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except (OSError, wasmtime.WasmtimeError) as exc:   # a cache that cannot be written costs speed only
            log.warning("cannot write wasm cache file %s: %s", path, exc)

    # -- one call -----------------------------------------------------------------------

    def run(self, compiled: _Compiled, request: bytes, *, timeout: float, fuel: int, memory_bytes: int,
            max_output: int, preopens: Sequence[Preopen], env: Sequence[tuple[str, str]],
            argv: Sequence[str]) -> _Run:
        wasi = wasmtime.WasiConfig()
        wasi.argv = list(argv)
        wasi.env = [list(pair) for pair in env]
        for p in preopens:
            _preopen(wasi, p)
        with _Stdio(self.io_dir, self._pump, request, max_output) as io:
            io.attach(wasi)
            return self._run_in(compiled, wasi, io, timeout=timeout, fuel=fuel, memory_bytes=memory_bytes,
                                max_output=max_output)

    def _run_in(self, compiled: _Compiled, wasi: Any, io: _Stdio, *, timeout: float, fuel: int,
                memory_bytes: int, max_output: int) -> _Run:
        out, err = io.out, io.err
        store = wasmtime.Store(self.engine)
        store.set_wasi(wasi)
        store.set_fuel(fuel)
        store.set_limits(memory_size=memory_bytes, instances=MAX_INSTANCES, tables=MAX_INSTANCES,
                         memories=MAX_INSTANCES)
        timeout = timeout if timeout is not None and timeout > 0 else DEFAULT_CALL_TIMEOUT
        store.set_epoch_deadline(max(1, math.ceil(timeout / EPOCH_TICK)))
        run = _Run()
        with self._ticker.running():
            try:
                instance = compiled.pre.instantiate(store)
                start = instance.exports(store)["_start"]
                start(store)
            except wasmtime.ExitTrap as exc:
                if exc.code != 0:
                    run.error = f"the module exited with status {exc.code}{_stderr_tail(err.data)}"
            except wasmtime.Trap as exc:
                code = exc.trap_code
                if code == wasmtime.TrapCode.OUT_OF_FUEL:
                    run.error, run.kind, run.fuel_out = (f"used up its fuel ({fuel} units) — the call needs more "
                                                         "compute than allowed"), "timeout", True
                elif code == wasmtime.TrapCode.INTERRUPT:
                    run.error, run.kind = f"did not answer within {timeout:g} s", "timeout"
                else:
                    what = code.name.lower().replace("_", " ") if code is not None else _first_line(exc)
                    run.error, run.kind = f"trapped: {what}{_stderr_tail(err.data)}", "exception"
            except wasmtime.WasmtimeError as exc:
                text = _first_line(exc)
                if "memory" in text and ("limit" in text or "grow" in text or "minimum" in text):
                    text = f"needs more than the memory limit of {memory_bytes} bytes ({text})"
                run.error = f"could not be started: {text}"
        store.close()    # frees the store now, on this thread: the guest's stdio ends close
        io.finish()
        if out.overflow:
            run.error, run.kind = f"wrote more than {max_output} bytes to stdout", "malformed-result"
        run.stdout, run.stderr = bytes(out.data), bytes(err.data)
        if run.stderr:
            log.debug("wasm stderr: %s", _clip(run.stderr.decode("utf-8", "replace"), 2000))
        return run


def _refuse_poll(*_args: Any) -> int:
    """``poll_oneoff`` (sleep, wait on clocks): refused, so a call never blocks the host."""
    return _WASI_ENOSYS


class _EpochTicker:
    """Increments the engine's epoch every EPOCH_TICK while calls run (and TICKER_LINGER
    after), so each store's epoch deadline becomes a wall-clock timeout. Started on demand:
    constructing a loader starts no thread."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._active = 0
        self._last = 0.0
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with self._lock:
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="promptline-wasm-epoch", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                self._last = time.monotonic()

    def _loop(self) -> None:
        while True:
            time.sleep(EPOCH_TICK)
            self._engine.increment_epoch()
            with self._lock:
                if self._active == 0 and time.monotonic() - self._last > TICKER_LINGER:
                    self._thread = None
                    return


class _Capture:
    """One WASI output stream: a FIFO whose read end the runtime's :class:`_Pump` drains,
    kept up to ``limit`` bytes. Past the limit stdout is drained and dropped (the call
    becomes an error); stderr keeps its start. No Python callback ever runs on wasmtime's
    threads (those outlived a trapped call and crashed the interpreter at exit with a Rust
    panic, exit 134)."""

    __slots__ = ("data", "limit", "overflow", "truncate", "path", "fd", "done")

    def __init__(self, directory: str, name: str, limit: int, *, truncate: bool = False) -> None:
        self.data = bytearray()
        self.limit = limit
        self.overflow = False
        self.truncate = truncate
        self.done = threading.Event()
        self.path = os.path.join(directory, f"{name}-{threading.get_ident()}-{time.monotonic_ns()}")
        os.mkfifo(self.path, 0o600)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    def take(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if len(chunk) <= room:
            self.data += chunk
            return
        self.overflow = True
        if self.truncate and room > 0:
            self.data += chunk[:room]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.close(self.fd)


class _Pump:
    """One host thread per runtime draining every running call's stdout/stderr FIFOs."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._new: list[_Capture] = []
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None

    def add(self, cap: _Capture) -> None:
        with self._lock:
            self._new.append(cap)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="promptline-wasm-stdio", daemon=True)
                self._thread.start()
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def _loop(self) -> None:
        while True:
            for key, _ in self._sel.select():
                cap = key.data
                if cap is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    with self._lock:
                        new, self._new = self._new, []
                    for c in new:
                        self._sel.register(c.fd, selectors.EVENT_READ, c)
                    continue
                try:
                    chunk = os.read(cap.fd, 1 << 16)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    cap.take(chunk)
                else:                       # every writer closed: the call's stream is complete
                    self._sel.unregister(cap.fd)
                    cap.done.set()


class _Stdio:
    """A call's stdin (the request, in a private file) and stdout/stderr (FIFOs), through
    wasmtime's public ``WasiConfig.stdin_file/stdout_file/stderr_file``."""

    def __init__(self, directory: str, pump: _Pump, request: bytes, max_output: int) -> None:
        self.directory = directory
        self.pump = pump
        self.request = request
        self.max_output = max_output
        self.stdin_path = ""
        self.caps: list[_Capture] = []

    def __enter__(self) -> _Stdio:
        fd, self.stdin_path = tempfile.mkstemp(dir=self.directory, prefix="in-")   # mode 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(self.request)
        self.out = _Capture(self.directory, "out", self.max_output)
        self.caps.append(self.out)
        self.err = _Capture(self.directory, "err", MAX_STDERR_BYTES, truncate=True)
        self.caps.append(self.err)
        return self

    def attach(self, wasi: Any) -> None:
        wasi.stdin_file = self.stdin_path
        wasi.stdout_file = self.out.path
        wasi.stderr_file = self.err.path
        for cap in self.caps:
            os.unlink(cap.path)        # both ends are open: the names are no longer needed
            self.pump.add(cap)

    def finish(self) -> None:
        """Wait for the guest's ends to close (the store is gone), then the data is whole."""
        for cap in self.caps:
            if not cap.done.wait(STDIO_DRAIN_TIMEOUT):
                log.warning("wasm stdio did not close within %s s", STDIO_DRAIN_TIMEOUT)

    def __exit__(self, *exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.stdin_path)
        for cap in self.caps:
            if cap.done.is_set():
                cap.close()
            # else: the pump still holds it; closing under the selector would race (a leak of one fd)


def _preopen_style() -> str:
    params = inspect.signature(wasmtime.WasiConfig.preopen_dir).parameters
    if "fs_mutable" in params:
        return "fs_mutable"
    if "dir_perms" in params and hasattr(wasmtime, "DirPerms"):
        return "perms"
    return "none"


_PREOPEN_STYLE = _preopen_style()


def _preopen(wasi: Any, p: Preopen) -> None:
    """Preopen ``p`` with its permissions said out loud: wasmtime defaults to writable."""
    if _PREOPEN_STYLE == "fs_mutable":
        wasi.preopen_dir(p.host, p.guest, fs_mutable=p.writable)
    elif _PREOPEN_STYLE == "perms":
        dp, fp = wasmtime.DirPerms, wasmtime.FilePerms   # type: ignore[attr-defined]
        wasi.preopen_dir(p.host, p.guest, dir_perms=dp.READ_WRITE if p.writable else dp.READ_ONLY,
                         file_perms=fp.READ_WRITE if p.writable else fp.READ_ONLY)
    else:   # this wasmtime cannot open a directory read-only: refuse rather than grant writes
        raise LoaderError("this wasmtime cannot preopen a directory read-only",
                          fix="upgrade wasmtime (pip install -U wasmtime)")


# ---------------------------------------------------------------------------------------
# What a plugin gets: module bytes, preopens, environment


def _module_bytes(ctx: LoadContext, manifest: Any) -> tuple[str, bytes]:
    plugin = ctx.plugin
    path = plugin.wasm or (Path(plugin.root) / manifest.entry.wasm if manifest.entry.wasm else None)
    if path is None:
        raise LoaderError("the manifest has no `entry.wasm`", plugin=plugin.id, fix="set `entry: {wasm: plugin.wasm}`")
    path = Path(path)
    try:
        rel = PurePosixPath(Path(os.path.abspath(path)).relative_to(os.path.abspath(plugin.root))).as_posix()
    except ValueError:
        rel = None
    if ctx.files is not None:
        data = ctx.files.get(rel) if rel is not None else None
        if data is None:
            raise LoaderError(f"module `{path}` is not among the plugin's verified files", plugin=plugin.id,
                              fix="keep the .wasm inside the plugin directory and sign the tree again")
        data = bytes(data)
    else:
        try:
            if path.stat().st_size > MAX_MODULE_BYTES:
                raise LoaderError(f"module `{path}` is larger than {MAX_MODULE_BYTES} bytes", plugin=plugin.id,
                                  fix="make the module smaller")
            data = path.read_bytes()
        except OSError as exc:
            raise LoaderError(f"cannot read module `{path}`: {exc.strerror or exc}", plugin=plugin.id,
                              fix="check the path in `entry.wasm`") from None
    if len(data) > MAX_MODULE_BYTES:
        raise LoaderError(f"module `{path}` is larger than {MAX_MODULE_BYTES} bytes", plugin=plugin.id,
                          fix="make the module smaller")
    if data[:4] != b"\0asm":
        raise LoaderError(f"`{path}` is not a WebAssembly binary (no `\\0asm` header)", plugin=plugin.id,
                          fix="point `entry.wasm` at the compiled .wasm module")
    return rel or path.name, data


def _decide(ctx: LoadContext, request: Request, *, quiet: bool = False) -> bool:
    """Ask the policy. ``quiet`` decides without prompting or logging (probes of what lies
    inside a granted directory); an `ask` then counts as a refusal."""
    pid = ctx.plugin.id
    enforcer = ctx.enforcer
    if enforcer is None:
        return False
    try:
        if quiet:
            policy_set = enforcer.policy_set
            return bool(policy_set.decide(request).allowed)
        return bool(enforcer.check(pid, request).allowed)
    except Exception:  # noqa: BLE001 - a failing decision is a refusal (fail closed)
        log.exception("plugin `%s`: deciding %s failed", pid, request.action)
        return False


def _preopens(ctx: LoadContext, manifest: Any, notes: list[str]) -> tuple[Preopen, ...]:
    """Directories the guest may open, from the manifest's filesystem capabilities as the
    policy allows them. Anything that cannot be honoured exactly is left out (narrower)."""
    pid = ctx.plugin.id
    fs = manifest.capabilities.filesystem
    wanted: dict[str, bool] = {}   # guest path -> writable
    for entries, writable in ((fs.read, False), (fs.write, True)):
        for entry in entries:
            guest = _expand(entry)
            if any(c in entry for c in "*?["):
                notes.append(f"filesystem entry `{entry}` is a pattern; wasm plugins get whole directories only, "
                             "so it is not preopened")
                continue
            wanted[guest] = wanted.get(guest, False) or writable
    data_dir = getattr(ctx.config, "data_dir", None)
    if data_dir is not None and os.path.isdir(data_dir):
        wanted[_expand(os.fspath(data_dir))] = True
    sensitive = _sensitive_paths(ctx)
    out: dict[str, Preopen] = {}
    for guest, writable in sorted(wanted.items()):
        host = os.path.realpath(guest)
        if not os.path.isdir(host):
            what = "a file" if os.path.exists(host) else "missing"
            notes.append(f"filesystem entry `{guest}` is {what}; only existing directories can be preopened")
            continue
        if not _decide(ctx, Request("fs.read", pid, path=host)):
            extra = " (a WASI preopen cannot be write-only: grant `read` too)" if writable else ""
            notes.append(f"policy refuses reading `{guest}`: not preopened{extra}")
            continue
        refused = _refused_inside(ctx, host, "fs.read", sensitive)
        if refused:
            notes.append(f"policy refuses reading `{refused}` inside `{guest}`; WASI cannot hide part of a "
                         "directory, so it is not preopened — grant narrower directories")
            continue
        if writable:
            if not _decide(ctx, Request("fs.write", pid, path=host)):
                notes.append(f"policy refuses writing `{guest}`: preopened read-only")
                writable = False
            else:
                refused = _refused_inside(ctx, host, "fs.write", sensitive)
                if refused:
                    notes.append(f"policy refuses writing `{refused}` inside `{guest}`: preopened read-only")
                    writable = False
        out[guest] = Preopen(host, guest, writable)
    return tuple(out.values())


def _sensitive_paths(ctx: LoadContext) -> list[str]:
    """Paths the built-in rules protect that a broad grant could cover: the policy files,
    the audit log, the plugin's own tree, the wasm cache."""
    paths = [os.fspath(p) for p in ctx.policy_files]
    paths += [os.fspath(p) for p in getattr(getattr(ctx.enforcer, "policy_set", None), "sources", ()) or ()]
    if ctx.audit_log_path:
        paths.append(os.fspath(ctx.audit_log_path))
    paths.append(os.fspath(ctx.plugin.root))
    return [os.path.realpath(_expand(p)) for p in paths if p]


def _refused_inside(ctx: LoadContext, directory: str, action: str, sensitive: Sequence[str]) -> str | None:
    """The first path directly inside ``directory`` (or a sensitive path anywhere below it)
    that the policy refuses for ``action``; None when all are allowed."""
    pid = ctx.plugin.id
    prefix = directory.rstrip("/") + "/"
    candidates = [p for p in sensitive if p.startswith(prefix)]
    try:
        with os.scandir(directory) as it:
            for i, entry in enumerate(it):
                if i >= MAX_PROBE_ENTRIES:
                    break
                candidates.append(os.path.join(directory, entry.name))
    except OSError:
        pass
    for path in candidates:
        if not _decide(ctx, Request(action, pid, path=path), quiet=True):
            return path
    return None


def _environment(ctx: LoadContext, manifest: Any) -> tuple[tuple[str, str], ...]:
    """Granted variables set in the host that the enforcer allows, sorted by name."""
    patterns = tuple(manifest.capabilities.environment)
    if not patterns:
        return ()
    pid = ctx.plugin.id
    out = []
    for name, value in sorted(os.environ.items()):
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        if "\0" in value or "=" in name:
            continue
        if _decide(ctx, Request("env.read", pid, name=name)):
            out.append((name, value))
    return tuple(out)


def _expand(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


# ---------------------------------------------------------------------------------------
# Checks, parsing and small helpers


def _check_interface(module: Any, plugin: str, name: str) -> None:
    """A WASI command: imports only WASI preview1 functions, exports ``_start``."""
    bad = [f"`{i.module}.{i.name}`" for i in module.imports if i.module != WASI_MODULE]
    if bad:
        raise LoaderError(f"module `{name}` imports {', '.join(bad[:5])}; only `{WASI_MODULE}` is provided",
                          plugin=plugin, fix="build a WASI command module (clang --target=wasm32-wasi)")
    exports = {e.name for e in module.exports}
    if "_start" not in exports:
        raise LoaderError(f"module `{name}` exports no `_start`: it is not a WASI command", plugin=plugin,
                          fix="build an executable with a `main` (not a library)")


def _parse(stdout: bytes, limit: int) -> tuple[Any, str | None]:
    """The one JSON value on stdout, or (None, what is wrong with it)."""
    if len(stdout) > limit:
        return None, f"more than {limit} bytes"
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"stdout is not UTF-8 (byte {exc.start})"
    if not text.strip():
        return None, "nothing on stdout"
    try:
        return json.loads(text, parse_constant=_no_constant), None
    except RecursionError:
        return None, "JSON nested too deeply"
    except ValueError as exc:
        return None, f"not one JSON value ({_clip(str(exc), 100)}); starts with `{_clip(text[:60], 60)}`"


def _no_constant(name: str) -> Any:
    raise ValueError(f"`{name}` is not JSON")


def _encode(value: Any) -> bytes | None:
    try:
        return (json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n").encode()
    except (TypeError, ValueError, RecursionError):
        return None


def _failure(tool: str, message: str, kind: str, *, retryable: bool = False) -> ToolResult:
    return ToolResult.failure(ToolError(message, tool=str(tool), kind=kind, retryable=retryable))


def _stderr_tail(stderr: bytes | bytearray) -> str:
    text = bytes(stderr).decode("utf-8", "replace").strip()
    if not text:
        return ""
    return f"; stderr: `{_clip(text[-STDERR_IN_ERRORS:], STDERR_IN_ERRORS)}`"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return _clip(text.splitlines()[0] if text else type(exc).__name__, 300)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _engine_fingerprint() -> str:
    """What a serialized module depends on: wasmtime's version, the engine settings, the CPU."""
    try:
        version = importlib.metadata.version("wasmtime")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    text = f"wasmtime={version};fuel=1;epoch=1;poll=refused;{platform.machine()};{platform.system()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _private_dir(path: Path) -> bool:
    """Create ``path`` (0700) if missing; True only if it is a real directory owned by this
    user that nobody else can write or read."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        log.warning("wasm cache dir %s unusable: %s", path, exc)
        return False
    ok = stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077
    if not ok:
        log.warning("wasm cache dir %s is not a private (0700, owned by this user) directory: not used", path)
    return ok


def _read_private(path: Path) -> bytes | None:
    """The payload of a cache file this user wrote (0600, not a symlink, checksum intact)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            log.warning("ignoring wasm cache file %s: not a private file of this user", path)
            return None
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            blob = fh.read()
    except OSError:
        return None
    finally:
        if fd >= 0:
            os.close(fd)
    head = len(CACHE_MAGIC)
    if blob[:head] != CACHE_MAGIC or hashlib.sha256(blob[head + 32:]).digest() != blob[head:head + 32]:
        log.warning("ignoring wasm cache file %s: bad header or checksum", path)
        return None
    return blob[head + 32:]


__all__ = ["WasmLoader", "WasmPlugin", "Preopen", "DEFAULT_FUEL", "DEFAULT_MEMORY_BYTES",
           "DEFAULT_LIST_TIMEOUT", "MAX_STDOUT_BYTES", "MAX_STDERR_BYTES"]
