"""Every limit refuses with its code, changes nothing, and leaves the connection usable:
real `kpk-io serve` processes, real python-socketio clients."""

import asyncio
from typing import Any

import pytest
import socketio

from kpk_io.client import KpkClient
from tests.conftest import StartKpk
from tests.polling import eventually
from tests.processes import KpkServer, RedisServer
from tests.sockets import Member, members

ROOM = "kpk/notes/acme/q1/intro"
SECRET = "s" * 16


@pytest.fixture(params=["memory", "redis"])
def start_limited(
    request: pytest.FixtureRequest, start_kpk: StartKpk, key_prefix: str
) -> StartKpk:
    """Start a server with the given flags, on each store."""

    def start(*flags: str, env: dict[str, str] | None = None) -> KpkServer:
        if request.param == "memory":
            return start_kpk(*flags, env=env)
        redis: RedisServer = request.getfixturevalue("redis_server")
        return start_kpk("--redis-url", redis.url, "--key-prefix", key_prefix, *flags, env=env)

    return start


async def refusal(ack: dict[str, Any], code: str) -> None:
    assert (ack["ok"], ack["error"]) == (False, code), ack
    assert isinstance(ack["message"], str) and ack["message"]


async def test_an_update_over_max_update_bytes_is_too_large(start_limited: StartKpk) -> None:
    kpk = start_limited("--max-update-bytes", "1000")
    async with members(kpk.url, kpk.url) as [a, b]:
        await a.join(ROOM)
        await b.join(ROOM)
        await refusal(await a.update(ROOM, set={"text": "x" * 1000}), "too_large")
        await refusal(await a.update(ROOM, set={f"f{i}": "x" * 100 for i in range(10)}),
                      "too_large")
        # name + encoded value: 4 + 996 = 1000 bytes is the most one update may set.
        assert (await a.update(ROOM, set={"text": "x" * 994}))["rev"] == 1
        assert [u["rev"] for u in await b.wait_updates(ROOM, 1)] == [1]


async def test_a_room_over_max_state_bytes_is_too_large_and_unchanged(
    start_limited: StartKpk,
) -> None:
    kpk = start_limited("--max-state-bytes", "2000")
    async with members(kpk.url, kpk.url) as [a, b]:
        await a.join(ROOM)
        await b.join(ROOM)
        assert (await a.update(ROOM, set={"a": "x" * 1500}))["ok"]
        await refusal(await a.update(ROOM, set={"b": "y" * 600}), "too_large")
        assert (await b.join(ROOM))["state"] == {"a": "x" * 1500}
        assert (await a.update(ROOM, set={"a": "x" * 10, "b": "y" * 600}))["rev"] == 2
        assert [u["rev"] for u in await b.wait_updates(ROOM, 2)] == [1, 2]


async def test_fields_past_max_fields_are_too_large(start_limited: StartKpk) -> None:
    kpk = start_limited("--max-fields", "3")
    async with members(kpk.url) as [a]:
        await a.join(ROOM)
        assert (await a.update(ROOM, set={"a": 1, "b": 2, "c": 3}))["rev"] == 1
        await refusal(await a.update(ROOM, set={"d": 4}), "too_large")
        await refusal(await a.update(ROOM, set={"a": 1, "b": 1, "c": 1, "d": 1}), "too_large")
        assert (await a.update(ROOM, set={"d": 4}, unset=["a"]))["rev"] == 2
        assert (await a.join(ROOM))["state"] == {"b": 2, "c": 3, "d": 4}


async def test_a_long_field_name_and_deep_values_are_invalid_updates(
    start_limited: StartKpk,
) -> None:
    kpk = start_limited("--max-field-name", "8", "--max-depth", "2")
    async with members(kpk.url) as [a]:
        await a.join(ROOM)
        await refusal(await a.update(ROOM, set={"n" * 9: 1}), "invalid_update")
        await refusal(await a.update(ROOM, unset=["n" * 9]), "invalid_update")
        await refusal(await a.update(ROOM, set={"v": [[[1]]]}), "invalid_update")
        await refusal(await a.update(ROOM, set={"v": {"a": {"b": {}}}}), "invalid_update")
        # The value is level 1; each object or array inside adds one.
        ack = await a.update(ROOM, set={"n" * 8: {"a": [1, 2]}, "v": [[]]})
        assert ack["rev"] == 1


