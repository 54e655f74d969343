"""What a sandboxed Python child has loaded before plugin code runs: the native doors
(ctypes, _posixsubprocess) are not open unless the plugin is granted them, so importing them
is an `import` the in-child enforcer decides — and refuses for a `native: false` plugin."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sandbox_helpers import load, write_python_plugin  # noqa: E402

DOORS = ("ctypes", "_ctypes", "_posixsubprocess", "subprocess", "asyncio")
PROBE = f'''
import sys
AT_IMPORT = [m for m in {DOORS!r} if m in sys.modules]
def probe(arg):
    if arg == "loaded":
        return AT_IMPORT
    try:
        import ctypes
        return "imported " + ctypes.__name__
    except Exception as exc:
        return "refused: " + type(exc).__name__
'''


def test_a_native_false_child_has_no_native_doors_open(tmp_path):
    root = write_python_plugin(tmp_path / "plugins", "plain", PROBE)
    loaded = load(root, tmp_path)
    try:
        assert loaded.plugin.call_tool("run", {"arg": "loaded"}).data == []
        got = loaded.plugin.call_tool("run", {"arg": "import"}).data
        assert got.startswith("refused"), got
    finally:
        loaded.plugin.shutdown()
    denies = [json.loads(line) for line in loaded.audit_path.read_text().splitlines()]
    assert any(r.get("action") == "native.load" and r.get("decision") == "deny" for r in denies), denies


def test_a_native_plugin_gets_ctypes(tmp_path):
    root = write_python_plugin(tmp_path / "plugins", "native", PROBE, native=True)
    loaded = load(root, tmp_path)
    try:
        assert loaded.plugin.call_tool("run", {"arg": "import"}).data == "imported ctypes"
    finally:
        loaded.plugin.shutdown()
