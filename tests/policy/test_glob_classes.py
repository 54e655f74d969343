"""Glob bracket classes: never an error, never across `/`, fnmatch's meaning within a component."""

from __future__ import annotations

import fnmatch

from hypothesis import given, settings
from hypothesis import strategies as st

from promptline.policy import glob

GLOB_TEXT = st.text(alphabet="ab_-[]!^?*/.\\", max_size=12)
COMPONENT = st.text(alphabet="ab_-[]!?*.", max_size=8)


@settings(max_examples=600, deadline=None)
@given(GLOB_TEXT, st.text(alphabet="ab_-[]!^/.\\", max_size=12))
def test_any_pattern_compiles_and_matches_without_error(pattern, path):
    glob("/" + path, "/" + pattern)      # `[]`, `[!]`, `[\\]`... are patterns, never re.error


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet="ab_-]!^./", min_size=1, max_size=6), st.booleans(),
       st.text(alphabet="ab", max_size=3), st.text(alphabet="ab", max_size=3))
def test_a_class_never_matches_a_slash(members, negate, before, after):
    pattern = f"/{before}[{'!' if negate else ''}{members}]{after}"
    assert not glob(f"/{before}/{after}", pattern)


@settings(max_examples=600, deadline=None)
@given(COMPONENT, st.text(alphabet="ab_-[]!.", max_size=8))
def test_within_one_component_a_glob_means_what_fnmatch_means(pattern, name):
    assert glob("/d/" + name, "/d/" + pattern) is fnmatch.fnmatchcase(name, pattern)
