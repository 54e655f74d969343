"""Fixtures: a real PolicySet built from YAML in tmp_path, and an installed Enforcer.

The audit hook cannot be removed once added, so each test installs its enforcer and
uninstalls it afterwards: the hook then ignores every event (it only decides inside
``guard()`` or for code under a registered plugin directory).
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from promptline.enforcer import Enforcer
from promptline.policy import load_policy_set


class Plugins:
    def __init__(self, root) -> None:
        self.root = root
        self.data = root / "data"
        self.out = root / "out"
        self.data.mkdir()
        self.out.mkdir()
        (self.data / "a.txt").write_text("alpha")
        (self.data / "secret.txt").write_text("secret")
        self.enforcers: list[Enforcer] = []

    def plugin_dir(self, plugin_id: str):
        return self.root / "plugins" / plugin_id

    def make(self, caps: dict | None = None, *, plugin_id: str = "p1", rules: list | None = None,
             mode: str = "enforce", extra: dict | None = None, install: bool = True,
             files: dict | None = None, **kw) -> Enforcer:
        manifests = []
        specs = dict(extra or {})
        specs[plugin_id] = caps or {}
        for pid, c in specs.items():
            d = self.plugin_dir(pid)
            d.mkdir(parents=True, exist_ok=True)
            manifest = {"id": pid, "name": pid, "version": "1.0.0", "description": "test plugin",
                        "requires": ">=0.1", "types": ["tool"], "entry": {"python": f"{pid.replace('-', '_')}:P"},
                        "sandbox": "none", "capabilities": c}
            (d / "plugin.yaml").write_text(json.dumps(manifest))
            manifests.append(str(d / "plugin.yaml"))
        for name, text in (files or {}).items():
            (self.plugin_dir(plugin_id) / name).write_text(textwrap.dedent(text))
        policy = {"apiVersion": "promptline/v1", "kind": "Policy", "layer": "org",
                  "settings": {"trust": list(specs)}, "rules": rules or []}
        pfile = self.root / "policy.yaml"
        pfile.write_text(json.dumps(policy))
        ps = load_policy_set([str(pfile)], manifests)
        enf = Enforcer(ps, mode=mode, **kw)
        if install:
            enf.install()
        self.enforcers.append(enf)
        return enf


@pytest.fixture
def plugins(tmp_path):
    p = Plugins(tmp_path)
    yield p
    for enf in p.enforcers:
        enf.uninstall()


class FakeLog:
    """Records what the enforcer sends to the audit log (the real log has its own tests)."""

    def __init__(self, log_allows: bool = False) -> None:
        self.records: list[tuple] = []

        class S:
            pass
        self.settings = S()
        self.settings.log_allows = log_allows

    def decision(self, plugin_id, plugin_version, action, resource, decision, request=None, message=""):
        self.records.append((plugin_id, action, resource, decision["verdict"], decision.get("would_deny")))


@pytest.fixture
def fake_log():
    return FakeLog()


def real_path(p) -> str:
    return os.path.realpath(str(p))


_counter = [0]


def _load_module(directory, source: str, name: str = "mod"):
    """Load a plugin module from its directory, fresh, under a unique module name."""
    import importlib.util
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    _counter[0] += 1
    spec = importlib.util.spec_from_file_location(f"_pl_test_{name}_{_counter[0]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_module():
    return _load_module
