"""Start a sandboxed child: scrubbed environment, own working dir, no inherited fds,
new session, and the shim that applies rlimits, capabilities, Landlock and seccomp.

:func:`sandbox_spec` turns a manifest's capabilities into a :class:`SandboxSpec` (pure data,
easy to test and to show in ``plugin info``); :func:`spawn` starts the child with it.
With ``netns`` the child gets its own network namespace and reaches the network only
through the host's egress proxy (``_netns``, ``_egress``); with ``container`` it runs under
bubblewrap (:func:`container_argv`): a mount namespace holding only what ``fs`` names.
"""

from __future__ import annotations

import glob as _glob
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptline.policy import baseline_paths, env_matches, expand_path, is_glob, parse_net

from . import _landlock as ll
from . import _pids

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_shim.py")

# Resource limits for a child: the plugin's effective `limits:` (policy/_limits.py) are laid
# over these, then LoadContext.options["rlimits"]. Memory is RLIMIT_DATA (private writable
# memory), never RLIMIT_AS: Node/V8, Deno and the JVM reserve far more address space than
# they use, and a fixed address-space cap broke Node's `fetch`.
DEFAULT_RLIMITS: Mapping[str, int] = {
    "DATA": 4 * 1024 ** 3,   # bytes of private writable memory (heap, mmap'd data)
    "CPU": 600,              # seconds of CPU time over the child's life
    "NOFILE": 1024,          # open file descriptors
    "NPROC": 64,             # processes of the real uid (a root host's child: of its pids cgroup)
    "CORE": 0,               # no core dumps (they would leak memory to disk)
    "FSIZE": 1024 ** 3,      # largest file the child may write
}
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
UNPRIVILEGED_UIDS = (0x40000000, 0x7FFFFFFE)
"""A child started by root gets a real gid of its own, drawn from this unused range at each
start, and its processes are counted by a pids cgroup of its own (``_pids``: the kernel
exempts a real uid of 0 from RLIMIT_NPROC). Its real uid stays the effective one, so
``access(2)`` (real ids) agrees with ``open(2)``: programs like git that ask before they
write can use the granted dirs. Real and effective gid differ at exec, so the child runs in
secure-execution mode (AT_SECURE): glibc drops ``TMPDIR`` and the loader variables, and the
process is not dumpable; ``TMP``/``TEMP`` still name the work dir. Where the host cannot make
a pids cgroup (or the child has no Landlock, or may write into the cgroup filesystem) the
child gets a real *uid* drawn from this range instead, so RLIMIT_NPROC binds: a uid shared
by every child (like ``nobody``) would share one count among all plugins on the machine;
``access(2)`` then refuses what only the effective uid may do."""

LOADER_VARIABLE = re.compile(
    r"^(LD_.*|DYLD_.*|PYTHON.*|PERL5?LIB|PERL5OPT|RUBYOPT|RUBYLIB|NODE_OPTIONS|NODE_PATH|"
    r"GCONV_PATH|GETCONF_DIR|HOSTALIASES|LOCALDOMAIN|RES_OPTIONS|MALLOC_.*|GLIBC_TUNABLES|"
    r"BASH_ENV|ENV|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|CLASSPATH|GEM_PATH|GEM_HOME|LUA_PATH|LUA_CPATH|"
    r"TCL_LIBRARY|SSL_CERT_FILE|SSL_CERT_DIR|OPENSSL_CONF|OPENSSL_MODULES)$")
"""Variables that change what code a program loads: only an exact-name grant passes them."""

SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin",
               "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/proc/self")
"""Read-only paths any program needs to start (no /etc/passwd, no /home, no /root); the
policy's read-only system baseline (``policy.baseline_paths``: time zones, CA certificates,
locale data, resolver files with a network capability...) is added to it."""
DEVICES = (("/dev/null", ll.READ_FILE | ll.WRITE_FILE), ("/dev/zero", ll.READ_FILE),
           ("/dev/urandom", ll.READ_FILE), ("/dev/random", ll.READ_FILE))


