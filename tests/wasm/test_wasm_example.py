"""The shipped example, examples/wasm-wordcount, loads and works as its README says."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from promptline.loaders._discovery import DiscoveredPlugin, read_manifest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "wasm-wordcount"


def test_wordcount_example(world, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("one two\nthree\n")
    ctx = world.context({"filesystem": {"read": [str(tmp_path / "docs")]}}, plugin_id="wasm-wordcount")
    manifest = read_manifest(EXAMPLE / "plugin.yaml")
    plugin = DiscoveredPlugin(manifest.id, manifest, EXAMPLE / "plugin.yaml", EXAMPLE, "directory", "example",
                              "wasm", wasm=EXAMPLE / "wordcount.wasm")
    ctx = replace(ctx, plugin=plugin, files={"wordcount.wasm": (EXAMPLE / "wordcount.wasm").read_bytes()})
    loaded = world.loader.load(ctx)
    assert {t.name for t in loaded.tools()} == {"count", "count_file"}
    r = loaded.call_tool("count", {"text": "héllo wasm\n"})
    assert r.ok and r.data == {"lines": 1, "words": 2, "characters": 11}
    r = loaded.call_tool("count_file", {"path": str(tmp_path / "docs" / "a.txt")})
    assert r.ok and r.data == {"lines": 2, "words": 3, "characters": 14}
    assert not loaded.call_tool("count_file", {"path": "/etc/passwd"}).ok
