"""Canonical hosts (docs/design.md §5a): every spelling the resolver accepts is the address it means.

Property tests explore the class: any string the C resolver (``inet_aton``) or
``getaddrinfo(..., AI_NUMERICHOST)`` accepts is seen by the policy as the address the kernel
would connect to; names fold (UTS #46, fullwidth, case, trailing dot) the same way in
requests, manifest entries and CEL helper patterns.
"""

from __future__ import annotations

import ipaddress
import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptline.policy import (
    Request,
    canonical_host,
    host_matches,
    host_spellings,
    in_cidr,
    load_policy_set,
    parse_net,
)

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fold(address: str) -> ipaddress._BaseAddress:
    """What the policy documents for an address: IPv4-mapped/-compatible IPv6 is IPv4."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in ipaddress.ip_network("::/96") and int(ip) > 1:
            return ipaddress.IPv4Address(int(ip))
    return ip


def _part(value: int, style: str, pad: int, upper: bool) -> str:
    if style == "hex":
        return ("0X" if upper else "0x") + "0" * pad + format(value, "X" if upper else "x")
    if style == "oct":
        return "0" + "0" * pad + (format(value, "o") if value else "")
    return str(value) if pad == 0 or value == 0 else "0" * 0 + str(value)


@st.composite
def inet_aton_spellings(draw):
    """Numeric IPv4 spellings in every shape inet_aton knows: 1-4 parts, the last part
    filling the remaining bytes, each part decimal, octal or hex, zero-padded, plus the
    trailing whitespace-and-junk glibc ignores."""
    n = draw(st.integers(1, 4))
    parts = [draw(st.integers(0, 255)) for _ in range(n - 1)]
    last_bits = 8 * (5 - n)
    parts.append(draw(st.integers(0, (1 << last_bits) - 1)))
    out = []
    for value in parts:
        style = draw(st.sampled_from(["dec", "oct", "hex"]))
        out.append(_part(value, style, draw(st.integers(0, 3)), draw(st.booleans())))
    text = ".".join(out)
    if draw(st.booleans()):
        text += draw(st.sampled_from([" ", "\t", "\n", " junk", "\nx"]))
    return text


NUMERIC_TEXT = st.text(alphabet="0123456789abcdefxX. \t", min_size=1, max_size=24)


def _aton(text: str) -> str | None:
    try:
        return socket.inet_ntoa(socket.inet_aton(text))
    except (OSError, ValueError):
        return None


@FAST
@given(st.one_of(inet_aton_spellings(), NUMERIC_TEXT))
def test_every_inet_aton_spelling_is_the_address(text):
    expected = _aton(text)
    if expected is None:
        return
    assert canonical_host(text) == expected
    assert Request("net.connect", "p", host=text, port=1).host == expected
    assert in_cidr(text, expected + "/32")
    assert in_cidr(text, "private") == in_cidr(expected, "private")


@st.composite
def ipv6_spellings(draw):
    value = draw(st.one_of(st.integers(0, (1 << 128) - 1),
                           st.integers(0, (1 << 32) - 1).map(lambda v: (0xFFFF << 32) | v),
                           st.integers(2, (1 << 32) - 1),
                           st.sampled_from([0, 1])))
    ip = ipaddress.IPv6Address(value)
    style = draw(st.sampled_from(["compressed", "exploded", "v4tail", "upper", "bracket"]))
    if style == "exploded":
        return ip.exploded
    if style == "v4tail":
        head = ":".join(ip.exploded.split(":")[:6])
        return head + ":" + str(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if style == "upper":
        return ip.compressed.upper()
    if style == "bracket":
        return f"[{ip.compressed}]"
    return ip.compressed


@FAST
@given(st.one_of(ipv6_spellings(), inet_aton_spellings(), NUMERIC_TEXT))
def test_every_numeric_getaddrinfo_host_is_the_address(text):
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        infos = socket.getaddrinfo(bare, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return
    kernel = _fold(infos[0][4][0])
    assert ipaddress.ip_address(canonical_host(text)) == kernel
    assert host_spellings(text) == (canonical_host(text),)


@pytest.mark.parametrize("spelling", [
    "127.1", "2130706433", "0x7f.1", "0x7f000001", "0177.0.0.1", "127.000.000.001",
    "0x7F.0.0.1", "127.0.1", "::ffff:127.0.0.1", "::ffff:7f00:1", "::127.0.0.1",
    "[::ffff:127.0.0.1]", "0:0:0:0:0:ffff:7f00:0001", "\uff11\uff12\uff17.0.0.1"])
def test_loopback_spellings_are_private(spelling):
    assert canonical_host(spelling) == "127.0.0.1"
    assert in_cidr(spelling, "private")


@pytest.mark.parametrize("spelling", ["169.254.43518", "0xa9fea9fe", "2852039166",
                                      "0251.0376.0251.0376", "::ffff:169.254.169.254"])
def test_metadata_spellings_hit_the_default_policy(spelling):
    ps = load_policy_set(["policies/default.yaml"])
    d = ps.decide(Request("net.connect", "p", host=spelling, port=80))
    assert d.verdict.value == "deny" and d.rule.id == "no-cloud-metadata"
    control = ps.decide(Request("net.connect", "p", host="169.254.169.253", port=80))
    assert control.rule is None or control.rule.id != "no-cloud-metadata"


@pytest.mark.parametrize("unspecified", ["0.0.0.0", "0", "::", "0:0:0:0:0:0:0:0", "[::]"])
def test_unspecified_addresses_are_private(unspecified):
    assert in_cidr(unspecified, "private")


@pytest.mark.parametrize("spelling", [
    "EVIL.com", "x.evil.com.", "x.\uff45\uff56\uff49\uff4c\uff0e\uff43\uff4f\uff4d",
    "x\u3002evil\u3002com", "X.EVIL.COM", "x.evil.com\uff0e", " x.evil.com "])
def test_name_spellings_fold(spelling):
    assert host_matches(spelling, "*.evil.com") or canonical_host(spelling) == "evil.com"
    r = Request("net.connect", "p", host=spelling, port=443)
    assert r.host in ("x.evil.com", "evil.com")


def test_idna_2003_and_2008_spellings_are_both_judged(tmp_path):
    # Python's socket sends IDNA 2003 (`fass.de`), IDNA 2008 clients `xn--fa-hia.de`
    r = Request("net.connect", "p", host="fa\u00df.de", port=443)
    assert r.host == "fass.de" and r.aliases == ("xn--fa-hia.de",)
    for pattern in ("fass.de", "xn--fa-hia.de"):
        text = json.dumps({"apiVersion": "promptline/v1", "kind": "Policy", "layer": "org",
                           "rules": [{"id": "d", "effect": "deny",
                                      "when": f'host_matches(request.host, "{pattern}")'}]})
        f = tmp_path / "p.yaml"
        f.write_text(text)
        for backend in ("cel-python", "cel-expr-python"):
            ps = load_policy_set([str(f)], backend=backend)
            assert ps.decide(r).verdict.value == "deny", (pattern, backend)
            control = Request("net.connect", "p", host="other.de", port=443)
            assert ps.decide(control).rule is None


def test_manifest_entries_are_canonical_at_compile_time():
    assert parse_net("127.1:8080").cidr == "127.0.0.1/32"
    assert parse_net("0x7f000001").cidr == "127.0.0.1/32"
    assert parse_net("[::ffff:10.0.0.1]:80").cidr == "10.0.0.1/32"
    assert parse_net("::ffff:10.0.0.0/104").cidr == "10.0.0.0/8"
    assert parse_net("API.Example.COM.:443").host == "api.example.com"
    with pytest.raises(ValueError, match="A-label `xn--"):
        parse_net("b\u00fccher.de")


def test_connect_spellings_judged_like_the_address_by_grants():
    ps = load_policy_set([], [_manifest(["127.0.0.1:8080"])])
    for spelling in ("127.1", "0x7f000001", "::ffff:127.0.0.1"):
        assert ps.decide(Request("net.connect", "m", host=spelling, port=8080)).allowed
    assert not ps.decide(Request("net.connect", "m", host="127.0.0.2", port=8080)).allowed


def _manifest(network):
    from promptline.policy import Manifest
    return Manifest.model_validate({"id": "m", "version": "1.0.0", "entry": {"python": "m:P"},
                                    "capabilities": {"network": network}})
