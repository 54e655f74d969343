"""ProcessLoader: run a plugin in a sandboxed child process speaking MCP over stdio.

    loader = ProcessLoader()                     # kind "process"
    plugin = loader.load(ctx)                    # LoadContext from the manager
    plugin.tools(); plugin.call_tool("echo", {"text": "hi"}, timeout=5)
    plugin.shutdown()

Python plugins (``entry.python``) run under the bootstrap, which installs the Enforcer for
that plugin before importing it; ``entry.command`` plugins are any executable speaking MCP
on stdio. Both run through the shim (rlimits, no capabilities, Landlock, seccomp) in their
own temporary working directory with a scrubbed environment.

Failures never raise out of a loaded plugin: a crash, hang, protocol violation or a child
that cannot start becomes an error ToolResult (kind ``unavailable`` or ``timeout``); the child
is killed (its whole process group) and started again on the next call, with backoff.
"""

from __future__ import annotations

import collections
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

from promptline.policy import user_home
from promptline.sdk import TOOL_NAME, PromptTemplate, ToolResult, ToolSpec

from .._errors import LoaderError, ToolError
from .._loader import DEFAULT_CALL_TIMEOUT, LoadContext, LoadedPlugin
from . import _jsonrpc as rpc
from ._bootstrap import BOOT_ENV, COMPLETE_METHOD, CONTEXT_METHOD, DECISION_NOTIFICATION
from ._client import CallTimeout, MCPClient
from ._landlock import landlock_abi
from ._launch import SandboxSpec, sandbox_spec, spawn
from ._server import content_text

START_TIMEOUT = 20.0            # seconds for a child to answer `initialize` and `tools/list`
LIST_TIMEOUT = 10.0             # seconds for prompts/resources listings
STOP_GRACE = 2.0                # seconds between closing stdin, SIGTERM and SIGKILL
RESTART_BACKOFF = (0.0, 0.5, 2.0, 5.0, 15.0, 30.0)   # delay before restart n (after n crashes)
STDERR_TAIL_LINES = 20          # last stderr lines kept for error messages
MAX_STDERR_LINE = 2000          # characters of one stderr line kept or logged
MAX_TOOLS = 1000                # tools one plugin may list
MAX_CHILD_DECISIONS_PER_S = 2000   # decision reports a child may send per second (a flood is cut)
MAX_ASK_RULES = 32                 # rules an ask's decision may cite
MAX_ASK_ARGV = 256                 # argv items of an asked request
_ASK_STR_FIELDS = ("path", "host", "scheme", "url", "name", "tool", "args")
_RULE_FIELDS = ("id", "layer", "origin", "message", "mode")
MIN_LANDLOCK_ABI = 1            # below this Landlock counts as missing
NET_LANDLOCK_ABI = 4            # TCP port rules need this

BOOTSTRAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap.py")
log = logging.getLogger("promptline.process")


def _version() -> str:
    try:
        import importlib.metadata
        return importlib.metadata.version("promptline-plugins")
    except Exception:  # noqa: BLE001
        return "0"


def _code_dirs() -> list[str]:
    """Directories the bootstrap imports the project from (read-only in the child): the
    ``promptline`` package and its subpackages, wherever the install put each of them."""
    out = []
    for name in ("promptline", "promptline.policy", "promptline.enforcer", "promptline.loaders"):
        spec = importlib.util.find_spec(name)   # the already-imported package's own spec
        if spec is not None and spec.origin:
            out.append(os.path.dirname(os.path.abspath(spec.origin)))
    return out


def _import_path() -> list[str]:
    """The sys.path entry that holds the ``promptline`` package (the child imports it from
    there; an editable install's finder supplies the subpackages)."""
    return [os.path.dirname(_code_dirs()[0])]