@dataclass(frozen=True)
class SandboxSpec:
    """Everything the child is allowed, as data."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    rlimits: Mapping[str, int]
    fs: tuple[tuple[str, int], ...]           # (path, landlock rights)
    connect_ports: tuple[int, ...] | None     # None: TCP connect not restricted by port
    bind_ports: tuple[int, ...] | None
    allow_inet: bool
    landlock: bool = True
    seccomp: bool = True
    notes: tuple[str, ...] = field(default=(), compare=False)   # where the kernel is broader than policy
    netns: bool = False              # own network namespace; the network only through the proxy
    exec_guard: bool = False         # no `process` grant: only the shim's own exec runs
    ruid: tuple[int, int] | None = None   # a root host's child: a real gid (or, without a pids
                                          # cgroup, uid) drawn from this range
    container: bool = False          # under bubblewrap: only `fs` is mounted
    fork_from: tuple[str, ...] = ()  # a Python bootstrap: forked from the template process with this
                                     # sys.path (``_template``), the walls put up after the fork

    def shim_spec(self, channel: int | None = None) -> dict[str, Any]:
        connect = self.connect_ports
        if self.netns:
            connect = ()   # nothing but loopback exists: only the proxy port (the shim adds it)
        return {"rlimits": dict(self.rlimits), "drop_caps": True,
                "landlock": {"fs": [list(r) for r in self.fs],
                             "connect": None if connect is None else list(connect),
                             "bind": None if self.bind_ports is None else list(self.bind_ports)}
                if self.landlock else None,
                "seccomp": {"allow_inet": self.allow_inet, "listen": bool(self.bind_ports),
                            "exec_guard": self.exec_guard and channel is not None,
                            "notify": channel is not None} if self.seccomp else None,
                "netns": ("inherited" if self.container else "new") if self.netns else None,
                "proxy": bool(self.netns and self.allow_inet), "channel": channel,
                "ruid": None if self.ruid is None else list(self.ruid)}


def scrub_env(granted: Sequence[str], environ: Mapping[str, str] | None = None, *,
              defaults: Mapping[str, str] = ()) -> dict[str, str]:
    """The granted variables of ``environ`` (names or ``PREFIX_*`` patterns). Loader
    variables pass only when granted by their exact name; ``defaults`` fill what is unset."""
    environ = os.environ if environ is None else environ
    exact = {g for g in granted if "*" not in g}
    out: dict[str, str] = {}
    for name, value in environ.items():
        if LOADER_VARIABLE.match(name):
            if name in exact:
                out[name] = value
            continue
        if name in exact or any(env_matches(name, g) for g in granted if "*" in g):
            out[name] = value
    for k, v in dict(defaults).items():
        out.setdefault(k, v)
    return out


def _base_dir(path: str) -> str:
    """The directory Landlock can grant for a capability path (globs are cut at their first
    wildcard component, so the kernel rule is the smallest directory covering the grant)."""
    p = expand_path(path) if not path.startswith("**") else "/"
    if is_glob(p):
        parts = []
        for part in p.split("/"):
            if is_glob(part):
                break
            parts.append(part)
        p = "/".join(parts) or "/"
    return p.rstrip("/") or "/"


def elf_interpreter(path: str) -> str | None:
    """PT_INTERP of an ELF file (its dynamic loader), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:   # 64-bit only
                return None
            order = "<" if head[5] == 1 else ">"
            import struct
            phoff = struct.unpack_from(order + "Q", head, 32)[0]
            phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
            for i in range(min(phnum, 64)):
                fh.seek(phoff + i * phentsize)
                ph = fh.read(56)
                ptype = struct.unpack_from(order + "I", ph, 0)[0]
                if ptype == 3:   # PT_INTERP
                    off, size = struct.unpack_from(order + "Q", ph, 8)[0], struct.unpack_from(order + "Q", ph, 32)[0]
                    fh.seek(off)
                    return fh.read(min(size, 4096)).rstrip(b"\0").decode()
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return None


def executables(program: str, path_env: str = DEFAULT_PATH, depth: int = 0) -> list[str]:
    """Real paths the kernel opens for exec when starting ``program``: the file, its ELF
    loader, and for ``#!`` scripts the interpreter (``/usr/bin/env X`` resolves X)."""
    found = program if "/" in program else shutil.which(program, path=path_env)
    if not found or depth > 3:
        return []
    real = os.path.realpath(found)
    out = [real]
    interp = elf_interpreter(real)
    if interp:
        out.append(os.path.realpath(interp))
    else:
        try:
            with open(real, "rb") as fh:
                first = fh.readline(256)
        except OSError:
            first = b""
        if first.startswith(b"#!"):
            words = first[2:].decode("utf-8", "replace").split()
            if words:
                out += executables(words[0], path_env, depth + 1)
                if os.path.basename(words[0]) == "env":
                    rest = [w for w in words[1:] if not w.startswith("-")]
                    if rest:
                        out += executables(rest[0], path_env, depth + 1)
    return out


