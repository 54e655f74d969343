"""Network capability entries: `host`, `host:port`, `*.domain`, `scheme://host:port`, IPs, CIDRs."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ._canon import canonical_network, canonical_pattern

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "postgres": 5432,
                 "postgresql": 5432, "mysql": 3306, "redis": 6379, "ftp": 21, "ssh": 22,
                 "smtp": 25, "dns": 53, "mongodb": 27017, "amqp": 5672}
_HOST = re.compile(r"(\*|(\*\.)?[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*)")


@dataclass(frozen=True, slots=True)
class NetSpec:
    """A parsed network entry. ``cidr`` is set for IP/CIDR entries, ``host`` otherwise."""

    host: str = ""
    cidr: str = ""
    port: int | None = None
    scheme: str = ""


def parse_net(entry: str) -> NetSpec:
    """Parse one network entry; raise ValueError with a fix on anything unclear."""
    if not isinstance(entry, str) or not entry or entry != entry.strip():
        raise ValueError(f"network entry `{entry}` is empty or has surrounding spaces")
    rest, scheme = entry, ""
    m = re.fullmatch(r"([a-z][a-z0-9+.-]*)://(.*)", entry, re.IGNORECASE | re.DOTALL)
    if m:
        scheme, rest = m.group(1).lower(), m.group(2)
        rest = rest.rstrip("/")
        if "/" in rest or "@" in rest:
            raise ValueError(f"network entry `{entry}` may not carry a path or credentials; use `{scheme}://host:port`")
    port: int | None = None
    host = rest
    if rest.startswith("["):
        end = rest.find("]")
        if end == -1:
            raise ValueError(f"network entry `{entry}` has an unclosed `[`")
        host, after = rest[1:end], rest[end + 1:]
        if after:
            if not after.startswith(":"):
                raise ValueError(f"network entry `{entry}`: expected `:port` after `]`")
            port = _port(after[1:], entry)
    elif rest.count(":") == 1:
        host, p = rest.split(":")
        port = _port(p, entry)
    if port is None and scheme in DEFAULT_PORTS:
        port = DEFAULT_PORTS[scheme]
    if host == "private":
        return NetSpec(cidr="private", port=port, scheme=scheme)
    if "/" in host:
        try:
            net = canonical_network(host)
        except ValueError:
            raise ValueError(f"network entry `{entry}` is not a valid CIDR") from None
        return NetSpec(cidr=str(net), port=port, scheme=scheme)
    if not host.isascii():
        try:
            alabel = canonical_pattern(host)
        except ValueError:
            alabel = ""
        raise ValueError(f"network entry `{entry}` is not ASCII (look-alike letters hide here); "
                         f"write an international name as its A-label" +
                         (f" `{alabel}`" if alabel.isascii() and alabel else ""))
    try:
        h = canonical_pattern(host)     # the same canonical form requests are put in
    except ValueError:
        raise ValueError(f"network entry `{entry}` contains a NUL character") from None
    try:
        ip = ipaddress.ip_address(h)
        return NetSpec(cidr=str(ipaddress.ip_network(ip)), port=port, scheme=scheme)
    except ValueError:
        pass
    if not _HOST.fullmatch(h):
        raise ValueError(f"network entry `{entry}`: `{host}` is not a host name, `*.domain`, IP or CIDR")
    return NetSpec(host=h, port=port, scheme=scheme)


def _port(text: str, entry: str) -> int | None:
    if text == "*":
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"network entry `{entry}`: port `{text}` must be 1-65535 or `*`")
    return int(text)