class ProcessLoader:
    """Loader for ``sandbox: process``.

    ``start``: ``lazy`` (first call starts the child; ``tools()`` starts it too) or ``eager``.
    ``landlock_missing``: what to do when the kernel has no Landlock: ``refuse`` (default) or
    ``hooks-only`` (Python plugins keep the in-child enforcer, seccomp and the rest; the
    host logs a warning that the filesystem and network walls are missing).
    """

    kind = "process"

    def __init__(self, *, start: str = "lazy", landlock_missing: str = "refuse",
                 rlimits: dict[str, int] | None = None, stderr_dir: str | None = None) -> None:
        if start not in ("lazy", "eager"):
            raise ValueError(f"unknown start mode `{start}` — use lazy or eager")
        if landlock_missing not in ("refuse", "hooks-only"):
            raise ValueError(f"unknown landlock_missing `{landlock_missing}` — use refuse or hooks-only")
        self.start = start
        self.landlock_missing = landlock_missing
        self.rlimits = dict(rlimits or {})
        self.stderr_dir = stderr_dir

    def load(self, ctx: LoadContext) -> ProcessPlugin:
        plugin = ctx.plugin
        manifest = plugin.manifest
        if plugin.kind not in ("python", "command"):
            raise LoaderError(f"the process sandbox runs python and command plugins, not `{plugin.kind}`",
                              plugin=plugin.id, fix="use the wasm loader for wasm modules")
        abi = landlock_abi()
        use_landlock = abi >= MIN_LANDLOCK_ABI
        if not use_landlock:
            if self.landlock_missing == "refuse":
                raise LoaderError("this kernel has no Landlock (ABI 0), so the process sandbox cannot "
                                  "confine files and network", plugin=plugin.id,
                                  fix="run on Linux 5.13+ with `lsm=landlock` or let policy allow hooks-only")
            if plugin.kind == "command":
                raise LoaderError("this kernel has no Landlock (ABI 0) and a command plugin has no "
                                  "in-process hooks to fall back on", plugin=plugin.id,
                                  fix="run on Linux 5.13+ with `lsm=landlock`")
            log.warning("plugin `%s`: Landlock is missing: running with the in-child enforcer, seccomp "
                        "and rlimits only (no kernel file or network walls)", plugin.id)
        elif abi < NET_LANDLOCK_ABI and manifest.capabilities.network is not None:
            log.warning("plugin `%s`: Landlock ABI %d cannot restrict TCP ports (needs 4)", plugin.id, abi)
        proc = ProcessPlugin(ctx, self, use_landlock=use_landlock, landlock_abi=abi)
        if self.start == "eager" or ctx.options.get("start") == "eager":
            try:
                proc.ensure_started()
            except LoaderError:
                proc.shutdown()
                raise
        return proc


