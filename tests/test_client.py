"""kpk_io.client against real servers: changes flow, reconnects resume, nothing is lost."""

import pytest
import redis.asyncio as aioredis

from kpk_io.change import Change
from kpk_io.client import KpkClient, KpkError
from tests.conftest import StartKpk
from tests.polling import eventually
from tests.processes import KpkServer, RedisServer
from tests.sockets import members

ROOM = "kpk/notes/acme%20co/q1/intro"


async def test_two_clients_see_each_others_changes(redis_kpk: KpkServer) -> None:
    async with KpkClient(redis_kpk.url) as one, KpkClient(redis_kpk.url) as two:
        first, second = await one.join(ROOM), await two.join(ROOM)
        seen: list[int] = []
        second.on_change(lambda room, change: seen.append(change.rev))
        first.set("title", "Q1 plan")
        first.set("items", [{"text": "ship", "done": False}])
        first.unset("items")
        assert first.state == {"title": "Q1 plan"}  # applied locally at once
        await second.wait_for(lambda s: s == {"title": "Q1 plan"})
        second.set("note", "hello")
        await first.wait_for(lambda s: s.get("note") == "hello")
        await first.flush()
        await second.flush()
        assert first.state == second.state == {"title": "Q1 plan", "note": "hello"}
        assert first.rev == second.rev
        assert seen and seen == sorted(seen)


async def test_concurrent_writers_converge(redis_kpk: KpkServer) -> None:
    async with KpkClient(redis_kpk.url) as a, KpkClient(redis_kpk.url) as b, \
            KpkClient(redis_kpk.url) as c:
        rooms = [await client.join(ROOM) for client in (a, b, c)]
        for i in range(30):
            for name, room in zip("abc", rooms, strict=True):
                room.set(name, i)
                room.set("shared", f"{name}{i}")
        for room in rooms:
            await room.flush()
        await eventually(lambda: len({r.rev for r in rooms}) == 1, what="the same rev")
        assert rooms[0].state == rooms[1].state == rooms[2].state
        assert {k: rooms[0].state[k] for k in "abc"} == {"a": 29, "b": 29, "c": 29}


async def test_compare_and_set_conflict_is_an_error(redis_kpk: KpkServer) -> None:
    async with KpkClient(redis_kpk.url) as client:
        room = await client.join(ROOM)
        assert await room.commit(Change({"v": 1}), rev=0) == 1
        with pytest.raises(KpkError) as refused:
            await room.commit(Change({"v": 2}), rev=0)
        assert refused.value.code == "conflict"
        assert refused.value.ack["rev"] == 1
        with pytest.raises(KpkError, match="invalid_room"):
            await client.join("undefined")


async def test_reconnect_rejoins_resyncs_and_sends_offline_edits(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str
) -> None:
    server = start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    async with KpkClient(server.url) as writer, KpkClient(server.url) as reader:
        mine, theirs = await writer.join(ROOM), await reader.join(ROOM)
        mine.set("before", 1)
        await theirs.wait_for(lambda s: s.get("before") == 1)
        server.kill()
        await eventually(lambda: not writer.connected and not reader.connected)
        mine.set("offline", "typed while down")
        mine.set("before", 2)
        assert mine.state == {"before": 2, "offline": "typed while down"}
        server.start()  # same port: the clients' own reconnection finds it
        await theirs.wait_for(lambda s: s.get("offline") == "typed while down", timeout=15)
        await mine.flush()
        assert theirs.state == mine.state == {"before": 2, "offline": "typed while down"}
        theirs.set("after", True)
        await mine.wait_for(lambda s: s.get("after") is True)
        await theirs.flush()
        # Exactly the three commits happened: nothing was sent twice.
        assert mine.rev == theirs.rev == 3


async def test_a_client_catches_up_on_what_it_missed_while_away(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str
) -> None:
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    first, second = start_kpk(*flags), start_kpk(*flags)
    async with KpkClient(first.url) as away:
        room = await away.join(ROOM)
        first.kill()
        await eventually(lambda: not away.connected)
        async with members(second.url) as [other]:
            await other.join(ROOM)
            for i in range(5):
                await other.update(ROOM, set={f"k{i}": i})
        first.start()
        await room.wait_for(lambda s: len(s) == 5, timeout=15)
        assert room.rev == 5
        assert room.state == {f"k{i}": i for i in range(5)}


async def test_clients_of_a_terminated_server_reconnect_and_resume(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str
) -> None:
    server = start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    async with KpkClient(server.url) as client:
        room = await client.join(ROOM)
        room.set("before", 1)
        await room.flush()
        assert server.terminate() == 0
        await eventually(lambda: not client.connected)
        room.set("during", 2)
        server.start()  # what the balancer would give it: another node at the same address
        await eventually(lambda: client.connected, timeout=15)
        await room.flush()
        async with members(server.url) as [other]:
            assert (await other.join(ROOM))["state"] == {"before": 1, "during": 2}


async def test_a_change_whose_ack_timed_out_is_applied_once(
    start_kpk: StartKpk, own_redis: RedisServer
) -> None:
    server = start_kpk("--redis-url", own_redis.url)
    raw = aioredis.Redis.from_url(own_redis.url)
    try:
        async with KpkClient(server.url, request_timeout=1.0) as client, \
                KpkClient(server.url) as other:
            mine, theirs = await client.join(ROOM), await other.join(ROOM)
            seen: list[int] = []
            theirs.on_change(lambda room, change: seen.append(change.rev))
            await raw.client_pause(1500, all=False)  # commits wait 1.5 s: the ack times out
            mine.set("slow", True)
            await mine.flush(timeout=10)
            assert mine.last_error is not None and mine.last_error.code == "timeout"
            await theirs.wait_for(lambda s: s == {"slow": True})
            theirs.set("after", 1)
            await mine.wait_for(lambda s: s.get("after") == 1)
            await theirs.flush()
            assert mine.rev == theirs.rev == 2  # the slow change was committed once
            assert seen == [1]
    finally:
        await raw.aclose()
