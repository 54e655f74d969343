"""DNS memory: which host names a plugin resolved to which addresses.

A ``connect`` to an IP is judged by the host name the plugin resolved to get it
(docs/design.md §5); an IP nobody resolved is judged as itself (IP/CIDR rules).
"""

from __future__ import annotations

import threading

from promptline.policy import canonical_host

MAX_ADDRESSES_PER_PLUGIN = 4096  # remembered addresses per plugin; oldest dropped first


class NetMemory:
    """Per-plugin map from resolved address to the host names that produced it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_plugin: dict[str, dict[str, tuple[str, ...]]] = {}

    def remember(self, plugin: str, host: str, addresses) -> None:
        try:
            host = canonical_host(host)
        except ValueError:
            return
        with self._lock:
            table = self._by_plugin.setdefault(plugin, {})
            for addr in addresses:
                if type(addr) is not str:
                    continue
                try:
                    addr = canonical_host(addr)
                except ValueError:
                    continue
                if addr == host:
                    continue
                names = table.pop(addr, ())
                if host not in names:
                    names = names + (host,)
                table[addr] = names
            while len(table) > MAX_ADDRESSES_PER_PLUGIN:
                del table[next(iter(table))]

    def names_for(self, plugin: str, address: str) -> tuple[str, ...]:
        table = self._by_plugin.get(plugin)
        if not table:
            return ()
        try:
            return table.get(canonical_host(address), ())
        except ValueError:
            return ()

    def forget(self, plugin: str | None = None) -> None:
        with self._lock:
            if plugin is None:
                self._by_plugin.clear()
            else:
                self._by_plugin.pop(plugin, None)