class ProcessPlugin(LoadedPlugin):
    """A plugin in a child process. Thread-safe; calls are answered in the child's order."""

    def __init__(self, ctx: LoadContext, loader: ProcessLoader, *, use_landlock: bool,
                 landlock_abi: int) -> None:
        self.ctx = ctx
        self.id = ctx.plugin.id
        self.version = ctx.plugin.version
        self.sandbox = "process"
        self.landlock_abi = landlock_abi
        self._loader = loader
        self._use_landlock = use_landlock
        self._lock = threading.RLock()
        self._proc: subprocess.Popen | None = None
        self._client: MCPClient | None = None
        self._tools: tuple[ToolSpec, ...] | None = None
        self._templates: tuple[PromptTemplate, ...] | None = None
        self._crashes = 0
        self._next_start = 0.0
        self._last_error = ""
        self._closed = False
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._tmp = tempfile.mkdtemp(prefix=f"promptline-{self.id}-")
        os.chmod(self._tmp, 0o700)
        self._workdir = os.path.join(self._tmp, "work")
        self._code = os.path.join(self._tmp, "code")
        os.mkdir(self._workdir, 0o700)
        self._stderr_log = None
        if loader.stderr_dir or ctx.options.get("stderr_log"):
            path = ctx.options.get("stderr_log") or os.path.join(loader.stderr_dir, f"{self.id}.stderr.log")
            self._stderr_log = open(path, "a", encoding="utf-8", errors="replace")
        try:
            self.spec = self._build_spec()
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            if self._stderr_log is not None:
                self._stderr_log.close()
            raise
        self._tools_stale = False
        self._decision_budget = [MAX_CHILD_DECISIONS_PER_S, time.monotonic()]
        self.pid: int | None = None
        self.starts = 0
        self._audit = self._host_audit_log()

    # -- set-up ---------------------------------------------------------------------------

    def _host_audit_log(self) -> Any:
        log_obj = self.ctx.options.get("audit_log")
        if log_obj is None:
            try:
                log_obj = object.__getattribute__(self.ctx.enforcer, "_audit_log")
            except AttributeError:
                log_obj = None
        if log_obj is None and self.ctx.audit_log_path:
            from promptline.enforcer.audit import AuditLog
            log_obj = AuditLog(self.ctx.audit_log_path)
        return log_obj

    def _copy_code(self) -> str:
        """The plugin's code as the child sees it: the verified bytes copied into the
        private tree (so the child runs what was verified), else the plugin directory."""
        files = self.ctx.files
        plugin = self.ctx.plugin
        if files is None:
            return str(plugin.root)
        base = self._code
        if plugin.package:
            base = os.path.join(base, *plugin.package.split("."))
        for rel, data in files.items():
            parts = [p for p in rel.split("/") if p]
            if not parts or any(p in (".", "..") for p in parts):
                raise LoaderError(f"verified file name `{rel}` is not a plain relative path", plugin=self.id)
            dest = os.path.join(base, *parts)
            os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        return base

    def _build_spec(self) -> SandboxSpec:
        ctx = self.ctx
        plugin = ctx.plugin
        manifest = plugin.manifest
        opts = ctx.options
        rlimits = dict(self._loader.rlimits)
        rlimits.update(opts.get("rlimits") or {})
        code_root = self._copy_code()
        import json
        if plugin.kind == "python":
            manifest_path = os.path.join(code_root, "plugin.yaml") if ctx.files is not None \
                else str(plugin.manifest_path)
            entry = manifest.entry.python or ""
            module, _, cls = entry.partition(":")
            import_root = code_root
            if plugin.package:
                import_root = self._code
                if not module.startswith(plugin.package + ".") and module != plugin.package:
                    module = f"{plugin.package}.{module}"
            info = ctx.info
            boot = {"plugin_id": plugin.id, "entry": f"{module}:{cls}" if cls else module,
                    "code_root": import_root, "manifest": manifest_path,
                    "policy_files": [os.path.abspath(p) for p in ctx.policy_files],
                    "home": user_home(),   # `~` in policies means the host user's home
                    "grants": opts.get("grants_path"),
                    "facts": {"signed": bool(getattr(info, "signed", False)),
                              "publisher": str(getattr(info, "publisher", "") or "")},
                    "settings": dict(ctx.config.settings),
                    "data_dir": str(ctx.config.data_dir) if ctx.config.data_dir else None,
                    "hooks": True, "log_allows": bool(opts.get("log_allows", False)),
                    "mode": opts.get("mode") or getattr(ctx.enforcer, "mode", "enforce"),
                    "sys_path": _import_path()}
            # the spec (with the plugin's settings) travels in the environment, not in argv:
            # /proc/<pid>/cmdline is readable by every local user, environ only by the owner
            argv = [sys.executable, "-I", "-B", BOOTSTRAP]
            extra_env = {BOOT_ENV: json.dumps(boot, separators=(",", ":"))}
            code_dirs = [import_root, *_code_dirs()]
            read_files = [p for p in boot["policy_files"] if os.path.isfile(p)]
            if boot["grants"] and os.path.isfile(boot["grants"]):
                read_files.append(boot["grants"])
            # directories named in policy_files: every file below is read by the child
            code_dirs += [p for p in boot["policy_files"] if os.path.isdir(p)]
        else:
            argv = list(plugin.argv or manifest.entry.command or ())
            root = os.path.realpath(str(plugin.root))
            if "/" in argv[0] and not os.path.isabs(argv[0]):
                argv[0] = os.path.join(code_root, argv[0])
            for i in range(1, len(argv)):   # `python server.py`: files of the plugin by absolute path
                cand = os.path.join(code_root, argv[i])
                if not os.path.isabs(argv[i]) and not argv[i].startswith("-") and os.path.isfile(cand):
                    argv[i] = cand
            code_dirs = [code_root, root] if code_root != root else [root]
            read_files = []
            extra_env = {}
        data_dir = ctx.config.data_dir
        write_extra = [str(data_dir)] if data_dir else []
        try:
            spec = sandbox_spec(manifest, argv, workdir=self._workdir, code_dirs=code_dirs,
                                read_files=read_files, rlimits=rlimits,
                                landlock=self._use_landlock, extra_env=extra_env,
                                bind_ports=opts.get("bind_ports") or ())
        except FileNotFoundError:
            raise LoaderError(f"program `{argv[0]}` was not found", plugin=self.id,
                              fix="install it or give its absolute path in `entry.command`") from None
        if write_extra:
            from . import _landlock as ll
            spec = SandboxSpec(**{**spec.__dict__, "fs": spec.fs + tuple((d, ll.WRITE) for d in write_extra)})
        for note in spec.notes:
            log.info("plugin `%s`: %s", self.id, note)
        return spec

    # -- lifecycle ------------------------------------------------------------------------

    def ensure_started(self) -> MCPClient:
        """Start the child if it is not running (raises LoaderError when it cannot)."""
        with self._lock:
            if self._closed:
                raise LoaderError("the plugin was shut down", plugin=self.id)
            client = self._client
            if client is not None and client.failure is None and self._proc is not None \
                    and self._proc.poll() is None:
                return client
            if client is not None or self._proc is not None:
                self._stop_child()
            now = time.monotonic()
            if now < self._next_start:
                raise LoaderError(f"the plugin process failed {self._crashes} time(s) "
                                  f"({self._last_error}); next restart in {self._next_start - now:.1f} s",
                                  plugin=self.id)
            try:
                return self._start()
            except LoaderError as exc:
                self._crashed(exc.message)
                raise

    def _start(self) -> MCPClient:
        self._stderr_tail.clear()
        try:
            proc = spawn(self.spec)
        except OSError as exc:
            raise LoaderError(f"cannot start the plugin process: {exc.strerror or exc}", plugin=self.id) from None
        self._proc = proc
        self.pid = proc.pid
        self.starts += 1
        threading.Thread(target=self._pump_stderr, args=(proc,), daemon=True,
                         name=f"promptline-stderr-{self.id}").start()
        client = MCPClient(proc.stdout.fileno(), proc.stdin.fileno(), name=self.id,
                           on_notification=self._notification,
                           on_failure=lambda exc, p=proc: self._on_failure(p, exc),
                           on_ask=self._answer_ask if self.ctx.plugin.kind == "python" else None)
        self._client = client
        try:
            client.initialize(client_version=_version(), timeout=START_TIMEOUT)
            self._tools = self._list_tools(client)
        except (rpc.ProtocolError, rpc.RpcError, CallTimeout) as exc:
            reason = self._exit_reason(proc, exc)
            self._stop_child()
            raise LoaderError(f"the plugin process did not start: {reason}", plugin=self.id,
                              fix="see the plugin's stderr log") from None
        return client

    def _list_tools(self, client: MCPClient) -> tuple[ToolSpec, ...]:
        result = client.request("tools/list", {}, timeout=START_TIMEOUT)
        items = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(items, list):
            raise rpc.ProtocolError("`tools/list` answered without a `tools` array")
        cursor = result.get("nextCursor")
        pages = 0
        while isinstance(cursor, str) and cursor and pages < 20 and len(items) < MAX_TOOLS:
            more = client.request("tools/list", {"cursor": cursor}, timeout=START_TIMEOUT)
            if not isinstance(more, dict) or not isinstance(more.get("tools"), list):
                break
            items += more["tools"]
            cursor, pages = more.get("nextCursor"), pages + 1
        specs = []
        seen = set()
        for item in items[:MAX_TOOLS]:
            if not isinstance(item, dict):
                continue
            name, desc, schema = item.get("name"), item.get("description", ""), item.get("inputSchema")
            if not isinstance(name, str) or not TOOL_NAME.match(name) or name in seen:
                log.warning("plugin `%s`: tool name `%s` refused", self.id, str(name)[:80])
                continue
            if schema is None:
                schema = {"type": "object", "properties": {}}
            if not isinstance(schema, dict) or schema.get("type", "object") != "object":
                log.warning("plugin `%s`: tool `%s` has no object inputSchema; left out", self.id, name)
                continue
            seen.add(name)
            specs.append(ToolSpec(name, desc if isinstance(desc, str) else "", schema))
        return tuple(specs)

    def _pump_stderr(self, proc: subprocess.Popen) -> None:
        plog = logging.getLogger(f"promptline.plugin.{self.id}")
        stream = proc.stderr
        buf = b""
        try:
            while True:
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                if len(buf) > MAX_STDERR_LINE * 4:
                    lines.append(buf)
                    buf = b""
                for raw in lines:
                    self._stderr_line(plog, raw)
        except (OSError, ValueError):
            pass
        if buf:
            self._stderr_line(plog, buf)

    def _stderr_line(self, plog: logging.Logger, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace")[:MAX_STDERR_LINE]
        text = "".join(c if c.isprintable() or c == "\t" else "?" for c in text)
        if not text.strip():
            return
        self._stderr_tail.append(text)
        plog.debug("%s", text)
        if self._stderr_log is not None:
            try:
                self._stderr_log.write(text + "\n")
                self._stderr_log.flush()
            except (OSError, ValueError):
                pass

    def _exit_reason(self, proc: subprocess.Popen, exc: BaseException | None = None) -> str:
        if isinstance(exc, rpc.ProtocolError) and not isinstance(exc, rpc.ClosedError):
            return f"protocol violation: {exc}; the process was stopped"
        try:
            code = proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            code = None
        time.sleep(0.02)   # let the stderr pump catch the last line
        tail = [line for line in self._stderr_tail if line.startswith(("promptline-sandbox:", "promptline-bootstrap:"))]
        tail = tail or list(self._stderr_tail)[-1:]
        if code is None:
            what = str(exc) if exc is not None else "it stopped answering"
        elif code < 0:
            try:
                what = f"it was killed by {signal.Signals(-code).name}"
            except ValueError:
                what = f"it was killed by signal {-code}"
        else:
            what = f"it exited with code {code}"
            if exc is not None and not isinstance(exc, rpc.ClosedError):
                what = f"{exc}; {what}"
        if tail:
            what += f": {tail[-1][:300]}"
        return what

    def _on_failure(self, proc: subprocess.Popen, exc: BaseException) -> None:
        """Called from the reader thread: the connection is gone or poisoned."""
        if self._closed:
            return
        if not isinstance(exc, rpc.ClosedError):
            log.warning("plugin `%s`: protocol violation: %s; stopping it", self.id, exc)
            self._kill_group(proc, signal.SIGKILL)

    def _crashed(self, reason: str) -> None:
        self._crashes += 1
        self._last_error = reason
        delay = RESTART_BACKOFF[min(self._crashes - 1, len(RESTART_BACKOFF) - 1)]
        self._next_start = time.monotonic() + delay
        log.warning("plugin `%s`: %s (failure %d; restart allowed in %.1f s)", self.id, reason, self._crashes, delay)

    @staticmethod
    def _kill_group(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                proc.send_signal(sig)
            except (ProcessLookupError, OSError):
                pass

    def _stop_child(self, grace: float = 0.0) -> None:
        """Stop and reap the child (and its process group); idempotent."""
        proc, client = self._proc, self._client
        self._proc = self._client = None
        if client is not None:
            client.close()
        if proc is None:
            return
        try:
            if grace > 0 and proc.poll() is None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    self._kill_group(proc, signal.SIGTERM)
                    try:
                        proc.wait(timeout=grace)
                    except subprocess.TimeoutExpired:
                        pass
            self._kill_group(proc, signal.SIGKILL)   # grandchildren too, even after a clean exit
            proc.wait()
        finally:
            for s in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    if s is not None:
                        s.close()
                except OSError:
                    pass

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop_child(grace=STOP_GRACE)
            if self._stderr_log is not None:
                self._stderr_log.close()
            shutil.rmtree(self._tmp, ignore_errors=True)

    # -- the LoadedPlugin API -------------------------------------------------------------

    def _call(self, method: str, params: Any, timeout: float) -> Any:
        """One request; raises ToolError (kind unavailable/timeout) on any failure."""
        try:
            client = self.ensure_started()
        except LoaderError as exc:
            raise ToolError(exc.message, kind="unavailable", retryable=True) from None
        proc = self._proc
        try:
            result = client.request(method, params, timeout=timeout)
        except CallTimeout:
            with self._lock:
                if self._client is client:
                    self._stop_child()
            raise ToolError(f"the plugin did not answer within {timeout:g} s; its process was restarted",
                            kind="timeout", retryable=True) from None
        except rpc.RpcError:
            raise
        except rpc.ProtocolError as exc:
            reason = self._exit_reason(proc, exc) if proc is not None else str(exc)
            with self._lock:
                if self._client is client:
                    self._stop_child()
                    self._crashed(reason)
            raise ToolError(f"the plugin process failed: {reason}", kind="unavailable", retryable=True) from None
        if self._crashes:
            self._crashes = 0
        return result

    def tools(self) -> Sequence[ToolSpec]:
        if self._tools_stale:
            self._refresh_tools()
        if self._tools is None:
            try:
                self.ensure_started()
            except LoaderError as exc:
                log.warning("%s", exc)
                return ()
        return self._tools or ()

    def call_tool(self, name: str, args: dict, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> ToolResult:
        try:
            result = self._call("tools/call", {"name": name, "arguments": args if args is not None else {}}, timeout)
        except ToolError as exc:
            exc.tool = name
            return ToolResult(False, exc.message, None, exc)
        except rpc.RpcError as exc:
            kind = "invalid-arguments" if exc.code == rpc.INVALID_PARAMS else "failed"
            return ToolResult.failure(ToolError(f"the plugin answered with an error: {exc.message[:500]}",
                                                tool=name, kind=kind))
        return self._tool_result(name, result)

    def _tool_result(self, name: str, result: Any) -> ToolResult:
        if not isinstance(result, dict) or not isinstance(result.get("content", []), list):
            return ToolResult.failure(ToolError("returned a malformed result: expected an MCP tool result "
                                                "with a `content` array", tool=name, kind="malformed-result"))
        text = content_text(result.get("content") or [])
        meta = result.get("_meta") if isinstance(result.get("_meta"), dict) else {}
        data = meta.get("promptline/data", result.get("structuredContent"))
        if result.get("isError") is True:
            err = ToolError.from_dict(meta["promptline/error"], tool=name) if "promptline/error" in meta \
                else ToolError(text or "tool failed", tool=name)
            if err.tool is None:
                err.tool = name
            return ToolResult(False, text or err.message, data, err)
        from promptline.sdk import coerce_result
        return coerce_result(ToolResult(True, text, data), tool=name)

    def templates(self) -> Sequence[PromptTemplate]:
        if self._templates is not None:
            return self._templates
        out: list[PromptTemplate] = []
        try:
            client = self.ensure_started()
            if "prompts" in client.server_capabilities:
                result = self._call("prompts/list", {}, LIST_TIMEOUT)
                for item in (result or {}).get("prompts", [])[:MAX_TOOLS]:
                    tpl = self._template(item)
                    if tpl is not None:
                        out.append(tpl)
        except (LoaderError, ToolError, rpc.RpcError, AttributeError) as exc:
            log.warning("plugin `%s`: prompts unavailable: %s", self.id, exc)
            return ()
        self._templates = tuple(out)
        return self._templates

    def _template(self, item: Any) -> PromptTemplate | None:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        meta = item.get("_meta") if isinstance(item.get("_meta"), dict) else {}
        text = meta.get("promptline/template")
        desc = item.get("description") if isinstance(item.get("description"), str) else ""
        if not isinstance(text, str):
            # a foreign server: render it with each argument standing for itself
            args = [a.get("name") for a in item.get("arguments") or [] if isinstance(a, dict)]
            args = [a for a in args if isinstance(a, str)]
            try:
                got = self._call("prompts/get", {"name": item["name"],
                                                 "arguments": {a: "{{ " + a + " }}" for a in args}}, LIST_TIMEOUT)
                msgs = got.get("messages") or []
                text = "\n".join(m["content"]["text"] for m in msgs
                                 if isinstance(m, dict) and isinstance(m.get("content"), dict)
                                 and isinstance(m["content"].get("text"), str))
            except (ToolError, rpc.RpcError, AttributeError, TypeError):
                return None
        try:
            return PromptTemplate(item["name"], text, desc)
        except (ValueError, TypeError):
            return None

    def get_context(self, query: str, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> str:
        try:
            result = self._call(CONTEXT_METHOD, {"query": query}, timeout)
        except (ToolError, rpc.RpcError) as exc:
            log.warning("plugin `%s`: context unavailable: %s", self.id, exc)
            return ""
        text = result.get("text") if isinstance(result, dict) else None
        return text if isinstance(text, str) else ""

    def complete(self, prompt: str, *, timeout: float = DEFAULT_CALL_TIMEOUT, **options: Any) -> ToolResult:
        """A model plugin's completion (``promptline/complete`` in the child); never raises."""
        if "model" not in self.ctx.plugin.manifest.types:
            return super().complete(prompt, timeout=timeout, **options)
        import json
        try:
            json.dumps([prompt, options], allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return ToolResult.failure(ToolError("the prompt and options must be JSON data", tool="complete",
                                                kind="invalid-arguments"))
        try:
            result = self._call(COMPLETE_METHOD, {"prompt": prompt, "options": options}, timeout)
        except ToolError as exc:
            exc.tool = "complete"
            return ToolResult(False, exc.message, None, exc)
        except rpc.RpcError as exc:
            kind = "invalid-arguments" if exc.code == rpc.INVALID_PARAMS else "failed"
            return ToolResult.failure(ToolError(f"the plugin answered with an error: {exc.message[:500]}",
                                                tool="complete", kind=kind))
        from promptline.sdk import coerce_result
        return coerce_result(result, tool="complete")

    def resources(self, *, timeout: float = LIST_TIMEOUT) -> list[dict[str, Any]]:
        """MCP ``resources/list`` (empty when the plugin offers none or fails)."""
        try:
            result = self._call("resources/list", {}, timeout)
        except (ToolError, rpc.RpcError):
            return []
        items = result.get("resources") if isinstance(result, dict) else None
        return [r for r in items if isinstance(r, dict)] if isinstance(items, list) else []

    def read_resource(self, uri: str, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> str:
        """MCP ``resources/read``: the text of its contents (raises ToolError on failure)."""
        try:
            result = self._call("resources/read", {"uri": uri}, timeout)
        except rpc.RpcError as exc:
            raise ToolError(f"resource `{uri[:200]}`: {exc.message[:300]}", kind="failed") from None
        contents = result.get("contents") if isinstance(result, dict) else None
        if not isinstance(contents, list):
            raise ToolError("the plugin answered `resources/read` without `contents`", kind="malformed-result")
        return "\n".join(c["text"] for c in contents if isinstance(c, dict) and isinstance(c.get("text"), str))

    # -- child -> host --------------------------------------------------------------------

    def _notification(self, method: str, params: Any) -> None:
        if method == DECISION_NOTIFICATION:
            self._record_decision(params)
        elif method == "notifications/tools/list_changed":
            self._tools_stale = True   # re-listed on the next tools() call, not here (no thread per message)
        elif method == "notifications/message" and isinstance(params, dict):
            logging.getLogger(f"promptline.plugin.{self.id}").info("%s", str(params.get("data"))[:MAX_STDERR_LINE])

    def _answer_ask(self, params: Any) -> dict[str, Any]:
        """The child's enforcer met an ASK: the host's enforcer asks its prompter (and its
        GrantStore), always on behalf of this plugin whatever the child claims. Anything odd
        in what the child sent is a deny, never an exception."""
        from promptline.policy import DecidedBy, Verdict
        deny = {"answer": "deny", "verdict": "deny"}
        ask = getattr(self.ctx.enforcer, "ask", None)
        if not callable(ask):
            return deny
        try:
            request, decision = _ask_arguments(self.id, params)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("plugin `%s`: malformed ask denied: %s", self.id, str(exc)[:200])
            return deny
        d = ask(self.id, request, decision)
        if d.verdict is Verdict.ALLOW:
            allowed = True
        elif d.verdict is Verdict.DENY:
            allowed = False
        else:
            return deny
        out: dict[str, Any] = {"verdict": d.verdict.value, "decided_by": d.decided_by.value}
        grant = d.rules[-1] if d.rules and d.rules[-1] not in decision.rules and d.rules[-1].layer == "user" else None
        if d.decided_by is DecidedBy.PROMPT_ALWAYS or (d.decided_by is DecidedBy.RULE and grant is not None):
            # remembered (now or earlier): the child's decision says prompt-always, citing the grant
            out["answer"] = "always" if allowed else "never"
            if grant is not None:
                out["grant"] = grant.to_dict()
        else:
            out["answer"] = "once" if allowed else "deny"
        return out

    def _refresh_tools(self) -> None:
        client = self._client
        if client is None:
            return
        self._tools_stale = False
        try:
            self._tools = self._list_tools(client)
        except (rpc.ProtocolError, rpc.RpcError, CallTimeout) as exc:
            log.warning("plugin `%s`: re-listing tools failed: %s", self.id, exc)

    def _record_decision(self, params: Any) -> None:
        """A decision the child's enforcer took; written under this plugin's id whatever the
        child claims (a child can only speak for itself)."""
        audit = self._audit
        if audit is None or not isinstance(params, dict):
            return
        action, resource, decision = params.get("action"), params.get("resource"), params.get("decision")
        request = params.get("request")
        budget = self._decision_budget
        now = time.monotonic()
        if now - budget[1] >= 1.0:
            budget[0], budget[1] = MAX_CHILD_DECISIONS_PER_S, now
        if budget[0] <= 0:
            if budget[0] == 0:
                log.error("plugin `%s`: more than %d decision reports a second; dropping the rest "
                          "of this second", self.id, MAX_CHILD_DECISIONS_PER_S)
            budget[0] -= 1
            return
        budget[0] -= 1
        if not (isinstance(action, str) and isinstance(resource, str) and isinstance(decision, dict)):
            log.warning("plugin `%s`: malformed decision report ignored", self.id)
            return
        if not isinstance(request, dict):
            request = None
        else:
            request = dict(request, plugin=self.id)
        try:
            audit.decision(self.id, self.version, action[:64], resource[:4096], decision, request=request,
                           message="decided in the plugin's sandboxed process")
        except Exception as exc:  # noqa: BLE001 - the host keeps running; say it loudly
            log.error("plugin `%s`: could not write its decision to the audit log: %s", self.id, exc)

    def __repr__(self) -> str:
        state = "running" if self._proc is not None and self._proc.poll() is None else "stopped"
        return f"<ProcessPlugin {self.id} {state} pid={self.pid}>"


def _ask_arguments(plugin_id: str, params: Any):
    """A child's ``promptline/ask`` params as (Request, ASK Decision); raises ValueError,
    TypeError or KeyError on anything malformed."""
    from promptline.policy import DecidedBy, Decision, Effect, Request, RuleRef, Verdict
    if type(params) is not dict or type(params.get("request")) is not dict \
            or type(params.get("decision")) is not dict:
        raise ValueError("`request` and `decision` must be objects")
    req, dec = params["request"], params["decision"]
    extra = set(req) - {"action", "plugin", "port", "argv", *_ASK_STR_FIELDS}
    if extra:
        raise ValueError(f"unknown request field `{sorted(extra)[0][:40]}`")
    action = req.get("action")
    if type(action) is not str:
        raise ValueError("`action` must be a string")
    fields: dict[str, Any] = {}
    for k in _ASK_STR_FIELDS:
        v = req.get(k, "")
        if type(v) is not str:
            raise ValueError(f"`{k}` must be a string")
        fields[k] = v
    port = req.get("port", 0)
    if type(port) is not int or not 0 <= port <= 65535:
        raise ValueError("`port` must be an integer in 0..65535")
    argv = req.get("argv", [])
    if type(argv) is not list or len(argv) > MAX_ASK_ARGV or not all(type(a) is str for a in argv):
        raise ValueError("`argv` must be a short list of strings")
    request = Request(action, plugin_id, port=port, argv=tuple(argv), **fields)
    if dec.get("verdict") != "ask":
        raise ValueError("only an `ask` decision is asked about")
    rules_in = dec.get("rules", [])
    if type(rules_in) is not list or len(rules_in) > MAX_ASK_RULES:
        raise ValueError("`rules` must be a short list")
    rules = []
    for r in rules_in:
        if type(r) is not dict or not all(type(r.get(k, "")) is str for k in _RULE_FIELDS):
            raise ValueError("a rule must be an object of strings")
        rules.append(RuleRef(r.get("id", ""), Effect(r.get("effect")), r.get("layer", ""), r.get("origin", ""),
                             r.get("message", ""), r.get("mode", "enforce") or "enforce"))
    version = dec.get("policy_version", "")
    if type(version) is not str:
        raise ValueError("`policy_version` must be a string")
    return request, Decision(Verdict.ASK, DecidedBy.RULE, version[:200], tuple(rules))
