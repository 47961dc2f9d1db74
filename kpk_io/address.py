"""The client address a request comes from, and how many connections each address holds.

The peer of the TCP connection is the client, unless that peer is one of the configured
trusted proxies: then the proxies' X-Forwarded-For is read from the right, each trusted hop
naming the one before it, and the first hop that is not a trusted proxy is the client.
Anything further left was written by the client itself and is ignored.

Limits count an IPv6 client by its /64 network (`limited_by`): one subscriber usually holds
a whole /64, so counting single addresses would hand it 2^64 separate allowances.
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


def limited_by(address: str) -> str:
    """What a per-address limit counts `address` as: itself, or its /64 for IPv6."""
    parsed = _parse(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address


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
        """Count one more connection from `address` (by limited_by()), unless that holds
        `limit` already."""
        key = limited_by(address)
        if self._limit and self._counts[key] >= self._limit:
            return False
        self._counts[key] += 1
        return True

    def release(self, address: str) -> None:
        key = limited_by(address)
        self._counts[key] -= 1
        if self._counts[key] <= 0:
            del self._counts[key]
