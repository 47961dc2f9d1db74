"""kpk_io.publish against a real Redis, seen by real clients of real `kpk-io serve` processes."""

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import redis.asyncio as aioredis

from kpk_io.change import CommittedChange, Snapshot, State
from kpk_io.client import KpkClient, Room
from kpk_io.limits import Limits, Rate
from kpk_io.publish import AsyncPublisher, Publisher, PublishError
from kpk_io.store.redis_keys import room_keys
from tests.conftest import StartKpk
from tests.processes import KpkServer, RedisServer
from tests.sockets import members, untagged

JoinEverywhere = Callable[[str], Awaitable[list[tuple[Room, list[CommittedChange]]]]]


@pytest.fixture
def nodes(start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str) -> list[KpkServer]:
    return [start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix)
            for _ in range(3)]


@pytest.fixture
async def join_everywhere(nodes: list[KpkServer]) -> AsyncIterator[JoinEverywhere]:
    """A member of the room on every node, with the changes it saw from others."""
    clients: list[KpkClient] = []

    async def join(room_id: str) -> list[tuple[Room, list[CommittedChange]]]:
        members = []
        for node in nodes:
            client = KpkClient(node.url, transports=["websocket"])
            clients.append(client)
            await client.connect()
            room = await client.join(room_id)
            members.append((room, record(room)))
        return members

    yield join
    for client in clients:
        await client.close()


@pytest.fixture
async def publisher(redis_server: RedisServer, key_prefix: str) -> AsyncIterator[AsyncPublisher]:
    async with AsyncPublisher(redis_server.url, key_prefix=key_prefix) as publisher:
        yield publisher


def record(room: Room) -> list[CommittedChange]:
    seen: list[CommittedChange] = []
    room.on_change(lambda _room, change: seen.append(change))
    return seen


async def reach(room: Room, rev: int) -> State:
    """The member's state once it has applied every change up to `rev`."""
    return await room.wait_for(lambda _state: room.rev >= rev)


def wire(changes: list[CommittedChange]) -> list[dict[str, object]]:
    return untagged([change.to_wire() for change in changes])


def rev_and_state(snapshot: Snapshot) -> tuple[int, State]:
    return snapshot.rev, snapshot.state


async def test_async_updates_reach_members_on_every_node(
    publisher: AsyncPublisher, join_everywhere: JoinEverywhere
) -> None:
    members = await join_everywhere("kpk/notes/acme/q1/intro")

    first = await publisher.update("kpk/notes/acme/q1/intro", {"title": "Q1", "n": 1})
    second = await publisher.update(
        "kpk/notes/acme/q1/intro", {"n": 2}, unset=["title"], rev=1, change_id="cron-7"
    )

    assert (first, second) == (1, 2)
    for room, seen in members:
        assert await reach(room, 2) == {"n": 2}
        assert [(c.rev, c.id) for c in seen] == [(1, None), (2, "cron-7")]
    assert rev_and_state(await publisher.get("kpk/notes/acme/q1/intro")) == (2, {"n": 2})


async def test_async_delete_is_a_replace_members_apply(
    publisher: AsyncPublisher, join_everywhere: JoinEverywhere
) -> None:
    await publisher.update("plan", {"a": 1, "b": 2})
    members = await join_everywhere("plan")

    assert await publisher.delete("plan") == 2

    for room, seen in members:
        assert await reach(room, 2) == {}
        assert wire(seen) == [
            {"room": "plan", "rev": 2, "set": {}, "unset": [], "replace": True}
        ]
    assert rev_and_state(await publisher.get("plan")) == (2, {})


async def test_sync_publisher_in_a_worker_thread_reaches_members(
    redis_server: RedisServer, key_prefix: str, join_everywhere: JoinEverywhere
) -> None:
    members = await join_everywhere("plan")

    def django_view() -> tuple[int, Snapshot, int]:
        with Publisher(redis_server.url, key_prefix=key_prefix) as publisher:
            rev = publisher.update("plan", {"title": "Q1"}, change_id="view-1")
            return rev, publisher.get("plan"), publisher.delete("plan")

    rev, snapshot, cleared = await asyncio.to_thread(django_view)
    assert (rev, rev_and_state(snapshot), cleared) == (1, (1, {"title": "Q1"}), 2)
    for room, seen in members:
        assert await reach(room, 2) == {}
        assert [(c.rev, c.id, c.change.replace) for c in seen] == [
            (1, "view-1", False), (2, None, True)
        ]


def test_sync_publisher_in_plain_code(redis_server: RedisServer, key_prefix: str) -> None:
    with Publisher(redis_server.url, key_prefix=key_prefix) as publisher:
        assert publisher.update("plan", {"a": 1}, rev=0) == 1
        with pytest.raises(PublishError) as refused:
            publisher.update("plan", {"a": 2}, rev=0)
        assert (refused.value.code, refused.value.rev) == ("conflict", 1)
        with pytest.raises(PublishError) as refused:
            publisher.update("undefined", {"a": 2})
        assert refused.value.code == "invalid_room"
        assert rev_and_state(publisher.get("plan")) == (1, {"a": 1})

    with pytest.raises(RuntimeError, match="closed"):
        publisher.get("plan")


