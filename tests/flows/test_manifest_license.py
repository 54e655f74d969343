"""Manifest `license:` is an SPDX expression, validated with packaging.licenses: a wrong id
is one file:line error with the closest ids as the fix; a right one is shown canonical."""

from __future__ import annotations

import pytest
from cli_helpers import promptline
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.licenses import _spdx

from promptline.policy import PolicyError, load_manifest

MANIFEST = "id: demo\nversion: 0.1.0\nentry: {python: demo:Demo}\nsandbox: process\nlicense: %s\n"
IDS = sorted(v["id"] for v in _spdx.LICENSES.values() if not v["deprecated"])


def _write(tmp_path, value: str):
    d = tmp_path / "demo"
    d.mkdir(exist_ok=True)
    (d / "plugin.yaml").write_text(MANIFEST % value)
    (d / "demo.py").write_text("from promptline import ToolPlugin\nclass Demo(ToolPlugin):\n"
                               "    def tools(self):\n        return []\n")
    return d


def test_plugin_info_names_file_line_and_suggests_the_id(tmp_path):
    d = _write(tmp_path, "Apache2.0")
    r = promptline(tmp_path, "plugin", "info", f"{d}/")
    assert r.returncode != 0
    assert f"{d / 'plugin.yaml'}:5:" in r.stderr + r.stdout
    assert "`Apache2.0` is not a valid SPDX license expression" in r.stderr + r.stdout
    assert "did you mean `Apache-2.0`" in r.stderr + r.stdout
    # control: the right id is accepted and shown
    _write(tmp_path, "apache-2.0 or mit")
    ok = promptline(tmp_path, "plugin", "info", f"{d}/")
    assert ok.returncode == 0 and ok.stdout.startswith("demo 0.1.0"), ok.stderr
    assert load_manifest(d / "plugin.yaml").license == "Apache-2.0 OR MIT"


@pytest.mark.parametrize("value, close", [("MTI", "MIT"), ("GPL3", "GPL-3.0-only"), ("BSD-3", "BSD-3-Clause"),
                                          ("MIT AND Apach-2.0", "Apache-2.0"),
                                          ("GPL-2.0-only WITH Classpath-exceptio", "Classpath-exception-2.0")])
def test_wrong_ids_are_refused_with_a_suggestion(tmp_path, value, close):
    d = _write(tmp_path, f'"{value}"')
    with pytest.raises(PolicyError) as err:
        load_manifest(d / "plugin.yaml")
    assert err.value.line == 5 and f"`{close}`" in str(err.value)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(IDS), st.sampled_from(IDS), st.sampled_from([" OR ", " AND "]),
       st.sampled_from([str.lower, str.upper, lambda s: s]))
def test_every_spdx_id_and_expression_is_accepted_in_any_case(tmp_path_factory, a, b, op, case):
    d = _write(tmp_path_factory.mktemp("m"), f'"{case(a)}{op}{case(b)}"')
    assert load_manifest(d / "plugin.yaml").license == f"{a}{op}{b}"


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=20))
def test_anything_not_on_the_list_is_refused(tmp_path_factory, word):
    known = {i.lower() for i in IDS}
    if word.lower() in known or word.lower().startswith("licenseref-"):
        return
    d = _write(tmp_path_factory.mktemp("m"), f'"{word}"')
    with pytest.raises(PolicyError) as err:
        load_manifest(d / "plugin.yaml")
    assert err.value.line == 5


def test_plugin_info_shows_the_publishing_fields(tmp_path):
    import json
    d = _write(tmp_path, "mit")
    (d / "plugin.yaml").write_text((d / "plugin.yaml").read_text() + (
        "author: Ada <ada@example.org>\nhomepage: https://example.org/demo\n"
        "repository: https://github.com/example/demo\nkeywords: [notes, search]\n"))
    r = promptline(tmp_path, "plugin", "info", f"{d}/")
    assert r.returncode == 0, r.stderr
    for line in ("  author:     Ada <ada@example.org>", "  license:    MIT", "  homepage:   https://example.org/demo",
                 "  repository: https://github.com/example/demo", "  keywords:   notes, search"):
        assert line in r.stdout.splitlines(), r.stdout
    js = json.loads(promptline(tmp_path, "plugin", "info", "--json", f"{d}/").stdout)
    assert js["license"] == "MIT" and js["keywords"] == ["notes", "search"] and js["author"].startswith("Ada")