def sandbox_spec(manifest: Any, argv: Sequence[str], *, workdir: str, code_dirs: Sequence[str] = (),
                 read_files: Sequence[str] = (), rlimits: Mapping[str, int] | None = None,
                 environ: Mapping[str, str] | None = None, landlock: bool = True,
                 extra_env: Mapping[str, str] | None = None,
                 bind_ports: Sequence[int] = (), netns: bool = False, container: bool = False,
                 exec_guard: bool | None = None) -> SandboxSpec:
    """Derive the child's sandbox from ``manifest.capabilities``.

    ``workdir`` is the child's own writable directory (cwd, HOME, TMPDIR); ``code_dirs``
    are read-only trees it runs code from (the plugin, the interpreter's packages);
    ``read_files`` single files it must read (policy files). Manifests grant TCP connect
    only; ``bind_ports`` are ports a policy rule lets it listen on (none by default).
    ``netns``: own network namespace, the network through the host's proxy only;
    ``container``: under bubblewrap (implies ``netns``); ``exec_guard`` (default: when
    nothing is granted in ``process``): no exec after the plugin's own (it needs the host
    channel: :func:`spawn` without one runs without the guard and the refusal records).
    """
    netns = netns or container
    caps = manifest.capabilities
    notes: list[str] = []
    fs: list[tuple[str, int]] = []
    for p in SYSTEM_READ:
        fs.append((p, ll.READ))
    for p in baseline_paths(network=bool(caps.network), programs=caps.process):
        if not any(p == d or p.startswith(d + "/") for d in SYSTEM_READ):   # /usr/... is there already
            fs.append((p, ll.READ))
    fs.extend(DEVICES)
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.realpath(sys.prefix),
              os.path.realpath(sys.base_prefix)}:
        fs.append((p, ll.READ))
    fs.append((os.path.realpath(sys.executable), ll.READ_FILE | ll.EXECUTE))   # the shim's python
    for d in code_dirs:
        fs.append((os.path.realpath(d), ll.READ))
    for f in read_files:
        fs.append((os.path.realpath(f), ll.READ_FILE))
    for p in caps.filesystem.read:
        base = _base_dir(p)
        if base != expand_path(p).rstrip("/"):
            notes.append(f"filesystem read `{p}`: the kernel rule covers `{base}`")
        fs.append((base, ll.READ))
    for p in caps.filesystem.write:
        base = _base_dir(p)
        if base != expand_path(p).rstrip("/"):
            notes.append(f"filesystem write `{p}`: the kernel rule covers `{base}`")
        fs.append((base, ll.WRITE))
    fs.append((workdir, ll.WRITE))
    path_env = (environ or os.environ).get("PATH", DEFAULT_PATH) if "PATH" in caps.environment else DEFAULT_PATH
    exe: list[str] = []
    exe += executables(argv[0], path_env)
    if not exe:
        raise FileNotFoundError(argv[0])
    for prog in caps.process:
        exe += executables(prog, path_env)
    for e in dict.fromkeys(exe):
        fs.append((e, ll.READ_FILE | ll.EXECUTE))
    connect: list[int] | None = []
    for entry in caps.network:
        spec = parse_net(entry)
        if spec.port is None:
            connect = None
            notes.append(f"network `{entry}` has no port: TCP connect is not restricted by port")
        elif connect is not None:
            connect.append(spec.port)
    if caps.network:
        notes.append("network: only loopback in the child's namespace; the host's egress proxy decides "
                     "every host and port" if netns else
                     "network hosts are checked by the in-child enforcer; the kernel checks TCP ports only")
    if exec_guard is None:
        exec_guard = not caps.process
    if caps.process:
        notes.append("process: granted programs may be started, so the dynamic loader is executable too")
    env = scrub_env(caps.environment, environ,
                    defaults={"PATH": DEFAULT_PATH, "HOME": workdir, "TMPDIR": workdir,
                              "TMP": workdir, "TEMP": workdir, "LANG": "C.UTF-8"})
    env.update(extra_env or {})   # the host's own variables for the child win over inherited ones
    limits = dict(DEFAULT_RLIMITS)
    limits.update(rlimits or {})
    return SandboxSpec(argv=tuple(argv), env=env, cwd=workdir, rlimits=limits,
                       fs=tuple(dict.fromkeys(fs)), connect_ports=None if connect is None else tuple(connect),
                       bind_ports=tuple(bind_ports),
                       allow_inet=bool(caps.network), landlock=landlock, notes=tuple(notes),
                       netns=netns, container=container, exec_guard=bool(exec_guard),
                       ruid=UNPRIVILEGED_UIDS if os.geteuid() == 0 else None)


def shim_argv(spec: SandboxSpec, channel: int | None = None, shim: Mapping[str, Any] | None = None) -> list[str]:
    import json
    shim = spec.shim_spec(channel) if shim is None else shim
    return [sys.executable, "-I", "-S", "-B", SHIM, json.dumps(shim, separators=(",", ":")), "--", *spec.argv]


WRITE_RIGHTS = ll.WRITE_FILE | ll.MAKE_REG | ll.MAKE_DIR | ll.REMOVE_FILE | ll.REMOVE_DIR | ll.TRUNCATE


