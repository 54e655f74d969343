"""The audit-event table: CPython audit events (3.11–3.13) mapped to policy requests.

Each handler takes ``(plugin, args, ctx)`` and returns a tuple of ``(action, fields)``
pairs to decide (``fields`` is a tuple of ``(name, value)`` pairs of ``policy.Request``),
or ``()`` when the event needs no decision, or raises :class:`Refuse` for a structural
refusal (an argument the hook will not read, a door no grant opens in process). Handlers
run only in plugin context. docs/enforcer.md keeps the table in prose.
"""

from __future__ import annotations

import os
import socket as _socket_mod
import sys
import types
from typing import Any
from urllib.parse import urlsplit

from promptline.policy import PSEUDO_PROGRAMS, dynload_dirs, numeric_host, program_path, stdlib_dirs

from ._dirfd import caller_dir_fd
from ._paths import UntrustedArgument, fd_path, identity, lexical_alias, path_arg, realpath, resolve, resolve_identity

_fsdecode = os.fsdecode
_stat = os.stat
_get_ident = __import__("_thread").get_ident
_os_defpath = os.defpath
_real_environ = os.environ   # bound before install() replaces os.environ with the guarded view
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_CSOCKET = _socket_mod.socket.__mro__[1]  # _socket.socket, the C type
_sock_family = _CSOCKET.__dict__["family"].__get__
_sock_type = _CSOCKET.__dict__["type"].__get__
_sock_getsockname = _CSOCKET.__dict__["getsockname"]
_issubclass = issubclass
_type = type
_str, _bytes, _int, _tuple, _list = str, bytes, int, tuple, list
_AF_UNIX = getattr(_socket_mod, "AF_UNIX", -1)
_AF_INET, _AF_INET6 = _socket_mod.AF_INET, _socket_mod.AF_INET6
_AF_PACKET = getattr(_socket_mod, "AF_PACKET", -2)
_SOCK_RAW, _SOCK_DGRAM = _socket_mod.SOCK_RAW, _socket_mod.SOCK_DGRAM

NATIVE_MODULES = frozenset({
    "ctypes", "_ctypes", "cffi", "_cffi_backend", "_xxsubinterpreters", "_interpreters",
    "_xxinterpchannels", "_interpchannels", "_interpqueues", "_testcapi", "_testinternalcapi",
    "_testbuffer", "_testmultiphase", "_testsinglephase", "_testclinic", "_testimportmultiple",
})
"""Modules that open native memory, foreign code or subinterpreters: need ``native``."""

PROCESS_MODULES = frozenset({"_posixsubprocess"})
"""Raw process creation without an audit event before 3.14: needs ``process`` (or native)."""

STDLIB_NATIVE_DIRS = frozenset(d.rstrip("/") for d in dynload_dirs())
"""The base installation's ``lib-dynload`` (venv or not): its extension modules are stdlib."""
STDLIB_DIRS = tuple(stdlib_dirs())
_SITE_DIRS = ("/site-packages/", "/dist-packages/")
_STDLIB_NAMES = frozenset(getattr(sys, "stdlib_module_names", ()))
_DirEntry = os.DirEntry   # posix.DirEntry: a C type that cannot be subclassed
_direntry_path = _DirEntry.__dict__["path"].__get__

ALWAYS_REFUSED_PROC = ("/environ", "/mem", "/maps", "/auxv", "/syscall")  # under /proc/<pid>


class Refuse(Exception):
    """A structural refusal: ``(action, resource, why)``."""

    def __init__(self, action: str, resource: str, why: str) -> None:
        super().__init__(why)
        self.action = action
        self.resource = resource
        self.why = why


def _p(value, action: str):
    if _type(value) is _DirEntry:
        value = _direntry_path(value)   # the C type's own slot: no plugin code runs
    try:
        return path_arg(value)
    except UntrustedArgument as exc:
        raise Refuse(action, "<object>", f"{exc} is not read by the hook in plugin context; "
                     "pass a str, bytes or pathlib path") from None


def _proc_secret(path: str) -> bool:
    if not path.startswith("/proc/"):
        return False
    return any(path.endswith(s) or (s + "/") in path for s in ALWAYS_REFUSED_PROC)


def _fd_target(fd: int, action: str) -> str | None:
    """The file an fd names (``/proc/self/fd``); None for pipes and anonymous inodes."""
    target = fd_path(fd)
    if target.startswith(("pipe:", "anon_inode:", "socket:")):
        return None
    if not target.startswith("/"):
        raise Refuse(action, f"fd {fd} ({target or 'closed'})", "this file descriptor does not name a file")
    if target.endswith(" (deleted)"):
        target = target[:-10]
    return target


def _resolve(value, action: str, ctx, *, allow_fd: bool = True, dir_fd=None) -> str | None:
    """Absolute, symlink-free path of a path argument (or an fd's target).

    ``dir_fd`` is the event's directory fd: None or -1 (CPython's "absent") change nothing;
    a real fd makes a relative path relative to the directory the fd names."""
    p = _p(value, action)
    if p is None:
        p = "."
    if _type(p) is _int:
        if not allow_fd:
            raise Refuse(action, f"fd {p}", "a file descriptor is not accepted here")
        target = _fd_target(p, action)
        if target is None:
            return None
        p = target
    elif dir_fd is not None and dir_fd != -1 and not p.startswith("/"):
        p = _join_dir_fd(dir_fd, p, action)
    rp = resolve(p)
    if _proc_secret(rp) or _proc_secret(p):
        raise Refuse(action, rp, "process memory and environment files are never readable by plugins")
    return rp


