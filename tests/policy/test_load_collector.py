"""A load pauses the cyclic collector and always restores the state it found."""

import gc

import pytest

from promptline.policy import PolicyError, _policyset, load_policy_set

GOOD = "apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules:\n  - id: a\n    effect: deny\n    when: 'true'\n"


def test_the_collector_is_paused_during_a_load_and_restored_after_success_and_error(tmp_path, monkeypatch):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("'true'", "'nope('"))
    seen = []
    real = _policyset.compile_policy

    def spy(*a, **k):
        seen.append(gc.isenabled())
        return real(*a, **k)

    monkeypatch.setattr(_policyset, "compile_policy", spy)
    assert gc.isenabled()
    load_policy_set([good])
    assert seen == [False] and gc.isenabled()
    with pytest.raises(PolicyError):
        load_policy_set([bad])
    assert gc.isenabled()
    gc.disable()
    try:
        load_policy_set([good])
        assert not gc.isenabled()   # a caller that paused it keeps it paused
    finally:
        gc.enable()
