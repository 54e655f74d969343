"""Key comparison has one canonical form (the key id), whatever the spelling."""

import base64
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from promptline.policy import key_id_of, key_ids, load_policy_set, same_key

raw_keys = st.binary(min_size=32, max_size=32)


def spellings(raw: bytes) -> list[str]:
    std = base64.b64encode(raw).decode()
    url = base64.urlsafe_b64encode(raw).decode()
    kid = hashlib.sha256(raw).hexdigest()[:16]
    return ["ed25519:" + std, "ed25519:" + std.rstrip("="), "ed25519:" + url, "ed25519:" + url.rstrip("="),
            " ed25519:" + std + " ", kid, kid.upper()]


@given(raw_keys)
def test_every_spelling_of_a_key_has_one_id(raw):
    ids = {key_id_of(s) for s in spellings(raw)}
    assert ids == {hashlib.sha256(raw).hexdigest()[:16]}
    assert all(same_key(a, spellings(raw)[0]) for a in spellings(raw))


@given(raw_keys, raw_keys)
def test_different_keys_never_compare_equal(a, b):
    if a != b:
        assert not any(same_key(x, y) for x in spellings(a) for y in spellings(b))


@given(st.text(max_size=60))
def test_a_string_that_is_no_key_trusts_nothing(text):
    try:
        kid = key_id_of(text)
    except ValueError:
        assert key_ids([text]) == frozenset() and not same_key(text, text)
    else:
        assert len(kid) == 16 and key_ids([text]) == {kid}


def test_the_policy_trusts_a_signed_plugin_by_key_id_or_full_key(tmp_path):
    raw = bytes(range(32))
    full = "ed25519:" + base64.b64encode(raw).decode()
    pol = tmp_path / "p.yaml"
    pol.write_text(f"apiVersion: promptline/v1\nkind: Policy\nlayer: org\nsettings:\n  trusted_keys: [\"{full}\"]\n")
    man = ("/x/plugin.yaml", "id: demo\nversion: 1.0.0\nentry: {python: m:P}\nsandbox: none\n")
    for publisher, signed, trusted in [(key_id_of(full), True, True), (full, True, True),
                                       (key_id_of(full), False, False), ("0" * 16, True, False), ("", True, False)]:
        ps = load_policy_set([pol], [man], plugin_facts={"demo": {"signed": signed, "publisher": publisher}})
        assert ps.plugins["demo"].trusted is trusted, (publisher, signed)
        assert ps.plugins["demo"].sandbox == ("none" if trusted else "process")
