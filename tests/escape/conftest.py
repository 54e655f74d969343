"""The escape suite reuses the enforcer fixtures (a real PolicySet from YAML in tmp_path)."""

import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location(
    "_pl_enforcer_conftest", pathlib.Path(__file__).parent.parent / "enforcer" / "conftest.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)

plugins = _mod.plugins
fake_log = _mod.fake_log
load_module = _mod.load_module
