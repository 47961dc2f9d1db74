"""The socket protocol, end to end: real `kpk-io serve` processes and real clients."""

import asyncio
from typing import Any

import pytest

from tests.conftest import StartKpk
from tests.processes import KpkServer, RedisServer
from tests.sockets import Member, members, untagged

ROOM = "kpk/notes/acme%20co/q1/intro"


@pytest.fixture(params=["memory", "redis"])
def kpk(request: pytest.FixtureRequest, start_kpk: StartKpk) -> KpkServer:
    if request.param == "memory":
        return start_kpk()
    redis_kpk: KpkServer = request.getfixturevalue("redis_kpk")
    return redis_kpk


@pytest.fixture(params=["memory", "redis"])
def unlimited_kpk(
    request: pytest.FixtureRequest, start_kpk: StartKpk, key_prefix: str
) -> KpkServer:
    """A server without rate limits, for tests that write from one connection as fast as
    it can."""
    off = {"KPK_IO_RATE_LIMIT": "0"}
    if request.param == "memory":
        return start_kpk(env=off)
    redis: RedisServer = request.getfixturevalue("redis_server")
    return start_kpk("--redis-url", redis.url, "--key-prefix", key_prefix, env=off)


async def test_joining_a_new_room_gives_rev_0_and_empty_state(kpk: KpkServer) -> None:
    async with members(kpk.url) as [a]:
        ack = await a.call("join", {"room": ROOM})
        me = ack.pop("member")
        assert ack == {"ok": True, "room": ROOM, "rev": 0, "state": {}, "members": [me]}
        assert (await a.call("join", {"room": ROOM}))["ok"]  # twice is harmless
        assert await a.call("leave", {"room": ROOM}) == {"ok": True, "room": ROOM}


async def test_updates_reach_other_members_once_and_never_the_sender(kpk: KpkServer) -> None:
    async with members(kpk.url, kpk.url, kpk.url) as [a, b, c]:
        for m in (a, b, c):
            await m.join(ROOM)
        await b.join(ROOM)  # joining twice must not double b's deliveries
        ack = await a.update(ROOM, set={"title": "Q1", "n": None}, id="a-1")
        assert untagged([ack]) == [{"ok": True, "room": ROOM, "rev": 1}]
        assert (await c.update(ROOM, unset=["n"]))["rev"] == 2
        assert untagged(await b.wait_updates(ROOM, 2)) == [
            {"room": ROOM, "rev": 1, "set": {"title": "Q1", "n": None}, "unset": [],
             "replace": False, "id": "a-1"},
            {"room": ROOM, "rev": 2, "set": {}, "unset": ["n"], "replace": False},
        ]
        # Delivery is in rev order, so a's echo of rev 1 would precede c's rev 2.
        assert [u["rev"] for u in await a.wait_updates(ROOM, 1)] == [2]
        assert [u["rev"] for u in await c.wait_updates(ROOM, 1)] == [1]
        assert len(b.updates) == 2


async def test_replace_removes_fields_not_set(kpk: KpkServer) -> None:
    async with members(kpk.url, kpk.url) as [a, b]:
        await a.join(ROOM)
        await b.join(ROOM)
        await a.update(ROOM, set={"x": 1, "y": 2})
        await a.update(ROOM, set={"z": 3}, replace=True)
        assert untagged(await b.wait_updates(ROOM, 2))[1] == {
            "room": ROOM, "rev": 2, "set": {"z": 3}, "unset": [], "replace": True
        }
        assert (await b.join(ROOM))["state"] == {"z": 3}


async def test_leave_stops_updates(kpk: KpkServer) -> None:
    async with members(kpk.url, kpk.url, kpk.url) as [a, b, c]:
        for m in (a, b, c):
            await m.join(ROOM)
        await b.call("leave", {"room": ROOM})
        await a.update(ROOM, set={"gone": True})
        await a.update(ROOM, set={"marker": True})
        await c.wait_updates(ROOM, 2)
        assert b.updates == []
        assert (await b.update(ROOM, set={"x": 1}))["error"] == "not_joined"


