"""Several `kpk-io serve` processes on one Redis behave as one service."""

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from kpk_io.store.redis_keys import room_keys
from tests.conftest import StartKpk
from tests.polling import eventually, eventually_async
from tests.processes import KpkServer, RedisServer
from tests.sockets import Member, members

ROOM = "kpk/notes/acme%20co/q1/intro"


@pytest.fixture
def nodes(start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str) -> list[KpkServer]:
    # Writers here go as fast as they can on purpose: no rate limit.
    off = {"KPK_IO_RATE_LIMIT": "0"}
    return [start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix, env=off)
            for _ in range(3)]


async def test_concurrent_writers_on_three_nodes_reach_every_listener_in_order(
    nodes: list[KpkServer],
) -> None:
    per_writer = 40
    urls = [n.url for n in nodes]
    async with members(*urls, *urls) as clients:
        writers, listeners = clients[:3], clients[3:]
        for client in clients:
            await client.join(ROOM)

        async def write(index: int, writer: Member) -> list[dict[str, Any]]:
            return await asyncio.gather(*(
                writer.update(ROOM, set={f"w{index}": seq}, id=f"w{index}-{seq}")
                for seq in range(per_writer)
            ))

        acks = await asyncio.gather(*(write(i, w) for i, w in enumerate(writers)))
        total = per_writer * 3
        assert sorted(a["rev"] for batch in acks for a in batch) == list(range(1, total + 1))
        for listener in listeners:
            seen = await listener.wait_updates(ROOM, total)
            assert [u["rev"] for u in seen] == list(range(1, total + 1))
        for index, writer in enumerate(writers):
            others = await writer.wait_updates(ROOM, total - per_writer)
            assert not any(u.get("id", "").startswith(f"w{index}-") for u in others)
            assert [u["rev"] for u in others] == sorted(
                a["rev"] for i, batch in enumerate(acks) if i != index for a in batch
            )


async def test_rooms_stay_isolated_across_nodes(nodes: list[KpkServer]) -> None:
    rooms = ["a_b/c", "a/b_c", "x%2Fy"]
    async with members(*(n.url for n in nodes)) as clients:
        for room, client in zip(rooms, clients, strict=True):
            await client.join(room)
        async with members(nodes[0].url) as [writer]:
            for index, room in enumerate(rooms):
                await writer.join(room)
                await writer.update(room, set={"i": index})
        for index, (room, client) in enumerate(zip(rooms, clients, strict=True)):
            assert [u["set"] for u in await client.wait_updates(room, 1)] == [{"i": index}]
            assert {u["room"] for u in client.updates} == {room}


async def test_a_crashed_node_loses_no_acknowledged_update_for_other_members(
    nodes: list[KpkServer],
) -> None:
    doomed, *survivors = nodes
    acked: list[int] = []
    async with members(*(n.url for n in survivors)) as listeners:
        for listener in listeners:
            await listener.join(ROOM)
        writer = await Member(doomed.url).connect()
        await writer.join(ROOM)

        async def write() -> None:
            with contextlib.suppress(Exception):
                for seq in range(10_000):
                    ack = await writer.update(ROOM, set={"seq": seq}, id=f"seq-{seq}")
                    acked.append(ack["rev"])

        task = asyncio.create_task(write())
        await eventually(lambda: len(acked) >= 50, what="50 acknowledged updates")
        doomed.kill()
        await task
        assert acked
        for listener in listeners:
            await listener.wait_updates(ROOM, len(acked))
            revs = [u["rev"] for u in listener.updates]
            assert revs == list(range(1, len(revs) + 1))
            assert set(acked) <= set(revs)
        await writer.close()


async def test_a_dropped_feed_is_filled_from_the_log(
    nodes: list[KpkServer], redis_server: RedisServer
) -> None:
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        async with members(nodes[0].url, nodes[1].url) as [writer, listener]:
            await writer.join(ROOM)
            await listener.join(ROOM)
            for round_ in range(3):
                # Cut every node's pub/sub connection while updates are being committed:
                # whatever was published meanwhile is lost to the feed.
                burst = [writer.update(ROOM, set={"n": round_ * 30 + i}) for i in range(30)]
                kill = raw.client_kill_filter(_type="pubsub")
                await asyncio.gather(*burst, kill)
            total = 90
            seen = await listener.wait_updates(ROOM, total, timeout=20)
            assert [u["rev"] for u in seen] == list(range(1, total + 1))
        # The cut really happened (else this test would prove nothing).
        assert "change feed restored" in nodes[1].log()
    finally:
        await raw.aclose()


