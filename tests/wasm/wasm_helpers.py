"""Helpers for the wasm sandbox tests: the C probe module, a policy, and a small world of
directories (read-granted, write-granted, outside) to aim it at."""

from __future__ import annotations

import json
from pathlib import Path

from promptline.enforcer import Enforcer
from promptline.loaders._discovery import DiscoveredPlugin, read_manifest
from promptline.loaders._loader import LoadContext
from promptline.loaders._wasm import WasmLoader, WasmPlugin
from promptline.policy import load_policy_set
from promptline.sdk import PluginConfig

FIXTURES = Path(__file__).parent / "fixtures"
PROBE = FIXTURES / "probe.wasm"


class World:
    """tmp/ro (granted read), tmp/rw (granted read+write), tmp/outside (not granted)."""

    def __init__(self, root: Path, loader: WasmLoader) -> None:
        self.root = root
        self.loader = loader
        self.ro = root / "ro"
        self.rw = root / "rw"
        self.outside = root / "outside"
        for d in (self.ro, self.rw, self.outside):
            d.mkdir()
        (self.ro / "a.txt").write_text("alpha")
        (self.rw / "b.txt").write_text("beta")
        (self.outside / "secret.txt").write_text("secret")
        (self.ro / "link-out.txt").symlink_to(self.outside / "secret.txt")
        (self.ro / "link-dir").symlink_to(self.outside)
        self.plugins: list[WasmPlugin] = []

    def caps(self, **extra) -> dict:
        caps = {"filesystem": {"read": [str(self.ro), str(self.rw)], "write": [str(self.rw)]},
                "environment": ["PL_TEST_GRANTED", "PL_TEST_PREFIX_*", "PL_TEST_DENIED"]}
        caps.update(extra)
        return caps

    def context(self, caps: dict | None = None, *, rules: list | None = None, options: dict | None = None,
                module: bytes | None = None, verified: bool = True, plugin_id: str = "probe") -> LoadContext:
        root = self.root / "plugins" / plugin_id
        root.mkdir(parents=True, exist_ok=True)
        data = module if module is not None else PROBE.read_bytes()
        (root / "probe.wasm").write_bytes(data)
        manifest = {"id": plugin_id, "version": "0.1.0", "types": ["tool"], "entry": {"wasm": "probe.wasm"},
                    "sandbox": "wasm", "capabilities": self.caps() if caps is None else caps}
        (root / "plugin.yaml").write_text(json.dumps(manifest))
        policy = {"apiVersion": "promptline/v1", "kind": "Policy", "layer": "org", "rules": rules or []}
        pfile = self.root / "policy.yaml"
        pfile.write_text(json.dumps(policy))
        ps = load_policy_set([str(pfile)], [str(root / "plugin.yaml")])
        plugin = DiscoveredPlugin(plugin_id, read_manifest(root / "plugin.yaml"), root / "plugin.yaml", root,
                                  "directory", f"test {plugin_id}", "wasm", wasm=root / "probe.wasm")
        files = {"probe.wasm": data, "plugin.yaml": (root / "plugin.yaml").read_bytes()} if verified else None
        return LoadContext(plugin, ps.plugins[plugin_id], Enforcer(ps), PluginConfig(plugin_id),
                           files=files, policy_files=(str(pfile),), options=options or {})

    def load(self, caps: dict | None = None, **kw) -> WasmPlugin:
        plugin = self.loader.load(self.context(caps, **kw))
        self.plugins.append(plugin)
        return plugin