@pytest.mark.parametrize(
    ("event", "payload", "code"),
    [
        ("join", "a string", "invalid_request"),
        ("join", ["a", "list"], "invalid_request"),
        ("join", None, "invalid_request"),
        ("sync", {"room": ROOM, "since": -1}, "invalid_request"),
        ("sync", {"room": ROOM, "since": "3"}, "invalid_request"),
        ("join", {}, "invalid_room"),
        ("join", {"room": 7}, "invalid_room"),
        ("join", {"room": ""}, "invalid_room"),
        ("join", {"room": "  "}, "invalid_room"),
        ("join", {"room": "x" * 257}, "invalid_room"),
        ("join", {"room": "a\u0007b"}, "invalid_room"),
        ("join", {"room": "undefined"}, "invalid_room"),
        ("leave", {"room": "NULL"}, "invalid_room"),
        ("update", {"room": "undefined", "set": {"a": 1}}, "invalid_room"),
        ("update", {"room": "not joined", "set": {"a": 1}}, "not_joined"),
        ("sync", {"room": "not joined", "since": 0}, "not_joined"),
        ("update", {"room": ROOM}, "invalid_update"),
        ("update", {"room": ROOM, "set": [1]}, "invalid_update"),
        ("update", {"room": ROOM, "set": {"": 1}}, "invalid_update"),
        ("update", {"room": ROOM, "unset": "a"}, "invalid_update"),
        ("update", {"room": ROOM, "unset": ["a", ""]}, "invalid_update"),
        ("update", {"room": ROOM, "unset": ["a", 1]}, "invalid_update"),
        ("update", {"room": ROOM, "set": {"a": 1}, "unset": ["a"]}, "invalid_update"),
        ("update", {"room": ROOM, "replace": "yes"}, "invalid_update"),
        ("update", {"room": ROOM, "set": {"a": 1}, "rev": "1"}, "invalid_update"),
        ("update", {"room": ROOM, "set": {"a": 1}, "rev": 1.5}, "invalid_update"),
        ("update", {"room": ROOM, "set": {"a": 1}, "rev": True}, "invalid_update"),
        ("update", {"room": ROOM, "set": {"a": 1}, "id": ""}, "invalid_update"),
        ("no_such_event", {"room": ROOM}, "unknown_event"),
    ],
)
async def test_bad_requests_get_a_specific_error_and_change_nothing(
    redis_kpk: KpkServer, event: str, payload: Any, code: str
) -> None:
    async with members(redis_kpk.url, redis_kpk.url) as [a, b]:
        if event in {"update", "sync"} and payload.get("room") == ROOM:
            await a.join(ROOM)
        await b.join(ROOM)
        ack = await a.call(event, payload) if payload is not None else await a.call(event)
        assert ack["ok"] is False
        assert ack["error"] == code
        assert isinstance(ack["message"], str) and ack["message"]
        # Nothing changed, and the connection is still usable.
        assert (await a.join(ROOM))["rev"] == 0
        assert (await a.update(ROOM, set={"after": 1}))["rev"] == 1
        assert [u["rev"] for u in await b.wait_updates(ROOM, 1)] == [1]


async def test_compare_and_set(kpk: KpkServer) -> None:
    async with members(kpk.url) as [a]:
        await a.join(ROOM)
        await a.update(ROOM, set={"v": 1})
        ack = await a.update(ROOM, set={"v": 2}, rev=0)
        assert ack["ok"] is False and ack["error"] == "conflict" and ack["rev"] == 1
        assert (await a.update(ROOM, set={"v": 3}, rev=1))["rev"] == 2
        assert (await a.join(ROOM))["state"] == {"v": 3}


async def test_a_change_sent_again_is_applied_once(kpk: KpkServer) -> None:
    async with members(kpk.url, kpk.url) as [a, b]:
        await a.join(ROOM)
        await b.join(ROOM)
        first = await a.update(ROOM, set={"v": 1}, id="a-1")
        assert first["rev"] == 1
        await b.update(ROOM, set={"v": 2}, id="b-1")
        assert await a.update(ROOM, set={"v": 1}, id="a-1") == {
            "ok": True, "room": ROOM, "rev": 1, "duplicate": True, "tag": first["tag"]
        }
        await b.update(ROOM, set={"marker": True})
        assert [u["rev"] for u in await a.wait_updates(ROOM, 2)] == [2, 3]
        assert (await a.join(ROOM))["state"] == {"v": 2, "marker": True}


async def test_sync_returns_changes_or_the_whole_state(start_kpk: StartKpk) -> None:
    kpk = start_kpk("--history", "3")
    async with members(kpk.url) as [a]:
        await a.join(ROOM)
        tags = [(await a.update(ROOM, set={f"f{i}": i}, id=f"a-{i}"))["tag"]
                for i in range(1, 6)]
        listed = await a.call("sync", {"room": ROOM, "since": 3, "tag": tags[2]})
        assert [c["tag"] for c in listed.pop("changes")] == tags[3:]
        assert listed == {"ok": True, "room": ROOM, "rev": 5}
        listed = await a.call("sync", {"room": ROOM, "since": 3})
        assert untagged(listed["changes"]) == [
            {"rev": 4, "set": {"f4": 4}, "unset": [], "replace": False, "id": "a-4"},
            {"rev": 5, "set": {"f5": 5}, "unset": [], "replace": False, "id": "a-5"},
        ]
        assert await a.call("sync", {"room": ROOM, "since": 5, "tag": tags[4]}) == {
            "ok": True, "room": ROOM, "rev": 5, "changes": []
        }
        whole = {"ok": True, "room": ROOM, "rev": 5, "state": {f"f{i}": i for i in range(1, 6)},
                 "tag": tags[4]}
        assert await a.call("sync", {"room": ROOM, "since": 1}) == whole  # no longer kept
        # A tag that is not rev 3's: the caller's history is not the room's.
        assert await a.call("sync", {"room": ROOM, "since": 3, "tag": tags[1]}) == whole
        assert await a.call("sync", {"room": ROOM, "since": 5, "tag": tags[3]}) == whole


