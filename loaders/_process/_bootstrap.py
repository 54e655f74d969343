"""Run one Python plugin inside a sandboxed child and serve it over MCP on stdio.

    PROMPTLINE_BOOTSTRAP='<json spec>' python -I -B .../loaders/_process/_bootstrap.py

(started by the shim, after Landlock and seccomp are in force). Before any plugin code is
imported the bootstrap:

1. moves the protocol off fds 0/1 (plugin ``print`` goes to stderr, stdin reads /dev/null);
2. compiles this plugin's policy (the host's policy files + the plugin's manifest);
3. installs the Enforcer for this one plugin; its decisions travel to the host as
   ``notifications/promptline/decision`` and the host writes them to its audit log (the child
   gets no write access to the log, so it cannot forge or damage it); an ASK is sent to the
   host as a ``promptline/ask`` request (:class:`HostPrompter`) and the host's prompter and
   grants answer it (a reader thread, :class:`Inbox`, routes the reply to the waiting asker
   while the serve loop is busy in the call that asked);

then imports the plugin as that plugin (``Enforcer.guard``), binds its manifest, calls
``initialize`` and answers ``tools/*``, ``prompts/*``, ``promptline/context`` and
``promptline/complete`` (a model plugin's ``provider().complete(prompt, **options)``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

if __package__:
    from ._protocol import (
        ASK_ID_PREFIX,
        ASK_METHOD,
        BOOT_ENV,
        CALL_ID_PREFIX,
        CALL_TOOL_METHOD,
        DECISION_NOTIFICATION,
        check_version,
        versioned,
    )
else:   # run as a file by the shim: only main() runs here, and it re-enters as the package module
    BOOT_ENV = "PROMPTLINE_BOOTSTRAP"

ASK_TIMEOUT_S = 120.0           # an ask the host has not answered by then is a deny


def _import_root() -> str:
    """Source checkout fallback: the folder holding ``promptline/`` (three levels up)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Settings:
    __slots__ = ("log_allows",)

    def __init__(self, log_allows: bool) -> None:
        self.log_allows = log_allows


class ForwardingAuditLog:
    """The child's audit log: every decision worth keeping is sent to the host."""

    def __init__(self, send, log_allows: bool) -> None:
        self._send = send
        self.settings = _Settings(log_allows)

    def decision(self, plugin_id: str, plugin_version: str, action: str, resource: str,
                 decision: dict, request: dict | None = None, message: str = "") -> None:
        from ._jsonrpc import Notification, encode
        if type(decision) is not dict:
            decision = decision.to_dict()
        self._send(encode(Notification(DECISION_NOTIFICATION, versioned({
            "action": action, "resource": resource, "decision": decision,
            "request": request, "message": message}))))


class Inbox:
    """The protocol input, read by one thread: a reply to one of our asks goes to the thread
    waiting for it; every other line goes, in order, to the serve loop (``next_line``).

    So a prompter waiting inside a tool call (while the serve loop is blocked in that call)
    gets its answer, and nothing that arrives meanwhile is lost or reordered.
    """

    def __init__(self, reader) -> None:
        import queue
        import threading
        self._reader = reader
        self._lines: queue.SimpleQueue = queue.SimpleQueue()   # bytes, or the exception that ended input
        self._waiting: dict[str, list] = {}                      # ask id -> [Event, Response | None]
        self._lock = threading.Lock()
        self._ended = False
        threading.Thread(target=self._run, name="promptline-inbox", daemon=True).start()

    def _run(self) -> None:
        from . import _jsonrpc as rpc
        while True:
            try:
                line = self._reader.next_line()
            except BaseException as exc:  # noqa: BLE001 - closed, over-long line, read error
                if not isinstance(exc, rpc.ProtocolError):
                    exc = rpc.ClosedError(f"reading from the host failed: {exc}")
                with self._lock:
                    self._ended = True
                    waiters = list(self._waiting.values())
                for w in waiters:
                    w[0].set()   # no reply: the asker denies
                self._lines.put(exc)
                return
            if self._waiting and self._deliver(line):
                continue
            self._lines.put(line)

    def _deliver(self, line: bytes) -> bool:
        from . import _jsonrpc as rpc
        try:
            msg = rpc.parse(line)
        except rpc.ProtocolError:
            return False   # the serve loop reports it
        if type(msg) is not rpc.Response or not isinstance(msg.id, str) \
                or not msg.id.startswith((ASK_ID_PREFIX, CALL_ID_PREFIX)):
            return False
        with self._lock:
            w = self._waiting.get(msg.id)
        if w is None:
            return True    # a late answer to an ask that timed out: dropped
        w[1] = msg
        w[0].set()
        return True

    def next_line(self) -> bytes:
        """The serve loop's next line; raises what ended the input (again on every call)."""
        item = self._lines.get()
        if isinstance(item, BaseException):
            self._lines.put(item)
            raise item
        return item

    def exchange(self, rid: str, send, timeout: float):
        """Register ``rid``, call ``send()``, wait up to ``timeout`` s: the Response or None."""
        import threading
        w: list = [threading.Event(), None]
        with self._lock:
            if self._ended:
                return None
            self._waiting[rid] = w
        try:
            send()
            if not w[0].wait(timeout):
                return None
            return w[1]
        finally:
            with self._lock:
                self._waiting.pop(rid, None)


