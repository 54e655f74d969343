"""Canonical requests through the real entry point: plugin code making real syscalls.

Each attack fails and an honest control in the same test still works.
"""

from __future__ import annotations

import socket

import pytest

from promptline.enforcer import PolicyViolation

PLUGIN_NET = """
import socket

def connect(host, port, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, port))
        return "connected"
    finally:
        s.close()
"""


@pytest.fixture
def listeners():
    """Listening sockets on 127.0.0.1 and 127.0.0.2 (all of 127/8 is loopback on Linux)."""
    socks = []
    port = None
    for addr in ("127.0.0.1", "127.0.0.2"):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port or 0))
        port = s.getsockname()[1]
        s.listen(16)
        socks.append(s)
    yield port
    for s in socks:
        s.close()


@pytest.mark.parametrize("spelling", ["127.2", "2130706434", "0x7f.2", "0x7f000002",
                                      "0177.0.0.2", "127.000.000.002", "127.0.2", "0x7F.0.0.02"])
def test_connect_to_a_spelling_of_a_denied_address_is_refused(plugins, load_module, listeners,
                                                              spelling):
    port = listeners
    enf = plugins.make({"network": [f"*:{port}"]}, rules=[
        {"id": "no-127-2", "effect": "deny", "actions": ["net.connect"],
         "when": 'in_cidr(request.host, "127.0.0.2/32")'}])
    m = load_module(plugins.plugin_dir("p1"), PLUGIN_NET)
    assert socket.inet_ntoa(socket.inet_aton(spelling)) == "127.0.0.2"   # the kernel's target
    with pytest.raises(PolicyViolation, match="no-127-2"):
        m.connect(spelling, port)
    assert m.connect("127.0.0.1", port) == "connected"        # honest control
    assert enf.installed


def test_ipv4_mapped_ipv6_connect_is_judged_as_ipv4(plugins, load_module, listeners):
    port = listeners
    plugins.make({"network": [f"*:{port}"]}, rules=[
        {"id": "no-127-2", "effect": "deny", "actions": ["net.connect"],
         "when": 'in_cidr(request.host, "127.0.0.2/32")'}])
    m = load_module(plugins.plugin_dir("p1"), PLUGIN_NET)
    with pytest.raises(PolicyViolation, match="no-127-2"):
        m.connect("::ffff:127.0.0.2", port, socket.AF_INET6)
    assert m.connect("127.0.0.1", port) == "connected"


def test_empty_host_is_the_unspecified_address_and_private(plugins, load_module, listeners):
    # CPython connects ("", port) to INADDR_ANY, which reaches this host
    port = listeners
    plugins.make({"network": [f"*:{port}"]}, rules=[
        {"id": "no-private", "effect": "deny", "actions": ["net.connect"],
         "when": 'in_cidr(request.host, "private") && request.host != "127.0.0.1"'}])
    m = load_module(plugins.plugin_dir("p1"), PLUGIN_NET)
    for spelling in ("", "0.0.0.0", "0"):
        with pytest.raises(PolicyViolation, match="no-private"):
            m.connect(spelling, port)
    assert m.connect("127.0.0.1", port) == "connected"


def test_fullwidth_name_of_a_denied_host_is_refused_before_dns(plugins, load_module):
    enf = plugins.make({"network": ["*"]}, rules=[
        {"id": "no-evil", "effect": "deny", "actions": ["net.resolve", "net.connect"],
         "when": 'host_matches(request.host, "*.evil.test")'}])
    m = load_module(plugins.plugin_dir("p1"), """
import socket
def resolve(name):
    return socket.getaddrinfo(name, 80)
""")
    for spelling in ("x.\uff45\uff56\uff49\uff4c\uff0e\uff54\uff45\uff53\uff54", "X.EVIL.TEST.",
                     "x\u3002evil\u3002test"):
        with pytest.raises(PolicyViolation, match="no-evil"):
            m.resolve(spelling)
    assert m.resolve("localhost")                                      # honest control
    assert enf.check("p1", __import__("promptline").policy.Request(
        "net.resolve", "p1", host="x.\uff45vil.test")).verdict.value == "deny"