async def test_look_alike_rooms_are_isolated(kpk: KpkServer) -> None:
    rooms = ["a_b/c", "a/b_c", "x%2Fy", "x/y", "ünï cödé", "{braces}:colons", "🎉", "A", "a"]
    async with members(*[kpk.url] * (len(rooms) + 1)) as [writer, *listeners]:
        for room, listener in zip(rooms, listeners, strict=True):
            await listener.join(room)
            await writer.join(room)
        for index, room in enumerate(rooms):
            assert (await writer.update(room, set={"i": index}))["rev"] == 1
        for index, (room, listener) in enumerate(zip(rooms, listeners, strict=True)):
            assert [u["set"] for u in await listener.wait_updates(room, 1)] == [{"i": index}]
        for room, listener in zip(rooms, listeners, strict=True):
            assert [u["room"] for u in listener.updates] == [room]


async def test_sid_named_rooms_never_reach_another_socket(kpk: KpkServer) -> None:
    async with members(kpk.url, kpk.url) as [victim, attacker]:
        await attacker.join(victim.sio.get_sid())
        await victim.join(ROOM)
        await attacker.join(ROOM)
        await victim.update(ROOM, set={"secret": 1})
        await attacker.wait_updates(ROOM, 1)
        await attacker.update(victim.sio.get_sid(), set={"x": 1})
        await attacker.update(ROOM, set={"marker": 1})
        await victim.wait_updates(ROOM, 1)
        assert [u["room"] for u in victim.updates] == [ROOM]


async def test_json_values_round_trip_over_the_wire(kpk: KpkServer) -> None:
    values = {
        "nested": {"a": [1, 2.5, {"b": [None, True]}]},
        "unicode": "ünï cödé 🎉 \"q\" \\",
        "null": None,
        "max_safe": 2**53 - 1,
        "empty": {},
    }
    async with members(kpk.url, kpk.url) as [a, b]:
        await a.join(ROOM)
        await b.join(ROOM)
        await a.update(ROOM, set=values)
        assert (await b.wait_updates(ROOM, 1))[0]["set"] == values
        assert (await b.join(ROOM))["state"] == values


async def test_state_survives_every_member_leaving(kpk: KpkServer) -> None:
    async with members(kpk.url) as [a]:
        await a.join(ROOM)
        await a.update(ROOM, set={"kept": [1, 2]})
    async with members(kpk.url) as [b]:
        assert (await b.join(ROOM))["state"] == {"kept": [1, 2]}


async def test_state_survives_a_server_restart(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str
) -> None:
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    first = start_kpk(*flags)
    async with members(first.url) as [a]:
        await a.join(ROOM)
        await a.update(ROOM, set={"kept": "yes"})
    first.kill()
    second = start_kpk(*flags)
    async with members(second.url) as [b]:
        assert untagged([await b.join(ROOM)]) == [
            {"ok": True, "room": ROOM, "rev": 1, "state": {"kept": "yes"}}
        ]


async def test_in_order_delivery_under_three_concurrent_writers(kpk: KpkServer) -> None:
    per_writer = 60
    async with members(kpk.url, kpk.url, kpk.url, kpk.url) as [listener, *writers]:
        for m in (listener, *writers):
            await m.join(ROOM)

        async def write(index: int, writer: Member) -> list[dict[str, Any]]:
            # Sent without waiting for acks: the server must keep this connection's order.
            calls = [writer.update(ROOM, set={f"w{index}": seq, "last": index})
                     for seq in range(per_writer)]
            return await asyncio.gather(*calls)

        acks = await asyncio.gather(*(write(i, w) for i, w in enumerate(writers)))
        total = per_writer * len(writers)
        seen = await listener.wait_updates(ROOM, total)
        assert [u["rev"] for u in seen] == list(range(1, total + 1))
        for index, writer_acks in enumerate(acks):
            revs = [ack["rev"] for ack in writer_acks]
            assert revs == sorted(revs), "one connection's updates committed out of order"
            mine = [u["set"][f"w{index}"] for u in seen if f"w{index}" in u["set"]]
            assert mine == list(range(per_writer))
        final = (await listener.join(ROOM))["state"]
        assert {k: v for k, v in final.items() if k != "last"} == {
            f"w{i}": per_writer - 1 for i in range(len(writers))
        }