async def test_a_stale_rev_is_a_conflict_carrying_the_current_rev(
    publisher: AsyncPublisher,
) -> None:
    await publisher.update("plan", {"a": 1})

    with pytest.raises(PublishError) as refused:
        await publisher.update("plan", {"a": 2}, rev=0)

    assert (refused.value.code, refused.value.rev) == ("conflict", 1)
    assert rev_and_state(await publisher.get("plan")) == (1, {"a": 1})


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda p: p.update("plan"), "invalid_update"),
        (lambda p: p.update("plan", {"a": math.nan}), "invalid_update"),
        (lambda p: p.update("plan", {"a": 1}, unset=["a"]), "invalid_update"),
        (lambda p: p.update("plan", unset="ab"), "invalid_update"),
        (lambda p: p.update("plan", {"a": 1}, rev=-1), "invalid_update"),
        (lambda p: p.update("plan", {"a": 1}, change_id=""), "invalid_update"),
        (lambda p: p.update("", {"a": 1}), "invalid_room"),
        (lambda p: p.update("null", {"a": 1}), "invalid_room"),
        (lambda p: p.get("a\x00b"), "invalid_room"),
        (lambda p: p.delete("x" * 257), "invalid_room"),
    ],
)
async def test_bad_input_is_refused_with_protocol_codes(
    publisher: AsyncPublisher,
    call: Callable[[AsyncPublisher], Awaitable[object]],
    code: str,
) -> None:
    with pytest.raises(PublishError) as refused:
        await call(publisher)

    assert refused.value.code == code
    assert rev_and_state(await publisher.get("plan")) == (0, {})


async def test_an_unreachable_redis_is_unavailable(own_redis: RedisServer) -> None:
    own_redis.kill()

    async with AsyncPublisher(own_redis.url) as publisher:
        with pytest.raises(PublishError) as refused:
            await publisher.update("plan", {"a": 1})
    assert refused.value.code == "unavailable"

    def blocking() -> PublishError:
        with Publisher(own_redis.url) as publisher, pytest.raises(PublishError) as caught:
            publisher.get("plan")
        return caught.value

    assert (await asyncio.to_thread(blocking)).code == "unavailable"


async def test_every_commit_and_every_join_renews_the_room_ttl(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str
) -> None:
    """KPK_IO_ROOM_TTL=1: the HTTP API, a socket update, a join and a publisher each set the
    TTL of every key of the room to one day again (read from the real Redis)."""
    day_ms = 86_400_000
    env = {"KPK_IO_ROOM_TTL": "1", "KPK_IO_API_KEY": "k" * 32}
    server = start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix, env=env)
    raw = aioredis.Redis.from_url(redis_server.url)
    keys = room_keys(key_prefix, "kept")

    async def shortened() -> None:
        for key in keys.stored:
            await raw.pexpire(key, 60_000)

    async def renewed() -> bool:
        ttls = [await raw.pttl(key) for key in keys.stored]
        return all(day_ms - 120_000 < ttl <= day_ms for ttl in ttls)

    try:
        async with aiohttp.ClientSession() as http:
            url = f"{server.url}/api/rooms/kept"
            headers = {"Authorization": f"Bearer {env['KPK_IO_API_KEY']}"}
            async with http.patch(url, json={"set": {"a": 1}}, headers=headers) as response:
                assert response.status == 200
        assert await renewed()
        async with members(server.url) as [member]:
            await shortened()
            await member.join("kept")
            assert await renewed()
            await shortened()
            assert (await member.update("kept", set={"b": 2}))["ok"]
            assert await renewed()
        await shortened()
        async with AsyncPublisher(
            redis_server.url, key_prefix=key_prefix, room_ttl=1
        ) as publisher:
            await publisher.update("kept", {"c": 3})
        assert await renewed()
    finally:
        await raw.aclose()


async def test_publishers_obey_the_servers_limits(
    redis_server: RedisServer, key_prefix: str
) -> None:
    limits = Limits(update_bytes=100, state_bytes=150, fields=2, field_name=4, depth=2,
                    updates=Rate(0, 1))
    async with AsyncPublisher(redis_server.url, key_prefix=key_prefix, limits=limits) as pub:
        refusals = [
            (pub.update("plan", {"a": "x" * 100}), "too_large"),
            (pub.update("plan", {"longer": 1}), "invalid_update"),
            (pub.update("plan", {"a": [[[]]]}), "invalid_update"),
            (pub.update("plan", {"a": 1, "b": 2, "c": 3}), "too_large"),
        ]
        for call, code in refusals:
            with pytest.raises(PublishError) as refused:
                await call
            assert refused.value.code == code
        assert await pub.update("plan", {"a": "x" * 90}) == 1
        with pytest.raises(PublishError) as refused:
            await pub.update("plan", {"b": "y" * 70})  # 93 + 73 > 150: the room's bound
        assert refused.value.code == "too_large"
        assert rev_and_state(await pub.get("plan")) == (1, {"a": "x" * 90})
        assert await pub.update("plan", {"b": 1}) == 2


async def test_publishers_are_rate_limited(redis_server: RedisServer, key_prefix: str) -> None:
    limits = Limits(updates=Rate(0.5, 2), requests=Rate(0, 1))
    async with AsyncPublisher(redis_server.url, key_prefix=key_prefix, limits=limits) as pub:
        assert await pub.update("plan", {"a": 1}) == 1
        assert await pub.delete("plan") == 2
        with pytest.raises(PublishError) as refused:
            await pub.update("plan", {"a": 2})
        assert refused.value.code == "rate_limited"
        assert refused.value.retry_after is not None and 0 < refused.value.retry_after <= 2000
        assert rev_and_state(await pub.get("plan")) == (2, {})  # reads: not limited here
        await asyncio.sleep(refused.value.retry_after / 1000)
        assert await pub.update("plan", {"a": 3}) == 3
