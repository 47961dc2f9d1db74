"""kpk_io.client's listeners: changes (with whole-state resets), removal, connection status,
custom events (client.on), and how often it retries while the store is down."""

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import socketio

from kpk_io.broadcast import socketio_channel
from kpk_io.client import Change, KpkClient, KpkError, RoomChange, Status
from kpk_io.client_room import Backoff
from kpk_io.rooms import sio_room
from tests.conftest import StartKpk
from tests.polling import eventually
from tests.processes import KpkServer, RedisServer

ROOM = "kpk/notes/acme/q1/events"


async def test_a_server_that_lost_the_room_calls_listeners_with_a_reset(
    start_kpk: StartKpk,
) -> None:
    server = start_kpk()  # in-memory: a restart forgets every room
    async with KpkClient(server.url) as client:
        room = await client.join(ROOM)
        seen: list[RoomChange] = []
        room.on_change(lambda room, change: seen.append(change))
        await room.commit(Change({"title": "before"}))
        server.kill()
        await eventually(lambda: not client.connected)
        server.start()
        await eventually(lambda: seen, timeout=20, what="a reset")
        assert seen == [RoomChange(ROOM, 0, Change({}, replace=True), reset=True)]
        assert room.state == {} and room.rev == 0


async def test_a_removed_listener_hears_nothing_more(redis_kpk: KpkServer) -> None:
    async with KpkClient(redis_kpk.url) as one, KpkClient(redis_kpk.url) as two:
        writer, reader = await one.join(ROOM), await two.join(ROOM)
        kept: list[int] = []
        removed: list[int] = []
        reader.on_change(lambda room, change: kept.append(change.rev))
        remove = reader.on_change(lambda room, change: removed.append(change.rev))
        await writer.commit(Change({"n": 1}))
        await eventually(lambda: kept == [1] and removed == [1])
        remove()
        remove()  # a second call is harmless
        await writer.commit(Change({"n": 2}))
        await eventually(lambda: kept == [1, 2])
        assert removed == [1]


async def test_status_follows_the_connection(start_kpk: StartKpk) -> None:
    server = start_kpk()
    client = KpkClient(server.url, reconnection_delay=0.2, reconnection_delay_max=0.5)
    statuses: list[Status] = []
    client.on_status(lambda status, error: statuses.append(status))
    assert client.status == "offline"
    await client.connect()
    assert statuses == ["connecting", "connected"]
    server.kill()
    await eventually(lambda: statuses[-1] == "connecting", what="connecting again")
    server.start()
    await eventually(lambda: statuses[-1] == "connected", timeout=15, what="reconnected")
    await client.close()
    assert statuses == ["connecting", "connected", "connecting", "connected", "offline"]
    assert client.status == "offline"


async def test_a_refused_connection_is_status_error(start_kpk: StartKpk) -> None:
    server = start_kpk(env={"KPK_IO_JWT_SECRET": "s" * 32})  # a token is required
    client = KpkClient(server.url)
    seen: list[tuple[Status, Exception | None]] = []
    client.on_status(lambda status, error: seen.append((status, error)))
    with pytest.raises(KpkError) as refused:
        await client.connect()
    await client.close()
    assert refused.value.code == "unauthorized"
    assert [status for status, _ in seen] == ["connecting", "error", "offline"]
    assert seen[1][1] is refused.value


def test_backoff_doubles_with_jitter_up_to_a_cap() -> None:
    backoff = Backoff(first=0.5, cap=5.0)
    delays = [backoff.next_delay() for _ in range(8)]
    for delay, ceiling in zip(delays, [0.5, 1, 2, 4, 5, 5, 5, 5], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    runs = [[Backoff(0.5, 5.0).next_delay() for _ in range(3)] for _ in range(20)]
    assert len({tuple(run) for run in runs}) == 20  # jittered: no two clients in step
    backoff.reset()
    assert backoff.next_delay() <= 0.5


_REFUSAL = re.compile(r"^(\S+ \S+) WARNING .*update refused, store unavailable", re.M)


async def test_updates_during_a_store_outage_back_off_and_log_warnings(
    start_kpk: StartKpk, own_redis: RedisServer
) -> None:
    server = start_kpk("--redis-url", own_redis.url)
    async with KpkClient(server.url) as client:
        room = await client.join(ROOM)
        own_redis.stop()
        room.set("during", "the outage")
        await eventually(lambda: len(_REFUSAL.findall(server.log())) >= 5, timeout=30,
                         what="five refused attempts")
        times = [datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f")
                 for t in _REFUSAL.findall(server.log())]
        # Fixed 0.5 s retries would make these five attempts within about 2.6 s; backing off
        # from 0.5 s (jitter takes at most half) they span 0.25 + 0.5 + 1 + 2 s at least.
        assert (times[4] - times[0]).total_seconds() >= 3.7
        assert " ERROR kpk_io.handlers" not in server.log()  # an outage is not a bug
        own_redis.start()
        await room.flush(timeout=20)
    assert room.state == {"during": "the outage"}


def test_status_names_match_the_browser_client() -> None:
    source = Path("web/kpk-io/client.js").read_text(encoding="utf-8")
    declared = re.search(r'@typedef \{(.*)\} ConnectionStatus', source)
    assert declared is not None
    assert set(re.findall(r'"(\w+)"', declared.group(1))) == set(Status.__args__)  # type: ignore[attr-defined]


EVENTS_ROOM = "events/custom"


async def test_on_returns_a_function_that_removes_the_handler(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str
) -> None:
    node = start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    emitter = socketio.AsyncRedisManager(
        redis_server.url, channel=socketio_channel(key_prefix), write_only=True
    )
    first: list[Any] = []
    second: list[Any] = []

    async def record_second(data: Any) -> None:
        second.append(data)

    async with KpkClient(node.url) as client:
        await client.join(EVENTS_ROOM)
        remove_first = client.on("notice", first.append)
        remove_second = client.on("notice", record_second)
        assert callable(remove_first) and callable(remove_second)
        await emitter.emit("notice", {"n": 1}, room=sio_room(EVENTS_ROOM))
        await eventually(lambda: first == [{"n": 1}] and second == [{"n": 1}], 10,
                         "both handlers to get the event")
        remove_first()
        remove_first()  # removing twice is harmless
        await emitter.emit("notice", {"n": 2}, room=sio_room(EVENTS_ROOM))
        await eventually(lambda: second == [{"n": 1}, {"n": 2}], 10, "the kept handler")
        assert first == [{"n": 1}]
        remove_second()
        client.on("notice", first.append)  # a handler added after removals still runs
        await emitter.emit("notice", {"n": 3}, room=sio_room(EVENTS_ROOM))
        await eventually(lambda: first == [{"n": 1}, {"n": 3}], 10, "a new handler")
        assert second == [{"n": 1}, {"n": 2}]