def _join_dir_fd(dir_fd, name: str, action: str) -> str:
    if _type(dir_fd) is not _int or dir_fd < 0:
        raise Refuse(action, name, "dir_fd is not a file descriptor")
    base = _fd_target(dir_fd, action)
    if base is None:
        raise Refuse(action, f"fd {dir_fd}", "dir_fd does not name a directory")
    return base.rstrip("/") + "/" + name


def _no_dir_fd(dir_fd, action: str, path) -> None:
    if dir_fd is not None and dir_fd != -1:
        raise Refuse(action, str(path) if _type(path) is _str else "<path>",
                     "dir_fd-relative calls are refused here in plugin context; use an absolute path")


def _dir_fd(a, i):
    """The dir_fd argument at index ``i`` of an event (absent: None)."""
    return a[i] if len(a) > i else None


def _fs(action: str, path: str | None, aliases: tuple = ()):
    if path is None:
        return ()
    if aliases:
        return ((action, (("path", path), ("aliases", aliases))),)
    return ((action, (("path", path),)),)


def _fsp(action: str, value, ctx, dir_fd=None):
    """Resolve a path argument and decide it with its lexical spelling as an alias (none for
    a path relative to a real ``dir_fd``: its lexical spelling is the directory's business)."""
    rp = _resolve(value, action, ctx, dir_fd=dir_fd)
    relative = dir_fd is not None and dir_fd != -1
    return _fs(action, rp, lexical_alias(value, rp) if rp is not None and not relative else ())


# -- files ---------------------------------------------------------------------------------

def _fast_allowed(ctx, key, path: str) -> bool:
    """A cached allow for ``key`` whose path still leads to the inode it was decided for."""
    hit = ctx.fast.get(key)
    if hit is None:
        return False
    try:
        st = _stat(path)
    except (OSError, ValueError):
        return False
    return st.st_ino == hit[1] and st.st_dev == hit[0]


def h_open(plugin, a, ctx):
    path, mode, flags = a[0], a[1], a[2]
    # allows are cached keyed on the event's own arguments — (plugin, path, mode, flags),
    # exact types only, so hashing them runs nothing of the plugin's — and served while the
    # path leads to the inode they were decided for
    plain = (mode is None or _type(mode) is _str) and _type(flags) is _int
    if plain and _type(path) is _str and path.startswith("/"):
        fast = (plugin, path, mode, flags)
        if _fast_allowed(ctx, fast, path):
            return ()
    else:
        fast = None
    write = False
    if _type(mode) is _str:
        write = "w" in mode or "a" in mode or "x" in mode or "+" in mode
    if _type(flags) is _int and flags & _WRITE_FLAGS:
        write = True
    action = "fs.write" if write else "fs.read"
    raw = _p(path, action)
    if mode is None and _type(raw) is _str and not raw.startswith("/"):
        # os.open's event does not carry its dir_fd: known stdlib callers (shutil.rmtree,
        # os.fwalk) name it in their frame, any other caller is refused
        dir_fd = caller_dir_fd()
        if dir_fd is None:
            raise Refuse(action, raw, "relative os.open() paths are refused in plugin context "
                         "(a dir_fd is invisible to the hook); use an absolute path")
        if dir_fd != -1:
            raw = _join_dir_fd(dir_fd, raw, action)
    if plain and fast is None and _type(raw) is _str and raw.startswith("/"):
        fast = (plugin, raw, mode, flags)   # a bytes or pathlib spelling of an absolute path
        if _fast_allowed(ctx, fast, raw):
            return ()
    rp: str | None
    if fast is not None and not _proc_secret(raw):
        rp, ident = resolve_identity(raw)   # its lstat is the identity the cache keeps
        if _proc_secret(rp):
            raise Refuse(action, rp, "process memory and environment files are never readable by plugins")
    else:
        fast = ident = None
        rp = _resolve(raw, action, ctx)
        if rp is None:
            return ()
    if write or not ctx.free_read(plugin, rp):
        aliases = lexical_alias(raw, rp)
        fields = (("path", rp), ("aliases", aliases)) if aliases else (("path", rp),)
        if not ctx.cacheable(ctx.enforce(plugin, action, fields)):
            fast = None
    if fast is not None:
        if ident is None:
            ident = identity(rp)
        if ident is not None:
            ctx.remember_fast(fast, ident)
    return ()


def _one(action, idx=0, dir_fd_idx=None):
    def h(plugin, a, ctx):
        dir_fd = _dir_fd(a, dir_fd_idx) if dir_fd_idx is not None else None
        rp = _resolve(a[idx], action, ctx, dir_fd=dir_fd)
        if action == "fs.read" and rp is not None and ctx.free_read(plugin, rp):
            return ()
        plain = dir_fd is None or dir_fd == -1   # relative to a real dir_fd: no lexical spelling
        return _fs(action, rp, lexical_alias(a[idx], rp) if rp is not None and plain else ())
    return h


