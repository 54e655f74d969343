"""One version grammar: a manifest's `version` loads exactly when the registry can order it."""

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptline.policy import PolicyError, SemVer, is_semver, load_manifest, requires_ok

PIECES = st.sampled_from(["0", "1", "01", "10", "2", ".", "-", "+", "rc", "alpha", "a1", "\n", " ", "x"])
VERSIONS = st.one_of(st.lists(PIECES, max_size=9).map("".join), st.text(string.printable, max_size=12))


def manifest_loads(tmp_path, version):
    p = tmp_path / "plugin.yaml"
    p.write_text(f'id: p\nversion: "{version.encode("unicode_escape").decode()}"\nentry: {{python: "m:P"}}\n')
    try:
        load_manifest(p)
    except PolicyError:
        return False
    return True


@given(VERSIONS)
def test_manifest_and_registry_accept_the_same_versions(tmp_path_factory, version):
    tmp = tmp_path_factory.mktemp("v")
    try:
        SemVer(version)
        orderable = True
    except ValueError:
        orderable = False
    assert orderable == is_semver(version) == manifest_loads(tmp, version), repr(version)


@pytest.mark.parametrize("text", ["1.0.0-01", "01.0.0", "1.0", "1.0.0\n", " 1.0.0", "v1.0.0"])
def test_not_semantic_versions(text):
    assert not is_semver(text)


def test_precedence_and_requires():
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
             "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]   # semver.org §11
    assert sorted(order, key=SemVer) == order
    assert SemVer("1.0.0+build.1") == SemVer("1.0.0")
    assert requires_ok(">=0.1,<1.0", "0.1.0") and not requires_ok(">=0.2", "0.1.0")
    assert not requires_ok("not a spec", "0.1.0") and requires_ok("", "0.1.0")