async def test_a_node_subscribes_only_to_rooms_it_has_members_in(
    nodes: list[KpkServer], redis_server: RedisServer, key_prefix: str
) -> None:
    raw = aioredis.Redis.from_url(redis_server.url)
    channel = room_keys(key_prefix, ROOM).channel

    async def subscribers() -> int:
        counts = await raw.pubsub_numsub(channel)
        return int(counts[0][1])

    try:
        assert await subscribers() == 0
        async with members(nodes[0].url, nodes[0].url, nodes[1].url) as [a, b, c]:
            await a.join(ROOM)
            await b.join(ROOM)
            assert await subscribers() == 1
            await c.join(ROOM)
            assert await subscribers() == 2
            await c.update(ROOM, set={"x": 1})
            await a.wait_updates(ROOM, 1)
            idle = await _metric(nodes[2], "kpk_io_broadcast_deliveries_total")
            assert idle == 0.0
            await a.call("leave", {"room": ROOM})
            await b.call("leave", {"room": ROOM})
            await eventually_async(subscribers, 1)
        await eventually_async(subscribers, 0)
    finally:
        await raw.aclose()


async def test_readiness_follows_redis(start_kpk: StartKpk, own_redis: RedisServer) -> None:
    node = start_kpk("--redis-url", own_redis.url)
    async with aiohttp.ClientSession() as http:
        assert await _status(http, f"{node.url}/readyz") == 200
        own_redis.stop()
        assert await _status(http, f"{node.url}/readyz") == 503
        assert await _status(http, f"{node.url}/healthz") == 200
        own_redis.start()
        await eventually_async(lambda: _status(http, f"{node.url}/readyz"), 200)


async def test_updates_flow_again_after_redis_restarts(
    start_kpk: StartKpk, own_redis: RedisServer
) -> None:
    first, second = (start_kpk("--redis-url", own_redis.url) for _ in range(2))
    async with members(first.url, second.url) as [writer, listener]:
        await writer.join(ROOM)
        await listener.join(ROOM)
        await writer.update(ROOM, set={"v": 1})
        own_redis.kill()
        own_redis.start()

        async def committed() -> bool:
            ack = await writer.update(ROOM, set={"v": 2})
            return bool(ack["ok"])

        await eventually_async(committed, True)
        seen = await listener.wait_updates(ROOM, 2, timeout=15)
        assert [u["set"] for u in seen] == [{"v": 1}, {"v": 2}]


async def test_metrics_move(redis_kpk: KpkServer) -> None:
    async with members(redis_kpk.url, redis_kpk.url) as [a, b]:
        await a.join(ROOM)
        await b.join(ROOM)
        assert await _metric(redis_kpk, "kpk_io_connections") == 2
        assert await _metric(redis_kpk, "kpk_io_rooms") == 1
        await a.update(ROOM, set={"x": 1})
        await a.update(ROOM, set={"x": 1}, unset=["x"])
        await a.update(ROOM, set={"x": 2}, rev=0)
        await b.wait_updates(ROOM, 1)
        assert await _metric(redis_kpk, "kpk_io_updates_committed_total") == 1
        assert await _metric(redis_kpk, "kpk_io_updates_refused_total",
                             'code="invalid_update"') == 1
        assert await _metric(redis_kpk, "kpk_io_updates_refused_total", 'code="conflict"') == 1
        assert await _metric(redis_kpk, "kpk_io_broadcast_deliveries_total") == 1
        assert await _metric(redis_kpk, "kpk_io_commit_seconds_count") == 2


async def test_sigterm_under_load_loses_no_acknowledged_update(
    nodes: list[KpkServer],
) -> None:
    stopping, other = nodes[0], nodes[1]
    acked: list[str] = []
    refused: list[str] = []

    async def write(index: int) -> None:
        writer = await Member(stopping.url).connect()
        await writer.join(ROOM)
        with contextlib.suppress(Exception):
            for seq in range(100_000):
                field = f"w{index}-{seq}"
                ack = await writer.update(ROOM, set={field: seq})
                (acked if ack["ok"] else refused).append(field)
        with contextlib.suppress(Exception):
            await writer.close()

    tasks = [asyncio.create_task(write(i)) for i in range(4)]
    await eventually(lambda: len(acked) >= 100, what="100 acknowledged updates")
    started = time.monotonic()
    code = await asyncio.to_thread(stopping.terminate)
    elapsed = time.monotonic() - started
    await asyncio.gather(*tasks)
    assert code == 0
    assert elapsed < 10, f"shutdown took {elapsed:.1f}s"
    async with members(other.url) as [reader]:
        state = (await reader.join(ROOM))["state"]
    missing = [field for field in acked if field not in state]
    assert not missing, f"{len(missing)} acknowledged updates lost"
    assert not set(refused) & set(state), "a refused update was committed"


async def _status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as response:
        return response.status


async def _metric(node: KpkServer, name: str, labels: str = "") -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{node.url}/metrics") as response:
        text = await response.text()
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{wanted} not in /metrics")