def h_list(plugin, a, ctx):
    """os.listdir / os.scandir: code roots list freely (the import system's own listings)."""
    rp = _resolve(a[0], "fs.read", ctx)
    if rp is None or ctx.free_list(plugin, rp):
        return ()
    return _fs("fs.read", rp)


def _two(src_action, dst_action, dir_fds=(None, None)):
    def h(plugin, a, ctx):
        src_fd = _dir_fd(a, dir_fds[0]) if dir_fds[0] is not None else None
        dst_fd = _dir_fd(a, dir_fds[1]) if dir_fds[1] is not None else None
        out = ()
        if src_action:
            out += _fsp(src_action, a[0], ctx, dir_fd=src_fd)
        if dst_action:
            out += _fsp(dst_action, a[1], ctx, dir_fd=dst_fd)
        return out
    return h


def h_link(plugin, a, ctx):
    # a hard link gives a second name to a file: require write access to the original too
    return _two("fs.write", "fs.write", (2, 3))(plugin, a, ctx)


def h_symlink(plugin, a, ctx):
    dst = _p(a[1], "fs.write")
    if _type(dst) is not _str:
        raise Refuse("fs.write", "<link>", "the link name is not a path")
    dir_fd = _dir_fd(a, 2)
    if dir_fd is not None and dir_fd != -1 and not dst.startswith("/"):
        dst = _join_dir_fd(dir_fd, dst, "fs.write")
    # the link itself is written, not its target (resolved whenever it is used)
    parent = realpath(os.path.dirname(dst) or ".")
    return _fs("fs.write", parent.rstrip("/") + "/" + os.path.basename(dst))


def h_glob(plugin, a, ctx):
    if len(a) > 3:
        _no_dir_fd(a[3], "fs.read", a[0])
    return ()  # the os.scandir events of each directory are decided


def h_walk(plugin, a, ctx):
    # os.walk(top, topdown, onerror, followlinks); os.fwalk(..., dir_fd): top relative to it
    return _one("fs.read", 0, 4)(plugin, a, ctx)


def h_make_archive(plugin, a, ctx):
    base = _p(a[0], "fs.write")
    out = _fs("fs.write", realpath(os.path.dirname(base) or ".") + "/" + os.path.basename(base))
    if a[2] is not None:
        out += _fsp("fs.read", a[2], ctx)
    return out


def h_unpack(plugin, a, ctx):
    out = _fsp("fs.read", a[0], ctx)
    return out + _fsp("fs.write", a[1], ctx)


def h_sqlite(plugin, a, ctx):
    db = _p(a[0], "fs.write")
    if db is None or db in (":memory:", "") or _type(db) is _int:
        return ()
    action = "fs.write"
    if db.startswith("file:"):
        body, _, query = db[5:].partition("?")
        if "mode=memory" in query:
            return ()
        if "mode=ro" in query:
            action = "fs.read"
        while body.startswith("//"):
            body = body[2:] if not body.startswith("///") else body[2:]
        db = body
        if not db:
            return ()
    return _fsp(action, db, ctx)


def h_mmap(plugin, a, ctx):
    fd = a[0]
    if _type(fd) is not _int or fd < 0:
        return ()
    return _fsp("fs.read", fd, ctx)


def h_tempfile(plugin, a, ctx):
    return _fsp("fs.write", a[0], ctx)


def h_chdir(plugin, a, ctx):
    return _fsp("fs.read", a[0], ctx)


# -- network -------------------------------------------------------------------------------

def _host(value, action) -> str | None:
    t = _type(value)
    if value is None:
        return None
    if t is _str:
        return value
    if t is _bytes:
        return value.decode("idna")
    raise Refuse(action, "<host>", f"host of type `{t.__name__}` is not read by the hook")


def _is_ip(host: str) -> bool:
    """Any numeric spelling the C resolver accepts (``127.1``, ``0x7f000001``, IPv6)."""
    try:
        return numeric_host(host) is not None
    except ValueError:
        return False


def h_resolve(plugin, a, ctx):
    host = _host(a[0], "net.resolve")
    if not host or _is_ip(host):
        return ()
    return (("net.resolve", (("host", host),)),)


def h_reverse(plugin, a, ctx):
    value = a[0]
    if _type(value) is _tuple and value:
        value = value[0]
    host = _host(value, "net.resolve")
    return (("net.resolve", (("host", host),)),) if host else ()


def _address(sock, address, action):
    if not _issubclass(_type(sock), _CSOCKET):
        raise Refuse(action, "<socket>", "not a socket")
    family = _sock_family(sock)
    if family == _AF_UNIX:
        path = address
        if _type(path) is _bytes:
            path = path.decode("utf-8", "surrogateescape")
        if _type(path) is not _str:
            raise Refuse(action, "<unix socket>", "address is not a str or bytes")
        if not path or path.startswith("\0"):
            raise Refuse(action, "unix:@" + path[1:], "abstract unix sockets are refused in plugin context")
        return None, path
    if family not in (_AF_INET, _AF_INET6):
        raise Refuse(action, f"family {family}", "only IPv4, IPv6 and unix sockets are allowed")
    if _type(address) is not _tuple or len(address) < 2:
        raise Refuse(action, "<address>", "address is not a (host, port) tuple")
    host, port = _host(address[0], action), address[1]
    if _type(port) is not _int:
        raise Refuse(action, "<address>", "port is not an int")
    if not host:   # CPython's socket: "" is the unspecified address, which reaches this host
        host = "0.0.0.0" if family == _AF_INET else "::"
    scheme = "udp" if _sock_type(sock) == _SOCK_DGRAM else "tcp"
    return (host or "", port, scheme), None


