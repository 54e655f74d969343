"""The standard library imports in plugins, for the first time under the guard, in a venv
and in the base interpreter (no venv): its extension modules (`_sqlite3`, `_decimal`,
`_multiprocessing`, `readline`...) are not native code and listing its package directories
is not an `fs.read` by the plugin. A fresh interpreter each, so nothing was imported before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap

import pytest

MODULES = ["sqlite3", "http.client", "urllib.request", "xml.etree.ElementTree", "tomllib", "statistics",
           "zoneinfo", "decimal", "csv", "zipfile", "tarfile", "gzip", "asyncio", "concurrent.futures",
           "logging.handlers", "_multiprocessing", "readline", "_statistics", "_decimal", "_zoneinfo",
           "multiprocessing.pool", "email.mime.text", "json.decoder", "sqlite3.dbapi2", "tomllib._parser"]

SCRIPT = textwrap.dedent('''
    import json, os, sys, tempfile
    site_dirs = json.loads(sys.argv[2])
    if site_dirs:                       # the base interpreter: the project's dependencies only
        import site
        for d in site_dirs:
            site.addsitedir(d)
    from promptline.enforcer import Enforcer, PolicyViolation
    from promptline.policy import load_policy_set
    root = tempfile.mkdtemp()
    pdir = os.path.join(root, "tour")
    os.mkdir(pdir)
    with open(os.path.join(pdir, "plugin.yaml"), "w") as fh:
        json.dump({"id": "tour", "version": "1.0.0", "entry": {"python": "tour:P"}, "sandbox": "none"}, fh)
    pol = os.path.join(root, "policy.yaml")
    with open(pol, "w") as fh:
        json.dump({"apiVersion": "promptline/v1", "kind": "Policy", "layer": "org",
                   "settings": {"trust": ["tour"]}}, fh)
    denies = []
    class Log:
        class settings:
            log_allows = False
        def decision(self, plugin, version, action, resource, decision, request=None, message=""):
            denies.append((action, resource, decision["verdict"]))
    enf = Enforcer(load_policy_set([pol], [os.path.join(pdir, "plugin.yaml")]), audit_log=Log()).install()
    import importlib
    failed = {}
    with enf.guard("tour"):
        direct = "imported"
        if "subprocess" not in sys.modules:
            try:   # a plugin's own import of subprocess (fork_exec has no audit event) needs a grant
                import subprocess  # noqa: F401
            except PolicyViolation:
                direct = "refused"
        else:
            direct = "host had it"
        for name in json.loads(sys.argv[1]):
            try:
                importlib.import_module(name)
            except Exception as exc:
                failed[name] = repr(exc)
        try:   # the control: native code stays refused (ctypes may be imported already)
            importlib.import_module("_testcapi")
            control = "imported"
        except PolicyViolation:
            control = "refused"
        except ImportError:
            control = "missing"
    print(json.dumps({"failed": failed, "denies": denies, "control": control, "direct": direct,
                      "venv": sys.prefix != sys.base_prefix}))
''')


def _run(python: str, site_dirs: list[str]) -> dict:
    out = subprocess.run([python, "-c", SCRIPT, json.dumps(MODULES), json.dumps(site_dirs)],
                         capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def _check(result: dict) -> None:
    assert result["failed"] == {}, result["failed"]
    assert result["control"] == "refused"
    assert result["direct"] in ("refused", "host had it")
    expected = {("native.load", "_testcapi"), ("native.load", "_posixsubprocess")}
    assert [d for d in result["denies"] if tuple(d[:2]) not in expected] == [], result["denies"]


def test_stdlib_imports_in_this_interpreter():
    _check(_run(sys.executable, []))


def test_stdlib_imports_in_the_base_interpreter_without_a_venv():
    if sys.prefix == sys.base_prefix:
        pytest.skip("already running the base interpreter")
    base = os.path.join(sys.base_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")
    if not os.path.exists(base):
        pytest.skip("no base interpreter binary")
    result = _run(base, [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    assert result["venv"] is False
    _check(result)