async def test_a_joiner_during_writes_sees_every_later_change_exactly_once(
    unlimited_kpk: KpkServer,
) -> None:
    kpk = unlimited_kpk
    async with members(kpk.url, kpk.url) as [writer, joiner]:
        await writer.join(ROOM)

        async def write() -> None:
            for i in range(150):
                await writer.update(ROOM, set={"n": i, f"k{i % 7}": i})

        task = asyncio.create_task(write())
        await asyncio.sleep(0.02)
        snapshot = await joiner.join(ROOM)
        await task
        later = await joiner.wait_updates(ROOM, 150 - snapshot["rev"])
        assert [u["rev"] for u in later] == list(range(snapshot["rev"] + 1, 151))
        state = dict(snapshot["state"])
        for update in later:
            state.update(update["set"])
        assert state == (await writer.join(ROOM))["state"]


def _nested(levels: int) -> object:
    """A value nested `levels` deep: the outermost list is level 1, the leaf adds none."""
    value: object = "leaf"
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"room": ROOM, "set": {"deep": _nested(33)}}, "invalid_update"),  # default 32
        ({"room": ROOM, "set": {"deep": _nested(300)}}, "invalid_update"),
        ({"room": ROOM, "set": {"s": "lone \ud800 surrogate"}}, "invalid_update"),
        ({"room": ROOM, "set": {"\udfff": 1}}, "invalid_update"),
        ({"room": ROOM, "set": {"x": {"\ud800": 1}}}, "invalid_update"),
        ({"room": ROOM, "unset": ["\ud800"]}, "invalid_update"),
        ({"room": ROOM, "set": {"a": 1}, "id": "\ud800"}, "invalid_update"),
        ({"room": "room \ud800", "set": {"a": 1}}, "invalid_room"),
    ],
)
async def test_values_that_would_poison_a_room_are_refused(
    redis_kpk: KpkServer, payload: dict[str, Any], code: str
) -> None:
    async with members(redis_kpk.url, redis_kpk.url) as [a, b]:
        await a.join(ROOM)
        await b.join(ROOM)
        ack = await a.update(ROOM, **{k: v for k, v in payload.items() if k != "room"}) \
            if payload["room"] == ROOM else await a.call("update", payload)
        assert (ack["ok"], ack["error"]) == (False, code)
        assert (await a.update(ROOM, set={"deep": _nested(32)}))["rev"] == 1
        assert (await b.wait_updates(ROOM, 1))[0]["set"] == {"deep": _nested(32)}
        assert (await b.join(ROOM))["state"] == {"deep": _nested(32)}


async def test_a_connection_joins_a_bounded_number_of_rooms(start_kpk: StartKpk) -> None:
    kpk = start_kpk("--max-rooms", "2")
    async with members(kpk.url) as [a]:
        await a.join("one")
        await a.join("two")
        await a.join("two")  # joined already: not another room
        ack = await a.call("join", {"room": "three"})
        assert (ack["ok"], ack["error"]) == (False, "too_many_rooms")
        await a.call("leave", {"room": "one"})
        await a.join("three")


async def test_nobody_can_cancel_another_members_change_by_its_id(kpk: KpkServer) -> None:
    victim, squatter = Member(kpk.url), Member(kpk.url)
    await victim.sio.connect(kpk.url, auth={"client": "v" * 32}, transports=["websocket"])
    await squatter.sio.connect(kpk.url, auth={"client": "s" * 32}, transports=["websocket"])
    try:
        await victim.join(ROOM)
        await squatter.join(ROOM)
        assert (await squatter.update(ROOM, set={"title": "spam"}, id="v-1"))["rev"] == 1
        ack = await victim.update(ROOM, set={"title": "important"}, id="v-1")
        assert untagged([ack]) == [{"ok": True, "room": ROOM, "rev": 2}]
        again = await victim.update(ROOM, set={"title": "important"}, id="v-1")
        assert again == {"ok": True, "room": ROOM, "rev": 2, "duplicate": True,
                         "tag": ack["tag"]}
        assert (await squatter.join(ROOM))["state"] == {"title": "important"}
    finally:
        await victim.close()
        await squatter.close()


async def test_the_sender_gets_no_echo_when_others_join_its_node_meanwhile(
    redis_kpk: KpkServer,
) -> None:
    async with members(redis_kpk.url) as [writer]:
        await writer.join(ROOM)
        joiners: list[Member] = []

        async def write() -> None:
            for i in range(200):
                await writer.update(ROOM, set={"n": i})

        task = asyncio.create_task(write())
        while not task.done():
            joiner = await Member(redis_kpk.url).connect()
            joiners.append(joiner)
            await joiner.join(ROOM)
        await task
        for joiner in joiners:
            await joiner.close()
        assert writer.updates == []