def _net(plugin, ctx, action, host, port, scheme):
    egress = ctx.egress
    if egress is not None and port == egress[1] and host == egress[0] and action == "net.connect":
        return ()   # the sandbox's egress proxy: the host decides each target it is asked for
    fields = (("host", host), ("port", port), ("scheme", scheme))
    if _is_ip(host):
        names = ctx.netmemory.names_for(plugin, host)
        if names:
            # judged by the name the plugin resolved; the IP itself is the fallback
            return tuple((action, (("host", n), ("port", port), ("scheme", scheme))) for n in names) + \
                ((action, fields),)
    return ((action, fields),)


def _sock_handler(action):
    def h(plugin, a, ctx):
        if len(a) < 2 or a[1] is None:
            return ()
        inet, unix = _address(a[0], a[1], action)
        if unix is not None:
            return _fsp("fs.write", unix, ctx) if action != "net.bind" else \
                _fs("fs.write", realpath(os.path.dirname(unix) or ".") + "/" + os.path.basename(unix))
        host, port, scheme = inet
        if action == "net.bind":
            return (("net.bind", (("host", host or "0.0.0.0"), ("port", port), ("scheme", scheme))),)
        return _net(plugin, ctx, "net.connect", host, port, scheme)
    return h


h_connect = _sock_handler("net.connect")
h_bind = _sock_handler("net.bind")


def h_listen(plugin, a, ctx):
    """``listen()`` on a socket that was never bound binds an ephemeral port: a net.bind."""
    sock = a[0] if a else None
    if not _issubclass(_type(sock), _CSOCKET):
        raise Refuse("net.bind", "<socket>", "not a socket")
    family = _sock_family(sock)
    if family not in (_AF_INET, _AF_INET6):
        return ()
    try:
        addr = _sock_getsockname(sock)
    except OSError:
        return ()
    if addr[1] != 0:
        return ()   # bound already, and the bind was decided
    host = "0.0.0.0" if family == _AF_INET else "::"
    return (("net.bind", (("host", host), ("port", 0), ("scheme", "tcp"))),)


def h_sendto(plugin, a, ctx):
    return h_connect(plugin, a, ctx)


def h_socket_new(plugin, a, ctx):
    family, stype = a[1], a[2]
    if family == _AF_PACKET or stype == _SOCK_RAW:
        return _native("socket.raw")
    return ()


def h_url(plugin, a, ctx):
    url = a[0]
    if _type(url) is not _str:
        raise Refuse("net.connect", "<url>", "url is not a str")
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443, "ftp": 21}.get(parts.scheme, 0)
    except ValueError:
        raise Refuse("net.connect", url, "malformed url") from None
    if parts.scheme in ("file", "data", ""):
        if parts.scheme == "file":
            return _fsp("fs.read", parts.path, ctx)
        return ()
    return (("net.connect", (("host", parts.hostname or ""), ("port", port),
                             ("scheme", parts.scheme), ("url", url))),)


def h_client_connect(scheme):
    def h(plugin, a, ctx):
        host = _host(a[1], "net.connect")
        port = a[2] if _type(a[2]) is _int else 0
        return _net(plugin, ctx, "net.connect", host or "", port, scheme)
    return h


# -- environment and processes -------------------------------------------------------------

def _name(value) -> str:
    if _type(value) is _str:
        return value
    if _type(value) is _bytes:
        return value.decode("utf-8", "surrogateescape")
    raise Refuse("env.write", "<name>", "variable name is not a str or bytes")


def h_putenv(plugin, a, ctx):
    return (("env.write", (("name", _name(a[0])),)),)


def _argv(value) -> tuple[str, ...]:
    t = _type(value)
    if t is _str or t is _bytes:
        return (_p(value, "process.exec"),)
    if t is _list or t is _tuple:
        out = []
        for item in _list(value):
            s = _p(item, "process.exec")
            if _type(s) is not _str:
                raise Refuse("process.exec", "<argv>", "argv item is not a str, bytes or path")
            out.append(s)
        return _tuple(out)
    if value is None:
        return ()
    raise Refuse("process.exec", "<argv>", f"argv of type `{t.__name__}` is not read by the hook")


def _exec_path_env(env) -> str | None:
    """PATH of an ``env`` argument the child gets (exact dict only), else the real one."""
    if _type(env) is dict:
        for key in ("PATH", b"PATH"):
            value = dict.get(env, key)
            if _type(value) is _str or _type(value) is _bytes:
                return _fsdecode(value)
        return _os_defpath
    return _real_environ.get("PATH", _os_defpath)


def _exec(path, argv, env=None, cwd=None, search=True):
    argv = _argv(argv)
    p = _p(path, "process.exec") if path is not None else (argv[0] if argv else "")
    if _type(p) is not _str:
        raise Refuse("process.exec", "<program>", "program is not a path")
    if not argv:
        argv = (p,)
    if p and p not in PSEUDO_PROGRAMS and (search or "/" in p):
        # the file the kernel will execute (PATH lookup as execvp does it, symlinks resolved)
        c = _p(cwd, "process.exec") if cwd is not None else None
        p = program_path(p, _exec_path_env(env) if "/" not in p else None,
                         c if _type(c) is _str else None)
    return (("process.exec", (("path", p), ("argv", argv))),)


