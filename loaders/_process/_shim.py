"""The first code a sandboxed child runs: lock the process down, then exec the plugin.

    python -I -S -B .../_shim.py '<json spec>' -- argv...

Order: rlimits; the network and PID namespaces (``netns: new``: the plugin becomes pid 2
under a small init, see ``_netns.become_init``; ``inherited`` when bubblewrap made them) and
the egress forwarder (``_netns``); when started as root, the process count: its own pids
cgroup (``pids``, made by the host, ``_pids``: RLIMIT_NPROC does not bind uid 0, and the real
uid stays the effective one, so ``access(2)`` agrees with ``open(2)``) and a real gid apart
from the effective one (``rgid``: secure-execution mode and not dumpable at every exec), or where the host has
no pids cgroup an unprivileged real uid (``ruid``, drawn per start from an unused range, each
child counting only its own processes; the effective uid stays, so file ownership is
unchanged, and seccomp forbids switching back); drop every capability; Landlock (which
sets no_new_privs); seccomp (its listener fd, if any, goes to the host over the channel);
then ``os.execve``. Nothing here imports the project (``-S``,
standard library only) so no plugin-controlled file is read before the walls stand. Any
failure exits with :data:`EXIT_SANDBOX_FAILED` and one line on stderr starting with
``promptline-sandbox:`` — the host turns it into a clear error; it never runs the plugin
half-confined.
"""

from __future__ import annotations

import json
import os
import resource
import sys

EXIT_SANDBOX_FAILED = 125
EGRESS_ENV = "PROMPTLINE_EGRESS"   # host:port of the egress proxy, for the bootstrap
STDERR_TAG = "promptline-sandbox:"

RLIMITS = {"AS": resource.RLIMIT_AS, "DATA": resource.RLIMIT_DATA, "CPU": resource.RLIMIT_CPU,
           "NOFILE": resource.RLIMIT_NOFILE,
           "NPROC": resource.RLIMIT_NPROC, "CORE": resource.RLIMIT_CORE, "FSIZE": resource.RLIMIT_FSIZE}


def _die(message: str) -> None:
    os.write(2, f"{STDERR_TAG} {message}\n".encode("utf-8", "replace"))
    os._exit(EXIT_SANDBOX_FAILED)


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--":
        _die("usage: _shim.py SPEC -- PROGRAM [ARGS...]")
    try:
        spec = json.loads(argv[1])
    except ValueError as exc:
        _die(f"bad spec: {exc}")
    confine(spec)
    program, args = argv[3], argv[3:]
    try:
        os.execve(program, args, dict(os.environ))
    except OSError as exc:
        _die(f"cannot start `{program}`: {exc.strerror or exc}")


def _walls():
    """The wall modules: package siblings, or (run as a file with ``-S``) loaded by path."""
    if __package__:
        from . import _landlock, _netns, _seccomp
        return _landlock, _netns, _seccomp
    import importlib
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # siblings, without the package
    return tuple(importlib.import_module(name) for name in ("_landlock", "_netns", "_seccomp"))


