"""The guarded environment: denied variables look unset, iteration shows granted ones,
host code sees everything."""

from __future__ import annotations

import os

import pytest

from promptline.enforcer import PolicyViolation


@pytest.fixture
def env(plugins, monkeypatch, fake_log):
    monkeypatch.setenv("PL_GRANTED", "yes")
    monkeypatch.setenv("PL_SECRET", "hunter2")
    return plugins.make({"environment": ["PL_GRANTED"]}, audit_log=fake_log)


def test_plugin_sees_granted_only(env, fake_log):
    with env.guard("p1"):
        assert os.environ["PL_GRANTED"] == "yes"
        assert os.getenv("PL_SECRET") is None
        assert "PL_SECRET" not in os.environ
        with pytest.raises(KeyError):
            os.environ["PL_SECRET"]
        assert set(os.environ) == {"PL_GRANTED"}
        assert dict(os.environ) == {"PL_GRANTED": "yes"}
        assert os.environ.copy() == {"PL_GRANTED": "yes"}
        assert os.environb.get(b"PL_SECRET") is None
        assert os.environb[b"PL_GRANTED"] == b"yes"
    assert ("p1", "env.read", "PL_SECRET", "deny", False) in fake_log.records


def test_host_sees_everything(env):
    assert os.environ["PL_SECRET"] == "hunter2"
    assert "PL_SECRET" in dict(os.environ)
    assert os.environ.copy()["PL_GRANTED"] == "yes"


def test_plugin_cannot_reach_internals(env):
    with env.guard("p1"):
        for attr in ("_data", "_real", "encodekey", "real"):
            with pytest.raises(AttributeError):
                getattr(os.environ, attr)


def test_write_needs_env_write(env):
    with env.guard("p1"), pytest.raises(PolicyViolation):
        os.environ["PL_NEW"] = "1"
    assert "PL_NEW" not in os.environ


def test_posix_environ_is_guarded(env):
    import posix
    with env.guard("p1"):
        assert posix.environ.get(b"PL_SECRET") is None


def test_proc_self_environ_refused_even_when_granted(plugins):
    enf = plugins.make({"filesystem": {"read": ["/proc/"]}})
    with enf.guard("p1"):
        for p in ("/proc/self/environ", f"/proc/{os.getpid()}/environ", "/proc/thread-self/environ"):
            with pytest.raises(PolicyViolation):
                open(p, "rb")


def test_a_variable_nobody_set_is_unset_without_a_deny_in_the_log(env, fake_log, monkeypatch):
    monkeypatch.delenv("PL_NOT_SET", raising=False)
    with env.guard("p1"):
        assert os.environ.get("PL_NOT_SET") is None          # what ssl does with SSLKEYLOGFILE
        with pytest.raises(KeyError):
            os.environ["PL_NOT_SET"]
        assert os.getenv("PL_SECRET") is None                 # the control: set, not granted
    names = [r[2] for r in fake_log.records if r[3] == "deny"]
    assert "PL_SECRET" in names and "PL_NOT_SET" not in names


def test_audit_mode_still_records_an_unset_variable(plugins, fake_log, monkeypatch):
    monkeypatch.delenv("PL_NOT_SET", raising=False)
    enf = plugins.make({}, mode="audit", audit_log=fake_log)
    with enf.guard("p1"):
        assert os.environ.get("PL_NOT_SET") is None
    assert ("p1", "env.read", "PL_NOT_SET", "allow", True) in fake_log.records
