"""The first code a sandboxed child runs: lock the process down, then exec the plugin.

    python -I -S -B .../_shim.py '<json spec>' -- argv...

Order: rlimits, drop every capability (when started as root), Landlock (which sets
no_new_privs), seccomp, then ``os.execve``. Nothing here imports the project (``-S``,
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
STDERR_TAG = "promptline-sandbox:"

RLIMITS = {"AS": resource.RLIMIT_AS, "CPU": resource.RLIMIT_CPU, "NOFILE": resource.RLIMIT_NOFILE,
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
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import _landlock  # noqa: E402 - siblings, loaded without the package
    import _seccomp  # noqa: E402

    for name, value in (spec.get("rlimits") or {}).items():
        try:
            limit = int(value)
            resource.setrlimit(RLIMITS[name], (limit, limit))
        except (KeyError, ValueError, OSError) as exc:
            _die(f"rlimit {name}={value}: {exc}")
    if spec.get("drop_caps", True):
        try:
            _seccomp.drop_capabilities()
        except OSError as exc:
            _die(f"dropping capabilities failed: {exc}")
    ll = spec.get("landlock")
    if ll is not None:
        try:
            _landlock.restrict([(p, int(r)) for p, r in ll.get("fs", ())],
                               connect_ports=ll.get("connect"), bind_ports=ll.get("bind"),
                               scope=bool(ll.get("scope", True)))
        except OSError as exc:
            _die(str(exc))
    sc = spec.get("seccomp")
    if sc is not None:
        try:
            _seccomp.install(allow_inet=bool(sc.get("allow_inet")))
        except OSError as exc:
            _die(str(exc))
    program, args = argv[3], argv[3:]
    try:
        os.execve(program, args, dict(os.environ))
    except OSError as exc:
        _die(f"cannot start `{program}`: {exc.strerror or exc}")


if __name__ == "__main__":
    main(sys.argv)
