"""The client address: the peer, or X-Forwarded-For read back through trusted proxies."""

import pytest

from kpk_io.address import ConnectionCounts, TrustedProxies, limited_by

PROXIES = TrustedProxies(["10.0.0.0/8", "2001:db8::1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.7", None, "203.0.113.7"),
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),  # not from a proxy: ignored
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "192.0.2.66, 198.51.100.1", "198.51.100.1"),  # the client's own: ignored
        ("10.0.0.2", "198.51.100.1, 10.1.1.1", "198.51.100.1"),  # a chain of proxies
        ("10.0.0.2", "10.0.0.3, 10.1.1.1", "10.0.0.3"),  # all trusted: the leftmost
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "not-an-address", "10.0.0.2"),  # garbage: the proxy that passed it
        ("10.0.0.2", "198.51.100.1, junk", "10.0.0.2"),
        ("2001:db8::1", " 2001:DB8::2 ", "2001:db8::2"),
        ("::ffff:10.0.0.2", "198.51.100.1", "198.51.100.1"),  # dual-stack peer
        (None, "198.51.100.1", "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: str | None, client: str) -> None:
    assert PROXIES.client_address(peer, forwarded) == client


def test_connection_counts_cap_each_address() -> None:
    counts = ConnectionCounts(2)
    assert counts.admit("a") and counts.admit("a") and not counts.admit("a")
    assert counts.admit("b")
    counts.release("a")
    assert counts.admit("a")
    unlimited = ConnectionCounts(0)
    assert all(unlimited.admit("a") for _ in range(1000))


def test_ipv6_clients_count_by_their_64() -> None:
    assert limited_by("203.0.113.7") == "203.0.113.7"
    assert limited_by("2001:db8:1:2:aaaa::1") == limited_by("2001:db8:1:2:bbbb::9") == \
        "2001:db8:1:2::/64"
    assert limited_by("2001:db8:1:3::1") != limited_by("2001:db8:1:2::1")
    assert limited_by("unknown") == "unknown"
    counts = ConnectionCounts(1)
    assert counts.admit("2001:db8::1") and not counts.admit("2001:db8::2")
    counts.release("2001:db8::1")
    assert counts.admit("2001:db8::2")