class HostToolCaller:
    """``PluginConfig.tool_caller`` in the child: a dependency's tool is called through the
    host (``promptline/call_tool``), which decides it as this plugin's ``tool.call`` and
    runs it in the dependency's own sandbox. No answer in time is an error result."""

    def __init__(self, inbox: Inbox, send, timeout: float = ASK_TIMEOUT_S) -> None:
        import itertools
        self._inbox, self._send, self.timeout = inbox, send, timeout
        self._ids = itertools.count(1)

    def __call__(self, name: str, args: dict):
        from promptline.sdk import ToolError, ToolResult

        from . import _jsonrpc as rpc
        rid = f"{CALL_ID_PREFIX}{next(self._ids)}"
        data = rpc.encode(rpc.Request(CALL_TOOL_METHOD, versioned({"name": name, "args": args}), rid))
        resp = self._inbox.exchange(rid, lambda: self._send(data), self.timeout)
        if resp is None or resp.error is not None:
            return ToolResult.failure(ToolError(f"the host did not answer the call to `{name}`", tool=name))
        return ToolResult.from_dict(resp.result, tool=name)


class _HostGrant:
    __slots__ = ("_ref",)

    def __init__(self, ref) -> None:
        self._ref = ref

    def rule_ref(self):
        return self._ref


class HostPrompter:
    """The in-child Enforcer's prompter: every ASK goes to the host as a ``promptline/ask``
    request and the host's prompter (and GrantStore) answers it. No answer within
    ``timeout``, a closed stream or any malformed reply is DENY; never raises.

    It also stands in for the child's grant store: remembering is the host's business, so
    ``lookup`` finds nothing and ``remember`` returns the grant the host reported for the
    last answer of this thread (or raises, and the decision records that nothing was kept).
    """

    def __init__(self, inbox: Inbox, send, timeout: float = ASK_TIMEOUT_S) -> None:
        import itertools
        import threading
        self._inbox = inbox
        self._send = send
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._local = threading.local()

    def ask(self, plugin_id, request, decision):
        from promptline.enforcer import Answer
        self._local.grant = None
        try:
            return self._ask(request, decision)
        except Exception:  # noqa: BLE001 - a prompter never raises: failing to ask is a refusal
            return Answer.DENY

    def _ask(self, request, decision):
        from promptline.enforcer import Answer
        from promptline.policy import Effect, RuleRef

        from . import _jsonrpc as rpc
        rid = f"{ASK_ID_PREFIX}{next(self._ids)}"
        data = rpc.encode(rpc.Request(ASK_METHOD, versioned({"request": request.to_dict(),
                                                             "decision": decision.to_dict()}), rid))
        resp = self._inbox.exchange(rid, lambda: self._send(data), self.timeout)
        if resp is None or resp.error is not None or type(resp.result) is not dict:
            return Answer.DENY
        result = resp.result
        try:
            check_version(result)
        except ValueError:
            return Answer.DENY
        answer = result.get("answer")
        if type(answer) is not str or answer not in ("once", "always", "deny", "never"):
            return Answer.DENY
        answer = Answer(answer)
        verdict = result.get("verdict")
        if verdict != ("allow" if answer.allows else "deny"):
            return Answer.DENY   # an answer that contradicts itself
        g = result.get("grant")
        if answer.remembered and type(g) is dict:
            fields = {k: g.get(k) for k in ("id", "layer", "origin", "message")}
            if all(type(v) is str for v in fields.values()) and g.get("effect") in ("allow", "deny"):
                self._local.grant = RuleRef(fields["id"][:200], Effect(g["effect"]), fields["layer"][:40],
                                            fields["origin"][:400], fields["message"][:400])
        return answer

    # -- the grant store stand-in

    def lookup(self, plugin_id, request):
        return None

    def remember(self, plugin_id, request, effect, asked_by=None):
        ref = getattr(self._local, "grant", None)
        self._local.grant = None
        if ref is None:
            raise RuntimeError("the host did not report a remembered grant")
        return _HostGrant(ref)