def h_popen(plugin, a, ctx):
    return _exec(a[0], a[1], a[3] if len(a) > 3 else None, a[2] if len(a) > 2 else None)


def h_system(plugin, a, ctx):
    cmd = _p(a[0], "process.exec")
    return _exec("/bin/sh", ["/bin/sh", "-c", cmd])


def h_exec(plugin, a, ctx):
    # os.exec*/posix_spawn: the path as given (execvp and posix_spawnp search before the event
    # for exec, and libc searches for spawnp with the child's PATH)
    return _exec(a[0], a[1], a[2] if len(a) > 2 else None)


def h_pty_spawn(plugin, a, ctx):
    return _exec(None, a[0])


def h_fork(plugin, a, ctx):
    return (("process.exec", (("path", "fork"), ("argv", ("fork",)))),)


def h_kill(plugin, a, ctx):
    pid, sig = a[0], a[1]
    if _type(pid) is not _int or _type(sig) is not _int:
        raise Refuse("process.exec", "kill", "pid or signal is not an int")
    return (("process.exec", (("path", "kill"), ("argv", ("kill", f"-{sig}", str(pid))))),)


def h_webbrowser(plugin, a, ctx):
    url = a[0] if _type(a[0]) is _str else "<url>"
    return (("process.exec", (("path", "webbrowser"), ("argv", ("webbrowser", url)))),)


# -- native code and introspection ---------------------------------------------------------

def _native(name: str, path: str = ""):
    return (("native.load", (("name", name), ("path", path))),)


def h_native_event(plugin, a, ctx, event=""):
    return _native(event)


def h_dlopen(plugin, a, ctx):
    name = a[0]
    return _native("ctypes.dlopen", name if _type(name) is _str else "")


def h_import(plugin, a, ctx):
    module = a[0]
    if _type(module) is not _str:
        return ()
    top = module.split(".", 1)[0]
    filename = a[1] if len(a) > 1 else None
    if module in PROCESS_MODULES or top in PROCESS_MODULES:
        if ctx.has_process(plugin) or _stdlib_imports_subprocess():
            return ()
        return _native(module)
    if module in NATIVE_MODULES or top in NATIVE_MODULES:
        return _native(module, filename if _type(filename) is _str else "")
    if _type(filename) is _str and filename:
        rp = realpath(filename)
        if is_stdlib_extension(top, rp):
            return ()
        return _native(module, rp)
    return ()


_HERE = os.path.dirname(os.path.abspath(__file__)) + "/"
_IMPORT_SYSTEM = ("<frozen importlib._bootstrap", "<frozen importlib._bootstrap_external")
_getframe = sys._getframe


def _stdlib_file(filename) -> bool:
    return _type(filename) is _str and any(filename.startswith(d) for d in STDLIB_DIRS) and \
        not any(s in filename for s in _SITE_DIRS)


def _stdlib_imports_subprocess() -> bool:
    """True when ``_posixsubprocess`` is being imported by the stdlib's ``subprocess`` module
    whose own import came from another stdlib module (``asyncio``, ``multiprocessing``...),
    not from plugin code: a plugin's ``import subprocess`` still needs a process grant."""
    f = _getframe(1)
    while f is not None and _type(f.f_code.co_filename) is _str and \
            f.f_code.co_filename.startswith((_HERE,) + _IMPORT_SYSTEM):
        f = f.f_back            # type: ignore[assignment]  # the enforcer's own frames and the import machinery
    code = f.f_code if f is not None else None
    if code is None or code.co_name != "<module>" or os.path.basename(code.co_filename) != "subprocess.py":
        return False
    f = f.f_back  # type: ignore[assignment]
    while f is not None:
        name = f.f_code.co_filename
        if _type(name) is _str and (name.startswith(_IMPORT_SYSTEM) or name.endswith("/importlib/__init__.py")):
            f = f.f_back        # type: ignore[assignment]  # the import machinery between the importer and subprocess
            continue
        return f.f_code.co_name == "<module>" and _stdlib_file(name)
    return False


def is_stdlib_extension(top: str, path: str) -> bool:
    """An extension module of the running interpreter's standard library (venv or not):
    in the base installation's lib-dynload, or a stdlib module name directly under the
    stdlib outside any site-packages."""
    parent = os.path.dirname(path)
    if parent in STDLIB_NATIVE_DIRS:
        return True
    if top in _STDLIB_NAMES and not any(s in path for s in _SITE_DIRS):
        return any(path.startswith(d) for d in STDLIB_DIRS)
    return False


def h_sqlite_ext(plugin, a, ctx):
    if len(a) > 1 and a[1] is False:
        return ()
    return _native("sqlite3.load_extension")


def h_thread_start(plugin, a, ctx):
    fn = a[0]
    if ctx.is_thread_bootstrap(fn):
        return ()  # threading.Thread.start: the thread inherits the plugin (see _hook)
    return _native("_thread.start_new_thread")


def h_exec_code(plugin, a, ctx):
    code = a[0]
    if _type(code) is ctx.code_type:
        ctx.owners.register(code, plugin)
    return ()


