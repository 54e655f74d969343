"""Every validator matches the whole string: no `$` that lets a trailing newline through.

A property test over every validator regex (the value a regex accepts, plus a newline, is
refused), and the schema fields that carry them refuse `"...\\n"` at load.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptline.cli import keys_cmd, plugin_cmd
from promptline.loaders._registry import _index, _sources
from promptline.policy import PolicyError, _models, load_yaml, parse_manifest
from promptline.policy._models import parse_policy
from promptline.sdk import TOOL_NAME

VALIDATORS = {
    "policy plugin id": _models.PLUGIN_ID, "rule id": _models.RULE_ID,
    "environment entry": _models.ENV_PATTERN, "plugin selector": _models.PLUGIN_GLOB,
    "tool name": TOOL_NAME, "registry plugin id": _index.PLUGIN_ID,
    "archive name": _index.ARCHIVE_NAME, "sha256": _index.HEX64, "github source": _sources.GITHUB,
    "scp source": _sources.SCP_LIKE, "index name": _sources.INDEX_NAME, "git ref": _sources.REF,
    "key name": keys_cmd.KEY_NAME, "new plugin id": plugin_cmd.PLUGIN_ID,
}


@pytest.mark.parametrize("name", sorted(VALIDATORS))
def test_validator_refuses_a_trailing_newline(name):
    rx = VALIDATORS[name]

    @settings(max_examples=40, deadline=None)
    @given(st.from_regex(rx, fullmatch=True), st.sampled_from(["\n", "\r\n", "\n\n"]))
    def check(value, tail):
        assert rx.match(value)                 # control: the value itself is accepted
        assert rx.match(value + tail) is None

    check()


MANIFEST = "id: notes\nversion: 0.1.0\nentry: {python: 'notes:Plugin'}\n"


@pytest.mark.parametrize("field,value", [
    ("id", '"notes\\n"'), ("version", '"0.1.0\\n"'),
    ("entry", '{python: "notes:Plugin\\n"}'),
    ("capabilities", '{environment: ["HOME\\n"]}'),
])
def test_manifest_fields_refuse_a_trailing_newline(field, value):
    lines = [line for line in MANIFEST.splitlines() if not line.startswith(field + ":")]
    text = "\n".join(lines + [f"{field}: {value}"]) + "\n"
    with pytest.raises(PolicyError):
        parse_manifest(load_yaml(text, "plugin.yaml"))
    assert parse_manifest(load_yaml(MANIFEST, "plugin.yaml")).id == "notes"   # control


KEY = "ed25519:" + "A" * 43 + "="


@pytest.mark.parametrize("snippet", [
    'rules: [{id: "r1\\n", effect: deny}]',
    'rules: [{id: r1, effect: deny, plugins: ["db-*\\n"]}]',
    f'settings: {{trusted_keys: ["{KEY}\\n"]}}',
])
def test_policy_fields_refuse_a_trailing_newline(snippet):
    head = "apiVersion: promptline/v1\nkind: Policy\nlayer: org\n"
    with pytest.raises(PolicyError):
        parse_policy(load_yaml(head + snippet + "\n", "p.yaml"))
    ok = snippet.replace("\\n", "")
    assert parse_policy(load_yaml(head + ok + "\n", "p.yaml"))           # control
