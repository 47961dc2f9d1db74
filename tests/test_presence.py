"""One suite for every PresenceStore: memory and Redis (kpk_io/presence.py's contract)."""

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from kpk_io.presence import Member, PresenceStore, member_from_wire
from kpk_io.presence_memory import MemoryPresence, PresenceSpace
from kpk_io.presence_redis import RedisPresence
from tests.polling import eventually_async
from tests.processes import RedisServer

TTL = 0.6
MakeNode = Callable[[], PresenceStore]


@pytest.fixture(params=["memory", "redis"])
async def make_node(
    request: pytest.FixtureRequest, redis_server: RedisServer, key_prefix: str
) -> AsyncIterator[MakeNode]:
    """Makes nodes of one cluster: they share a PresenceSpace, or a Redis and key prefix."""
    made: list[PresenceStore] = []
    space = PresenceSpace()

    def make() -> PresenceStore:
        node: PresenceStore = (
            MemoryPresence(TTL, space) if request.param == "memory"
            else RedisPresence(redis_server.url, prefix=key_prefix, ttl=TTL)
        )
        made.append(node)
        return node

    yield make
    for node in made:
        await node.close()


def member(n: int, meta: dict[str, object] | None = None) -> Member:
    return Member(f"m{n}", f"user{n}", None if n % 2 else f"Name {n}", meta or {})


async def listed(node: PresenceStore, room: str) -> list[str]:
    return sorted(m.id for m in await node.members(room))


async def test_members_of_every_node_are_listed_and_removed(make_node: MakeNode) -> None:
    a, b = make_node(), make_node()
    assert not await a.beat() and not await b.beat()  # a first beat is no comeback
    assert [m.id for m in await a.add("r", member(1))] == ["m1"]
    assert sorted(m.id for m in await b.add("r", member(2))) == ["m1", "m2"]
    assert [m.id for m in await b.add("other", member(2))] == ["m2"]
    assert await listed(a, "r") == ["m1", "m2"] == await listed(b, "r")
    await a.add("r", member(1, {"color": "red"}))  # replaces
    assert [m.meta for m in await b.members("r") if m.id == "m1"] == [{"color": "red"}]
    await b.remove("r", "m2")
    await b.remove("r", "nobody")
    assert await listed(a, "r") == ["m1"]
    assert await listed(a, "other") == ["m2"]
    assert await listed(a, "empty") == []
    assert await a.counts(["r", "other", "empty"]) == {"r": 1, "other": 1, "empty": 0}
    assert await b.counts([]) == {}


async def test_a_node_that_stops_beating_is_pruned_once(make_node: MakeNode) -> None:
    alive, dead, third = make_node(), make_node(), make_node()
    for node in (alive, dead, third):
        await node.beat()
    await dead.add("r", member(1))
    await dead.add("s", member(1))
    await alive.add("r", member(2))

    async def keep_beating() -> None:
        while True:
            await alive.beat()
            await third.beat()
            await asyncio.sleep(TTL / 6)

    beating = asyncio.create_task(keep_beating())
    try:
        await eventually_async(lambda: listed(alive, "r"), ["m2"], timeout=10)
        pruned = await alive.prune() + await third.prune()
        assert sorted((room, m.id) for room, m in pruned) == [("r", "m1"), ("s", "m1")]
        assert await alive.prune() == [] and await third.prune() == []
        assert await dead.beat()  # it comes back: told it was pruned
        await dead.add("r", member(1))
        assert await listed(third, "r") == ["m1", "m2"]
    finally:
        beating.cancel()


def test_members_round_trip_their_wire_form() -> None:
    for n in (1, 2):
        assert member_from_wire(member(n, {"a": [1]}).to_wire()) == member(n, {"a": [1]})
    bad: object
    for bad in (None, [], {"id": 1, "user": "u", "meta": {}}, {"id": "i", "user": "u"},
                {"id": "i", "user": "u", "name": 3, "meta": {}}):
        assert member_from_wire(bad) is None