def h_getframe(plugin, a, ctx):
    frame = a[0]
    if frame is not None and ctx.is_enforcer_code(frame.f_code):
        return _native("sys._getframe")
    return ()


def h_getattr(plugin, a, ctx):
    obj, name = a[0], a[1]
    if name == "tb_frame":
        frame = obj.tb_frame
        if frame is not None and ctx.is_enforcer_code(frame.f_code):
            return _native("object.__getattr__:tb_frame")
    return ()


def h_setattr(plugin, a, ctx):
    if ctx.is_protected_object(a[0]):
        return _native("object.__setattr__")
    return ()


_COROUTINE_CODE = types.coroutine.__code__


def _caller_code():
    """The code of the first frame above the enforcer's own (the caller of the audited call)."""
    f = _getframe(1)
    while f is not None and _type(f.f_code.co_filename) is _str and f.f_code.co_filename.startswith(_HERE):
        f = f.f_back  # type: ignore[assignment]
    return f.f_code if f is not None else None


def h_code_new(plugin, a, ctx):
    # types.coroutine (asyncio uses it at import) only sets CO_ITERABLE_COROUTINE on the
    # function's own code: the filename and everything else are kept, nothing is forged
    if _caller_code() is _COROUTINE_CODE:
        return ()
    return _native("code.__new__")


def _named(event):
    def h(plugin, a, ctx):
        return _native(event)
    return h


# -- doors CPython does not audit: the enforcer's wrappers raise these events (see _hook) --

def h_mkfifo(plugin, a, ctx):
    _no_dir_fd(a[1] if len(a) > 1 else None, "fs.write", a[0])
    dst = _p(a[0], "fs.write")
    if _type(dst) is not _str:
        raise Refuse("fs.write", "<path>", "path is not a str, bytes or pathlib path")
    parent = realpath(os.path.dirname(dst) or ".")
    return _fs("fs.write", parent + "/" + os.path.basename(dst))


def h_pidfd_signal(plugin, a, ctx):
    fd, sig = a[0], a[1]
    if _type(fd) is not _int or _type(sig) is not _int:
        raise Refuse("process.exec", "kill", "pidfd or signal is not an int")
    return (("process.exec", (("path", "kill"), ("argv", ("kill", f"-{sig}", f"pidfd:{fd}")))),)


_sqlite3: Any
try:
    import _sqlite3
except ImportError:  # pragma: no cover - Python built without sqlite
    _sqlite3 = None
if _sqlite3 is not None:
    _SQLITE_CONNECTION = _sqlite3.Connection
    _set_authorizer = _sqlite3.Connection.set_authorizer
    _SQLITE_ATTACH, _SQLITE_OK, _SQLITE_DENY = _sqlite3.SQLITE_ATTACH, _sqlite3.SQLITE_OK, \
        _sqlite3.SQLITE_DENY


def _attached_file(name):
    """(action, path) an ``ATTACH DATABASE name`` opens, or None for an in-memory database."""
    if _type(name) is not _str or name in ("", ":memory:"):
        return None
    action = "fs.write"
    if name.startswith("file:"):
        body, _, query = name[5:].partition("?")
        if "mode=memory" in query:
            return None
        if "mode=ro" in query:
            action = "fs.read"
        while body.startswith("//"):
            body = body[2:]
        if not body:
            return None
        name = body
    return action, name


SQLITE_OPENING: set[int] = set()
"""Threads inside the enforcer's ``sqlite3.connect`` wrapper (see ``_hook``)."""


def h_sqlite_handle(plugin, a, ctx):
    """A connection made in plugin context without ``sqlite3.connect`` (``Connection(...)``
    directly) would escape the ATTACH authorizer the wrapper installs: refused."""
    if _get_ident() in SQLITE_OPENING:
        return ()
    raise Refuse("fs.write", "<sqlite3.Connection>", "open SQLite databases with "
                 "sqlite3.connect() in plugin context (its ATTACH statements are decided)")


def guard_sqlite(plugin: str, conn, snapshot) -> None:
    """Decide every file an ``ATTACH DATABASE`` on ``conn`` opens, as fs.write (fs.read for
    ``mode=ro``), for ``plugin``; ``snapshot()`` is the enforcer's snapshot at that time."""
    if _sqlite3 is None or not _issubclass(_type(conn), _SQLITE_CONNECTION):
        return

    def authorize(action, arg1, arg2, dbname, source):
        if action != _SQLITE_ATTACH:
            return _SQLITE_OK
        snap = snapshot()
        if snap is None:
            return _SQLITE_OK
        if arg1 is None:   # a bound or computed file name: SQLite cannot say which file
            try:
                snap.refuse(plugin, Refuse("fs.write", "<ATTACH ?>", "ATTACH DATABASE with a bound "
                                           "or computed file name is refused in plugin context; "
                                           "write the file name as a literal"))
            except PermissionError:
                return _SQLITE_DENY
        target = _attached_file(arg1)
        if target is None:
            return _SQLITE_OK
        kind, path = target
        try:
            rp = _resolve(path, kind, snap)
            if rp is not None:
                aliases = lexical_alias(path, rp)
                snap.enforce(plugin, kind, (("path", rp),) + ((("aliases", aliases),) if aliases else ()))
        except (PermissionError, Refuse, ValueError):
            return _SQLITE_DENY
        return _SQLITE_OK

    _set_authorizer(conn, authorize)