async def test_updates_past_the_rate_are_rate_limited_with_retry_after(
    start_kpk: StartKpk,
) -> None:
    kpk = start_kpk("--rate-limit", "1", "--rate-burst", "3")
    async with members(kpk.url, kpk.url) as [a, b]:
        await a.join(ROOM)
        await b.join(ROOM)
        acks = await asyncio.gather(*(a.update(ROOM, set={"n": i}) for i in range(5)))
        assert [ack["ok"] for ack in acks] == [True, True, True, False, False]
        await refusal(acks[3], "rate_limited")
        assert isinstance(acks[3]["retry_after"], int)
        assert 0 < acks[3]["retry_after"] <= 1000
        # Joins, leaves and syncs have a bucket of their own.
        assert (await a.call("sync", {"room": ROOM, "since": 0}))["ok"]
        await asyncio.sleep(acks[4]["retry_after"] / 1000)
        assert (await a.update(ROOM, set={"n": "later"}))["rev"] == 4
        assert [u["set"] for u in await b.wait_updates(ROOM, 4)] == [
            {"n": 0}, {"n": 1}, {"n": 2}, {"n": "later"}
        ]


async def test_joins_leaves_syncs_and_other_events_share_a_bucket(start_kpk: StartKpk) -> None:
    # A token per 2 s: the four requests below cannot earn one back under a loaded CPU.
    kpk = start_kpk("--join-rate", "0.5", "--join-burst", "4")
    async with members(kpk.url) as [a]:
        await a.join(ROOM)
        assert (await a.call("sync", {"room": ROOM, "since": 0}))["ok"]
        assert (await a.call("leave", {"room": ROOM}))["ok"]
        assert (await a.call("no such event", {}))["error"] == "unknown_event"
        limited = await a.call("join", {"room": ROOM})
        await refusal(limited, "rate_limited")
        await refusal(await a.call("no such event", {}), "rate_limited")
        await asyncio.sleep(limited["retry_after"] / 1000)
        await a.join(ROOM)
        assert (await a.update(ROOM, set={"x": 1}))["rev"] == 1  # updates have their own


async def test_rate_limit_0_turns_it_off(start_kpk: StartKpk) -> None:
    kpk = start_kpk("--rate-limit", "0", "--rate-burst", "1")
    async with members(kpk.url) as [a]:
        await a.join(ROOM)
        acks = await asyncio.gather(*(a.update(ROOM, set={"n": i}) for i in range(20)))
        assert [ack["rev"] for ack in acks] == list(range(1, 21))


