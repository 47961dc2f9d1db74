"""The client address a request comes from, and how many connections each address holds.

The peer of the TCP connection is the client, unless that peer is one of the configured
trusted proxies: then the proxies' X-Forwarded-For is read from the right, each trusted hop
naming the one before it, and the first hop that is not a trusted proxy is the client.
Anything further left was written by the client itself and is ignored.
"""

import ipaddress
from collections import Counter
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self._networks: Sequence[Network] = [
            ipaddress.ip_network(network, strict=False) for network in networks
        ]

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client's address as text ("unknown" when the peer has none, as on a Unix
        socket)."""
        if peer is None:
            return "unknown"
        hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
        client = peer
        while hops and self._trusted(client):
            hop = hops.pop()
            if _parse(hop) is None:  # not written by a proxy we trust: keep the proxy's
                break
            client = hop
        parsed = _parse(client)
        return client if parsed is None else str(parsed)

    def _trusted(self, address: str) -> bool:
        parsed = _parse(address)
        return parsed is not None and any(parsed in network for network in self._networks)


def _parse(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


class ConnectionCounts:
    """Open connections per client address, capped at `limit` (0 = no cap)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._counts: Counter[str] = Counter()

    def admit(self, address: str) -> bool:
        """Count one more connection from `address`, unless it holds `limit` already."""
        if self._limit and self._counts[address] >= self._limit:
            return False
        self._counts[address] += 1
        return True

    def release(self, address: str) -> None:
        self._counts[address] -= 1
        if self._counts[address] <= 0:
            del self._counts[address]