TABLE_ROWS: tuple[tuple[str, object, str], ...] = (
    # event, handler, what is decided
    ("open", h_open, "fs.read, or fs.write when mode/flags write (w a x +, O_WRONLY O_RDWR O_CREAT O_TRUNC O_APPEND); fd -> /proc/self/fd target; relative os.open refused unless its caller is shutil.rmtree or os.fwalk (decided relative to their dir_fd)"),
    ("os.listdir", h_list, "fs.read path (or fd target); the code roots list freely (imports)"),
    ("os.scandir", h_list, "fs.read path (or fd target); the code roots list freely (imports)"),
    ("os.walk", h_walk, "fs.read top"),
    ("os.fwalk", h_walk, "fs.read top (relative to a real dir_fd: the fd's directory)"),
    ("os.chdir", h_chdir, "fs.read path"),
    ("os.listxattr", _one("fs.read"), "fs.read path"),
    ("os.getxattr", _one("fs.read"), "fs.read path"),
    ("os.setxattr", _one("fs.write"), "fs.write path"),
    ("os.removexattr", _one("fs.write"), "fs.write path"),
    ("os.remove", _one("fs.write", 0, 1), "fs.write path (relative to a real dir_fd: the fd's directory)"),
    ("os.rmdir", _one("fs.write", 0, 1), "fs.write path (dir_fd as for os.remove)"),
    ("os.mkdir", _one("fs.write", 0, 2), "fs.write path (dir_fd as for os.remove)"),
    ("os.chmod", _one("fs.write", 0, 2), "fs.write path or fd target (dir_fd as for os.remove)"),
    ("os.chown", _one("fs.write", 0, 3), "fs.write path or fd target (dir_fd as for os.remove)"),
    ("os.utime", _one("fs.write", 0, 3), "fs.write path or fd target (dir_fd as for os.remove)"),
    ("os.truncate", _one("fs.write"), "fs.write path (or fd target)"),
    ("os.rename", _two("fs.write", "fs.write", (2, 3)), "fs.write src and dst (each relative to its dir_fd)"),
    ("os.link", h_link, "fs.write src and dst (a hard link renames a file; each relative to its dir_fd)"),
    ("os.symlink", h_symlink, "fs.write dst (relative to its dir_fd; the target is resolved when used)"),
    ("glob.glob", h_glob, "nothing itself (each os.scandir is decided)"),
    ("glob.glob/2", h_glob, "dir_fd refused; each os.scandir is decided"),
    ("shutil.copyfile", _two("fs.read", "fs.write"), "fs.read src, fs.write dst (an os.DirEntry is read as its path)"),
    ("shutil.copymode", _two("fs.read", "fs.write"), "fs.read src, fs.write dst"),
    ("shutil.copystat", _two("fs.read", "fs.write"), "fs.read src, fs.write dst"),
    ("shutil.copytree", _two("fs.read", "fs.write"), "fs.read src, fs.write dst"),
    ("shutil.move", _two("fs.write", "fs.write"), "fs.write src and dst"),
    ("shutil.rmtree", _one("fs.write"), "fs.write path"),
    ("shutil.chown", _one("fs.write"), "fs.write path"),
    ("shutil.make_archive", h_make_archive, "fs.write archive, fs.read root_dir"),
    ("shutil.unpack_archive", h_unpack, "fs.read archive, fs.write extract_dir"),
    ("tempfile.mkstemp", h_tempfile, "fs.write path"),
    ("tempfile.mkdtemp", h_tempfile, "fs.write path"),
    ("sqlite3.connect", h_sqlite, "fs.write database (fs.read for file:...?mode=ro); :memory: free"),
    ("sqlite3.connect/handle", h_sqlite_handle, "nothing for sqlite3.connect(), whose connection gets an authorizer deciding each ATTACH DATABASE file as fs.write (fs.read for mode=ro); a Connection made another way is refused"),
    ("promptline.os.mkfifo", h_mkfifo, "fs.write path (os.mkfifo has no CPython event; the enforcer's wrapper raises this); dir_fd refused"),
    ("promptline.os.mknod", h_mkfifo, "fs.write path (os.mknod, as above); dir_fd refused"),
    ("promptline.signal.pidfd_send_signal", h_pidfd_signal, "process.exec `kill -SIG pidfd:N` (no CPython event; the enforcer's wrapper raises this)"),
    ("promptline.threading.settrace", _named("threading.settrace"), "native.load (threading.settrace/setprofile reach host threads; no CPython event)"),
    ("mmap.__new__", h_mmap, "fs.read of the fd's target"),
    ("socket.getaddrinfo", h_resolve, "net.resolve host (IP literals need no lookup)"),
    ("socket.gethostbyname", h_resolve, "net.resolve host"),
    ("socket.gethostbyaddr", h_reverse, "net.resolve ip"),
    ("socket.getnameinfo", h_reverse, "net.resolve ip"),
    ("socket.connect", h_connect, "net.connect host:port (an IP judged by the name the plugin resolved); unix socket -> fs.write path"),
    ("socket.sendto", h_sendto, "net.connect host:port, scheme udp"),
    ("socket.sendmsg", h_sendto, "net.connect host:port when an address is given"),
    ("socket.bind", h_bind, "net.bind host:port; unix socket -> fs.write path"),
    ("promptline.socket.connect", h_connect, "net.connect, decided before the C code resolves a name (raised by the enforcer's socket.socket.connect/connect_ex wrapper)"),
    ("promptline.socket.listen", h_listen, "net.bind 0.0.0.0:0 when the socket was never bound (listen binds an ephemeral port; raised by the enforcer's socket.socket.listen wrapper)"),
    ("socket.__new__", h_socket_new, "native.load for raw and packet sockets"),
    ("socket.sethostname", _named("socket.sethostname"), "native.load"),
    ("urllib.Request", h_url, "net.connect url (file: urls -> fs.read)"),
    ("http.client.connect", h_client_connect("http"), "net.connect host:port"),
    ("ftplib.connect", h_client_connect("ftp"), "net.connect host:port"),
    ("smtplib.connect", h_client_connect("smtp"), "net.connect host:port"),
    ("poplib.connect", h_client_connect("pop3"), "net.connect host:port"),
    ("imaplib.open", h_client_connect("imap"), "net.connect host:port"),
    ("nntplib.connect", h_client_connect("nntp"), "net.connect host:port"),
    ("telnetlib.Telnet.open", h_client_connect("telnet"), "net.connect host:port"),
    ("os.putenv", h_putenv, "env.write name"),
    ("os.unsetenv", h_putenv, "env.write name"),
    ("subprocess.Popen", h_popen, "process.exec argv"),
    ("os.system", h_system, "process.exec /bin/sh -c command"),
    ("os.exec", h_exec, "process.exec argv"),
    ("os.posix_spawn", h_exec, "process.exec argv"),
    ("os.fork", h_fork, "process.exec `fork`"),
    ("os.forkpty", h_fork, "process.exec `fork`"),
    ("pty.spawn", h_pty_spawn, "process.exec argv"),
    ("os.kill", h_kill, "process.exec `kill -SIG PID`"),
    ("os.killpg", h_kill, "process.exec `kill -SIG PGID`"),
    ("signal.pthread_kill", _named("signal.pthread_kill"), "native.load"),
    ("webbrowser.open", h_webbrowser, "process.exec `webbrowser URL`"),
    ("import", h_import, "native.load for native extension modules outside the stdlib (the base installation's lib-dynload, venv or not), ctypes/cffi/subinterpreters; _posixsubprocess needs a process grant"),
    ("ctypes.dlopen", h_dlopen, "native.load"),
    ("sqlite3.enable_load_extension", h_sqlite_ext, "native.load"),
    ("sqlite3.load_extension", h_sqlite_ext, "native.load"),
    ("fcntl.ioctl", _named("fcntl.ioctl"), "native.load (TIOCSTI and friends)"),
    ("resource.setrlimit", _named("resource.setrlimit"), "native.load (process-wide)"),
    ("resource.prlimit", _named("resource.prlimit"), "native.load (process-wide)"),
    ("cpython.PyInterpreterState_New", _named("subinterpreter"), "native.load"),
    ("_thread.start_new_thread", h_thread_start, "threading.Thread allowed (attribution follows); raw threads native.load"),
    ("_thread.start_joinable_thread", h_thread_start, "as above (3.13)"),
    ("exec", h_exec_code, "nothing; the code object is registered as the plugin's (frame provenance)"),
    ("code.__new__", h_code_new, "native.load (forged code objects and filenames); types.coroutine's flag change is free"),
    ("sys._getframe", h_getframe, "native.load when the frame is the enforcer's"),
    ("object.__getattr__", h_getattr, "native.load for tb_frame of enforcer frames"),
    ("object.__setattr__", h_setattr, "native.load on enforcer and stdlib guard types"),
    ("object.__delattr__", h_setattr, "native.load on enforcer and stdlib guard types"),
    ("sys._current_frames", _named("sys._current_frames"), "native.load"),
    ("sys._current_exceptions", _named("sys._current_exceptions"), "native.load"),
    ("gc.get_objects", _named("gc.get_objects"), "native.load"),
    ("gc.get_referrers", _named("gc.get_referrers"), "native.load"),
    ("gc.get_referents", _named("gc.get_referents"), "native.load"),
    ("sys.settrace", _named("sys.settrace"), "native.load"),
    ("sys.setprofile", _named("sys.setprofile"), "native.load"),
    ("sys.addaudithook", _named("sys.addaudithook"), "native.load"),
    ("sys.monitoring.register_callback", _named("sys.monitoring.register_callback"), "native.load (3.12+)"),
    ("marshal.load", lambda p, a, c: (), "nothing (loaded code is registered when executed)"),
) + tuple((e, _named(e), "native.load") for e in (
    "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.addressof", "ctypes.call_function",
    "ctypes.cdata", "ctypes.cdata/buffer", "ctypes.create_string_buffer",
    "ctypes.create_unicode_buffer", "ctypes.get_errno", "ctypes.set_errno",
    "ctypes.string_at", "ctypes.wstring_at", "ctypes.PyObj_FromPtr",
))
EVENT_TABLE = TABLE_ROWS   # public name: (event, handler, action) rows, as docs/enforcer.md lists them

TABLE = {event: handler for event, handler, _ in TABLE_ROWS}