async def connect_refusal(
    url: str, auth: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The data of the connect_error that refuses this connection."""
    sio = socketio.AsyncClient(reconnection=False)
    refused: list[Any] = []
    sio.on("connect_error", refused.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(url, auth=auth, headers=headers or {}, transports=["websocket"],
                          wait_timeout=10)
    await sio.shutdown()
    assert len(refused) == 1
    data: dict[str, Any] = refused[0]["data"]
    assert set(data) == {"error", "message"} and data["message"], data
    return data


async def connected(
    url: str, auth: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> Member:
    member = Member(url)
    await member.sio.connect(url, auth=auth, headers=headers or {}, transports=["websocket"],
                             wait_timeout=10)
    return member


async def test_connections_per_address_are_capped(start_kpk: StartKpk) -> None:
    kpk = start_kpk("--max-connections-per-address", "2")
    first, second = await connected(kpk.url), await connected(kpk.url)
    try:
        refused = await connect_refusal(kpk.url)
        assert refused["error"] == "too_many_connections"
        await first.join(ROOM)  # the others are unaffected
        await first.close()
        third = await _connect_soon(kpk.url)
        await third.join(ROOM)
        await third.close()
    finally:
        await second.close()


async def _connect_soon(url: str) -> Member:
    """Connect once the server has seen an earlier connection of ours close."""
    for _ in range(100):
        try:
            return await connected(url)
        except socketio.exceptions.ConnectionError:
            await asyncio.sleep(0.05)
    raise TimeoutError("still refused")


async def test_x_forwarded_for_counts_only_from_trusted_proxies(start_kpk: StartKpk) -> None:
    spoofed = {"X-Forwarded-For": "203.0.113.7"}
    untrusting = start_kpk("--max-connections-per-address", "1")
    held = await connected(untrusting.url, headers=spoofed)
    try:  # the header is the client's own: the peer address is what counts
        assert (await connect_refusal(untrusting.url, headers={"X-Forwarded-For": "203.0.113.8"}
                                      ))["error"] == "too_many_connections"
    finally:
        await held.close()

    proxied = start_kpk("--max-connections-per-address", "1", "--trusted-proxies", "127.0.0.0/8")
    # The proxy appends the address it saw; what the client wrote further left is ignored.
    one = await connected(proxied.url, headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
    two = await connected(proxied.url, headers={"X-Forwarded-For": "203.0.113.8"})
    try:
        forged = {"X-Forwarded-For": "192.0.2.99, 203.0.113.7"}
        assert (await connect_refusal(proxied.url, headers=forged))["error"] == \
            "too_many_connections"
        # A chain of trusted proxies is walked back to the first untrusted hop.
        three = await connected(proxied.url, headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.5"})
        await three.close()
    finally:
        await one.close()
        await two.close()


@pytest.mark.parametrize(
    "secret", ["short", "x" * 15, "x" * 129, "lone \ud800 surrogate here", 12345, ["x" * 20]]
)
async def test_a_bad_client_secret_is_refused_at_connect(
    start_kpk: StartKpk, secret: object
) -> None:
    kpk = start_kpk()
    refused = await connect_refusal(kpk.url, auth={"client": secret})
    assert refused["error"] == "invalid_request"


async def test_good_client_secrets_and_none_are_accepted(start_kpk: StartKpk) -> None:
    kpk = start_kpk()
    for auth in ({"client": "x" * 16}, {"client": "ü" * 128}, {}, None):
        member = await connected(kpk.url, auth=auth)
        await member.join(ROOM)
        await member.close()


async def test_a_message_over_max_payload_closes_that_connection_only(
    start_kpk: StartKpk,
) -> None:
    kpk = start_kpk("--max-payload", "4096")
    async with members(kpk.url) as [other]:
        await other.join(ROOM)
        big = await connected(kpk.url, auth={"client": SECRET})
        await big.join(ROOM)
        await big.sio.emit("update", {"room": ROOM, "set": {"x": "y" * 5000}})
        await eventually(lambda: not big.sio.connected, what="the transport to close")
        await big.sio.shutdown()
        assert (await other.update(ROOM, set={"small": 1}))["rev"] == 1
        assert (await other.join(ROOM))["state"] == {"small": 1}


async def test_the_python_client_waits_out_rate_limited_and_sends_again(
    start_kpk: StartKpk,
) -> None:
    # A token every 2 s after a burst of 2: the third change in a row is refused.
    kpk = start_kpk("--rate-limit", "0.5", "--rate-burst", "2")
    async with KpkClient(kpk.url, transports=["websocket"]) as client:
        room = await client.join(ROOM)
        codes = []
        for n in range(3):
            room.set("n", n)
            await room.flush(timeout=10)
            codes.append(room.last_error.code if room.last_error else None)
        assert codes[-1] == "rate_limited"  # refused once, then sent again after retry_after
        assert (room.rev, room.state) == (3, {"n": 2})
    async with members(kpk.url) as [reader]:
        assert (await reader.join(ROOM))["state"] == {"n": 2}


@pytest.mark.parametrize(
    ("namespace", "auth", "code"),
    [("/nope", None, "invalid_request"),
     ("/admin", {"username": "ops", "password": "wrong"}, "unauthorized")],
)
async def test_python_socketios_own_connect_errors_carry_error_and_message_too(
    start_kpk: StartKpk, namespace: str, auth: dict[str, str] | None, code: str
) -> None:
    kpk = start_kpk(env={"KPK_IO_ADMIN_USER": "ops", "KPK_IO_ADMIN_PASSWORD": "p" * 20})
    sio = socketio.AsyncClient(reconnection=False)
    refused: list[Any] = []
    sio.on("connect_error", refused.append, namespace=namespace)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(kpk.url, namespaces=[namespace], auth=auth, transports=["websocket"],
                          wait_timeout=10)
    await sio.shutdown()
    assert refused and refused[0]["data"]["error"] == code, refused
    assert refused[0]["data"]["message"] == refused[0]["message"]
