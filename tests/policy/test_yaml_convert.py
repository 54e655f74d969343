"""The line-aware loader builds exactly the data PyYAML's safe loader builds."""

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from promptline.policy._yaml import load_yaml

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), _text,
                     st.sampled_from(["yes", "no", "on", "null", "~", "0x1f", "1e3", "0o7", "2026-12-02",
                                      "1_000", ".inf", "-.nan", "True", "fs.read", "'q'", "*a", "&b"]))
_docs = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_text.filter(lambda k: k != "<<"), inner, max_size=4)),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_docs, st.sampled_from([None, '"', "'", "|"]), st.booleans())
def test_data_equals_the_safe_loader(doc, style, flow):
    text = yaml.safe_dump(doc, default_style=style, default_flow_style=flow, allow_unicode=True)
    assert load_yaml(text, "<t>").data == yaml.load(text, Loader=yaml.CSafeLoader)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["yes", "on", "1", "0x10", "null", "~", "2026-01-01", "1.5", "abc", "'s'",
                                 '"d"', "!!str 5", "!!int '7'", "[a, 1]", "{k: off}"]), min_size=1, max_size=6))
def test_hand_written_plain_and_tagged_scalars(values):
    text = "".join(f"k{i}: {v}\n" for i, v in enumerate(values))
    assert load_yaml(text, "<t>").data == yaml.load(text, Loader=yaml.CSafeLoader)