def pids_group(spec: SandboxSpec) -> _pids.PidsGroup | None:
    """A root host's child's own pids cgroup (its process count, in place of an unprivileged
    real uid: ``_pids``), or None: not root, no Landlock (nothing would keep the child out of
    the cgroup filesystem), a write grant reaching the cgroup filesystem, or no pids
    controller this host can write — the child then gets the unprivileged real uid."""
    if spec.ruid is None or not spec.landlock:
        return None
    if not _pids.usable_for(p for p, rights in spec.fs if rights & WRITE_RIGHTS):
        return None
    return _pids.create(int(spec.rlimits.get("NPROC", DEFAULT_RLIMITS["NPROC"])))


BWRAP = "bwrap"
CONTAINER_HOSTNAME = "promptline"


def bwrap_path() -> str | None:
    return shutil.which(BWRAP, path=DEFAULT_PATH)


def container_argv(spec: SandboxSpec, inner: Sequence[str], pids: str | None = None) -> list[str]:
    """bubblewrap around ``inner``: a mount namespace with the paths of ``spec.fs`` only
    (read-only unless the rule writes; symlinks as symlinks), a fresh /proc, a minimal /dev,
    a private /tmp, and new PID, IPC, UTS, network and cgroup namespaces. ``pids``: the
    child's own pids cgroup, mounted at its path for the shim to join (Landlock grants no
    right on it)."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise FileNotFoundError(BWRAP)
    out = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
           "--unshare-net", "--unshare-cgroup-try", "--hostname", CONTAINER_HOSTNAME,
           "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", spec.cwd]
    if os.geteuid() != 0:
        out.append("--unshare-user")
    else:
        # the shim joins its pids cgroup and sets an unprivileged real gid (or, without the
        # cgroup, real uid), then drops all
        out += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    paths = {p: r for p, r in spec.fs if not (p == "/proc" or p.startswith(("/proc/", "/dev/")) or p == "/dev")}
    for p in (os.path.dirname(SHIM), os.path.realpath(sys.executable)):
        paths.setdefault(p, ll.READ_FILE | ll.EXECUTE if p != os.path.dirname(SHIM) else ll.READ)
    for path in sorted(paths, key=lambda p: (p.count("/"), p)):
        rights = paths[path]
        if os.path.islink(path):
            out += ["--symlink", os.readlink(path), path]
        elif rights & (ll.WRITE_FILE | ll.MAKE_REG):
            out += ["--bind-try", path, path]
        else:
            out += ["--ro-bind-try", path, path]
    if pids is not None:   # last: no read grant's mount covers it
        out += ["--bind", pids, pids]
    out += ["--chdir", spec.cwd, "--", *inner]
    return out


def spawn(spec: SandboxSpec, channel: int | None = None) -> subprocess.Popen:
    """Start the child: pipes for stdio, nothing else inherited (but ``channel``, the host's
    egress and seccomp-listener socket), its own session. A spec with ``fork_from`` is forked
    from the template process when one can run (a ``_template.ForkedProcess``), else exec'd."""
    shim = spec.shim_spec(channel)
    group = pids_group(spec)
    if group is not None:
        shim.update(pids=group.procs, ruid=None, rgid=list(spec.ruid or UNPRIVILEGED_UIDS))
    try:
        proc = _start(spec, channel, shim, group)
    except BaseException:
        if group is not None:
            group.release(wait=0)
        raise
    proc.pids_group = group   # type: ignore[attr-defined]  # released when the child is reaped
    return proc


def release(proc: Any) -> None:
    """After the child and its processes are gone: remove its pids cgroup, if it had one."""
    group = getattr(proc, "pids_group", None)
    if group is not None:
        proc.pids_group = None
        group.release()


def _start(spec: SandboxSpec, channel: int | None, shim: dict[str, Any],
           group: _pids.PidsGroup | None) -> subprocess.Popen:
    if spec.fork_from and not spec.container:
        from . import _template
        forked = _template.spawn({"shim": shim, "argv": list(spec.argv),
                                  "env": dict(spec.env), "cwd": spec.cwd}, channel, spec.fork_from)
        if forked is not None:
            return forked   # type: ignore[return-value]  # what Child uses of a Popen
    argv = shim_argv(spec, channel, shim)
    if spec.container:
        argv = container_argv(spec, argv, pids=None if group is None else group.path)
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(spec.env), cwd=spec.cwd,
                            close_fds=True, start_new_session=True, bufsize=0,
                            executable=argv[0], pass_fds=() if channel is None else (channel,))


def ld_so_paths() -> list[str]:
    """Dynamic loaders present on this system (for diagnostics)."""
    out = []
    for pat in ("/lib64/ld-linux*.so*", "/lib/ld-linux*.so*", "/lib/*/ld-linux*.so*", "/lib/ld-musl*"):
        out += [os.path.realpath(p) for p in _glob.glob(pat)]
    return sorted(set(out))