def _serve(spec: dict[str, Any], proto_in: int, proto_out: int) -> None:
    import contextlib

    import jsonschema  # noqa: F401 - argument validation needs it; imported here, as the host

    from promptline.policy import load_manifest, load_policy_set

    from . import _jsonrpc as rpc
    from ._backend import ChildPlugin, LazyLoop, PluginBackend
    from ._server import serve_mcp_loop

    writer = rpc.Writer(proto_out)
    plugin_id = spec["plugin_id"]
    manifest_path = spec["manifest"]
    if spec.get("home"):
        os.environ["PROMPTLINE_HOME"] = spec["home"]   # before any policy path is expanded
    manifest = load_manifest(manifest_path)
    policy_set = load_policy_set(spec.get("policy_files") or (), [manifest_path],
                                 grants=spec.get("grants"),
                                 plugin_facts={plugin_id: spec.get("facts") or {}})
    inbox = Inbox(rpc.LineReader(proto_in))   # its reader thread starts before the hook, as the host
    enforcer = None
    if spec.get("hooks", True):
        from promptline.enforcer import Enforcer
        audit = ForwardingAuditLog(writer.send_bytes, bool(spec.get("log_allows")))
        host = HostPrompter(inbox, writer.send_bytes)
        enforcer = Enforcer(policy_set, audit_log=audit, prompter=host, grants=host,
                            mode=spec.get("mode") or "enforce", egress=spec.get("egress"))
        enforcer.install()
        if spec.get("plugin_dir"):       # a pip-installed plugin reads its own distribution
            enforcer.register_plugin_dir(plugin_id, spec["plugin_dir"])
    guard = (lambda: enforcer.guard(plugin_id)) if enforcer is not None else contextlib.nullcontext
    # an async plugin's event loop (its self-pipe, asyncio's imports) is host business
    loop = LazyLoop(enforcer.privileged if enforcer is not None else contextlib.nullcontext)

    if manifest.capabilities.native:
        import ctypes  # noqa: F401 - granted: imported as the host, like every other child import
    sys.path.insert(0, spec["code_root"])
    if spec.get("library"):            # a native library plugin: dlopen'ed here, never in the host
        from ._library import LibraryBackend, LibraryPlugin
        serve_mcp_loop(LibraryBackend(LibraryPlugin(spec["library"], guard), plugin_id, manifest.version),
                       inbox.next_line, writer.send_bytes)
        return
    child = ChildPlugin.load(plugin_id, manifest, spec["entry"], loop=loop, guard=guard,
                             settings=spec.get("settings") or {}, data_dir=spec.get("data_dir"),
                             promptline_version=spec.get("promptline_version"),
                             tool_caller=HostToolCaller(inbox, writer.send_bytes))
    try:
        serve_mcp_loop(PluginBackend(child), inbox.next_line, writer.send_bytes)
    finally:
        child.shutdown()


EGRESS_ENV = "PROMPTLINE_EGRESS"   # set by the shim (only there) when it started the egress forwarder


def main(argv: list[str]) -> None:
    spec = json.loads(os.environ.pop(BOOT_ENV) if BOOT_ENV in os.environ else argv[1])
    host, _, port = os.environ.pop(EGRESS_ENV, "").rpartition(":")
    spec["egress"] = [host, int(port)] if host and port.isdigit() else None
    # the protocol gets private fds; what the plugin prints goes to stderr
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    for p in reversed(spec.get("sys_path") or [_import_root()]):
        if p not in sys.path:
            sys.path.insert(0, p)
    if __package__ in (None, ""):
        # run as a file: re-enter as the package module so relative imports resolve
        import importlib
        mod = importlib.import_module("promptline.loaders._process._bootstrap")
        mod._serve_main(spec, proto_in, proto_out)
        return
    _serve_main(spec, proto_in, proto_out)


def _serve_main(spec: dict[str, Any], proto_in: int, proto_out: int) -> None:
    try:
        _serve(spec, proto_in, proto_out)
    except BaseException as exc:
        import traceback
        traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"promptline-bootstrap: plugin `{spec.get('plugin_id')}` failed to start: "
                         f"{type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
        os._exit(3)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