def confine(spec: dict) -> None:
    """Put every wall of the shim spec around this process (the order in the module
    docstring); on any failure exit with :data:`EXIT_SANDBOX_FAILED`. With ``netns: new``
    it returns in the plugin's process only (PID 2 of the new PID namespace)."""
    _landlock, _netns, _seccomp = _walls()
    for name, value in (spec.get("rlimits") or {}).items():
        try:
            limit = int(value)
            resource.setrlimit(RLIMITS[name], (limit, limit))
        except (KeyError, ValueError, OSError) as exc:
            _die(f"rlimit {name}={value}: {exc}")
    channel = spec.get("channel")
    if channel is not None:
        channel = int(channel)
        os.set_inheritable(channel, False)   # the plugin never holds the host's channel
    netns = spec.get("netns")
    if netns == "new":
        # `pid_namespace: made`: this process already is PID 2 of a PID namespace, under an
        # init its parent (the template process) made; only the network namespace is missing
        made = spec.get("pid_namespace") == "made"
        try:
            _netns.enter_new_netns(pid=not made)
        except OSError as exc:
            _die(f"cannot make the network and PID namespaces: {exc}")

        def confine_init() -> None:   # no files, no network, no exec; it may signal its child
            _seccomp.drop_capabilities()
            _landlock.restrict([], connect_ports=[], bind_ports=[], scope=False)
            _seccomp.install(allow_inet=False)
        if not made:
            _netns.become_init((channel,) if channel is not None else (), confine_init)
    if netns is not None and not _netns.only_loopback():
        _die("the network namespace has interfaces besides loopback")
    ll = spec.get("landlock")
    connect = None if ll is None else ll.get("connect")
    os.environ.pop(EGRESS_ENV, None)   # only the shim says where its proxy is
    if spec.get("proxy"):
        if channel is None or netns is None:
            _die("the egress proxy needs the host channel and a network namespace")

        def confine() -> None:
            _seccomp.drop_capabilities()
            _landlock.restrict([], connect_ports=[], bind_ports=[])
            _seccomp.install(allow_inet=False)
        try:
            port = _netns.start_forwarder(channel, confine)
        except OSError as exc:
            _die(f"cannot start the egress forwarder: {exc}")
        url = f"http://127.0.0.1:{port}"
        for name, value in (("HTTP_PROXY", url), ("HTTPS_PROXY", url),
                            ("ALL_PROXY", f"socks5h://127.0.0.1:{port}"), ("NO_PROXY", "")):
            os.environ[name] = os.environ[name.lower()] = value
        os.environ[EGRESS_ENV] = f"127.0.0.1:{port}"
        if connect is not None:
            connect = [*connect, port]
    pids = spec.get("pids")
    if pids is not None:   # a root host's child: its own pids cgroup counts its processes
        try:
            fd = os.open(str(pids), os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError as exc:
            _die(f"cannot join the pids cgroup {pids} (RLIMIT_NPROC would not bind root): {exc.strerror or exc}")
    rgid = spec.get("rgid")
    if rgid is not None and os.getuid() == 0:
        # the real gid apart from the effective one: every exec stays in secure-execution mode
        # and not dumpable, as with a real uid of its own; the effective gid is among the
        # supplementary groups, so access(2) (real ids) agrees with open(2) on group bits too
        low, high = (int(v) for v in rgid)
        gid, egid = low + int.from_bytes(os.urandom(4), "little") % (high - low + 1), os.getegid()
        try:
            os.setgroups(sorted({*os.getgroups(), egid}))
            os.setresgid(gid, egid, egid)
        except OSError as exc:
            _die(f"cannot set the real gid {gid}: {exc}")
    ruid = spec.get("ruid")
    if ruid is not None and pids is None and os.getuid() == 0:
        low, high = (int(v) for v in ruid)
        ruid = low + int.from_bytes(os.urandom(4), "little") % (high - low + 1)   # this child's own count
        try:
            os.setresuid(ruid, os.geteuid(), os.geteuid())
        except OSError as exc:
            _die(f"cannot set the real uid {ruid} (RLIMIT_NPROC would not bind root): {exc}")
    if spec.get("drop_caps", True):
        try:
            _seccomp.drop_capabilities()
        except OSError as exc:
            _die(f"dropping capabilities failed: {exc}")
    if ll is not None:
        try:
            _landlock.restrict([(p, int(r)) for p, r in ll.get("fs", ())],
                               connect_ports=connect, bind_ports=ll.get("bind"),
                               scope=bool(ll.get("scope", True)))
        except OSError as exc:
            _die(str(exc))
    sc = spec.get("seccomp")
    if sc is not None:
        guard, notify = bool(sc.get("exec_guard")), bool(sc.get("notify"))
        if (guard or notify) and channel is None:
            _die("the exec guard needs the host channel")
        try:
            listener = _seccomp.install(allow_inet=bool(sc.get("allow_inet")), listen=bool(sc.get("listen")),
                                        exec_guard=guard, notify=notify)
        except OSError as exc:
            _die(str(exc))
        if listener is not None and channel is not None:   # (no channel: refused above)
            import socket
            try:
                socket.send_fds(socket.socket(fileno=os.dup(channel)), [_netns.TAG_LISTENER], [listener])
            except OSError as exc:
                _die(f"cannot hand the seccomp listener to the host: {exc}")
            os.close(listener)
    if channel is not None:
        os.close(channel)


if __name__ == "__main__":
    main(sys.argv)
