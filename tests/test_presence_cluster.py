"""Presence and signals across two real nodes on one Redis (issue 13)."""

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
import socketio

from kpk_io.broadcast import socketio_channel
from kpk_io.publish import AsyncPublisher, Publisher
from kpk_io.rooms import sio_room
from kpk_io.tokens import issue
from tests.auth_keys import SECRET
from tests.conftest import StartKpk
from tests.polling import eventually, eventually_async
from tests.processes import KpkServer, RedisServer
from tests.raw_client import RawClient

ROOM = "kpk/notes/acme/q1/presence"
Body = dict[str, Any]


class Peer:
    """A raw Socket.IO connection recording presence events and signals."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.presence: list[Body] = []
        self.signals: list[Body] = []
        self.custom: list[Body] = []
        self.updates: list[Body] = []
        self.sio.on("presence", self.presence.append)
        self.sio.on("signal", self.signals.append)
        self.sio.on("notice", self.custom.append)
        self.sio.on("update", self.updates.append)

    async def call(self, event: str, data: Body, timeout: float = 10) -> Body:
        ack: Body = await self.sio.call(event, data, timeout=timeout)
        return ack

    async def join(self, room: str = ROOM, **extra: Any) -> Body:
        ack = await self.call("join", {"room": room, **extra})
        assert ack["ok"], ack
        return ack

    def events(self, kind: str) -> list[Body]:
        """The members of every presence event of this kind, in arrival order."""
        return [m for event in self.presence for m in event.get(kind, [])]


@asynccontextmanager
async def peers(*urls: str) -> AsyncIterator[list[Peer]]:
    made = []
    try:
        for url in urls:
            peer = Peer(url)
            await peer.sio.connect(url, transports=["websocket"], wait_timeout=10)
            made.append(peer)
        yield made
    finally:
        for peer in made:
            await peer.sio.disconnect()


def ids(members: list[Body]) -> set[str]:
    return {m["id"] for m in members}


@pytest.fixture
def two_nodes(start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str) -> list[KpkServer]:
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    return [start_kpk(*flags), start_kpk(*flags)]


async def test_join_ack_lists_members_of_both_nodes_and_others_see_joins_and_leaves(
    two_nodes: list[KpkServer],
) -> None:
    a_url, b_url = (n.url for n in two_nodes)
    async with peers(a_url, b_url, a_url) as (first, second, third):
        ack1 = await first.join(meta={"color": "red"})
        me1 = ack1["member"]
        assert set(me1) == {"id", "user", "name", "meta"} and me1["meta"] == {"color": "red"}
        assert me1["user"].startswith("anonymous-") and me1["name"] is None
        assert ack1["members"] == [me1]
        ack2 = await second.join()
        assert ids(ack2["members"]) == {me1["id"], ack2["member"]["id"]}
        await eventually(lambda: first.events("joined") == [ack2["member"]], 10, "joined")
        ack3 = await third.join()
        assert len(ack3["members"]) == 3
        await eventually(lambda: ack3["member"] in second.events("joined"), 10, "joined on B")
        assert not any(m["id"] == me1["id"] for m in first.events("joined"))  # never itself

        left = await second.call("leave", {"room": ROOM})
        assert left["ok"]
        await eventually(
            lambda: all(p.events("left") == [ack2["member"]] for p in (first, third)), 10, "left"
        )
        await third.sio.disconnect()  # a closed connection disappears at once
        await eventually(lambda: ack3["member"] in first.events("left"), 10, "closed")
        rejoin = await second.join()
        assert ids(rejoin["members"]) == {me1["id"], rejoin["member"]["id"]}


async def test_meta_updates_reach_others_and_are_bounded(two_nodes: list[KpkServer]) -> None:
    a_url, b_url = (n.url for n in two_nodes)
    async with peers(a_url, b_url) as (first, second):
        me = (await first.join())["member"]
        await second.join()
        ack = await first.call("presence", {"room": ROOM, "meta": {"field": "title"}})
        assert ack == {"ok": True}
        updated = {**me, "meta": {"field": "title"}}
        await eventually(lambda: second.events("updated") == [updated], 10, "updated")
        assert first.events("updated") == []
        big = await first.call("presence", {"room": ROOM, "meta": {"x": "y" * 1100}})
        assert big["ok"] is False and big["error"] == "too_large"
        bad = await first.call("presence", {"room": ROOM, "meta": "red"})
        assert bad["error"] == "invalid_request"
        stranger = await second.call("presence", {"room": "elsewhere", "meta": {}})
        assert stranger["error"] == "not_joined"
        listed = (await second.join("other"))["members"]  # still usable after refusals
        assert len(listed) == 1
        again = (await second.join())["members"]  # joined already: the list, nothing else
        assert updated in again


async def test_signals_reach_other_members_on_both_nodes_never_the_sender_never_stored(
    two_nodes: list[KpkServer],
) -> None:
    a_url, b_url = (n.url for n in two_nodes)
    async with peers(a_url, b_url, a_url, b_url) as (sender, far, near, outsider):
        me = (await sender.join())["member"]
        await far.join()
        await near.join()
        for n in range(3):
            assert await sender.call("signal", {"room": ROOM, "data": {"caret": n}}) == {"ok": True}
        await sender.sio.emit("signal", {"room": ROOM, "data": {"caret": 3}})  # no ack asked
        expected = [{"room": ROOM, "from": me["id"], "data": {"caret": n}} for n in range(4)]
        await eventually(lambda: all(p.signals == expected for p in (far, near)), 10, "signals")
        assert sender.signals == [] and outsider.signals == []
        assert far.updates == [] and near.updates == []
        refused = await outsider.call("signal", {"room": ROOM, "data": 1})
        assert refused["error"] == "not_joined"
        later = await outsider.join()
        assert later["rev"] == 0 and later["state"] == {}  # no trace in the room
        await asyncio.sleep(0.5)
        assert outsider.signals == []


async def test_signal_limits_refuse_with_codes(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str,
) -> None:
    node = start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix,
                     "--signal-rate", "0.01", "--signal-burst", "4")
    async with peers(node.url, node.url) as (sender, other):
        await sender.join()
        await other.join()
        big = await sender.call("signal", {"room": ROOM, "data": "x" * 4100})
        assert big["error"] == "too_large"  # it took a token, as every refusal but a flood's
        answers = [await sender.call("signal", {"room": ROOM, "data": n}) for n in range(5)]
        assert [a["ok"] for a in answers[:3]] == [True] * 3
        assert answers[3]["error"] == "rate_limited" and answers[3]["retry_after"] > 0
        await eventually(lambda: len(other.signals) == 3, 10, "three signals")
        await sender.sio.emit("signal", {"room": ROOM, "data": "dropped"})  # refused silently
        assert (await sender.call("presence", {"room": ROOM, "meta": {}}))["ok"]  # usable
        assert [s["data"] for s in other.signals] == [0, 1, 2]


async def test_a_killed_nodes_members_expire_within_the_ttl(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str,
) -> None:
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix, "--presence-ttl", "3")
    survivor, doomed = start_kpk(*flags), start_kpk(*flags)
    async with peers(survivor.url) as (watcher,):
        await watcher.join()
        gone = Peer(doomed.url)
        await gone.sio.connect(doomed.url, transports=["websocket"], wait_timeout=10)
        member = (await gone.join())["member"]
        await eventually(lambda: watcher.events("joined") == [member], 10, "joined")
        doomed.kill()
        killed = asyncio.get_running_loop().time()
        # Within the TTL (3 s), plus slack for a loaded machine.
        await eventually(lambda: watcher.events("left") == [member], 3 + 4, "left")
        assert asyncio.get_running_loop().time() - killed < 7
        listed = (await watcher.join("another"))["members"]
        assert len(listed) == 1
        fresh = Peer(survivor.url)
        await fresh.sio.connect(survivor.url, transports=["websocket"], wait_timeout=10)
        assert len((await fresh.join())["members"]) == 2
        await fresh.sio.disconnect()


async def test_outside_emitters_reach_a_rooms_members(
    two_nodes: list[KpkServer], redis_server: RedisServer, key_prefix: str,
) -> None:
    a_url, b_url = (n.url for n in two_nodes)
    async with peers(a_url, b_url, b_url) as (first, second, outsider):
        await first.join()
        await second.join()
        emitter = socketio.AsyncRedisManager(
            redis_server.url, channel=socketio_channel(key_prefix), write_only=True
        )
        await emitter.emit("notice", {"text": "deploy at 5"}, room=sio_room(ROOM))
        notice = [{"text": "deploy at 5"}]
        await eventually(lambda: all(p.custom == notice for p in (first, second)), 10, "notice")
        async with AsyncPublisher(redis_server.url, key_prefix=key_prefix) as publisher:
            await publisher.signal(ROOM, {"banner": "hello"})
        with Publisher(redis_server.url, key_prefix=key_prefix) as blocking:
            await asyncio.to_thread(blocking.signal, ROOM, {"banner": "again"})
        expected = [{"room": ROOM, "from": None, "data": {"banner": b}} for b in ("hello", "again")]
        await eventually(lambda: all(p.signals == expected for p in (first, second)), 10,
                         "signal")
        assert outsider.custom == [] and outsider.signals == []


async def test_members_carry_the_tokens_user_and_read_only_members_may_signal(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str,
) -> None:
    env = {"KPK_IO_JWT_SECRET": SECRET}
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    a, b = start_kpk(*flags, env=env), start_kpk(*flags, env=env)
    writer = issue("u1", name="Ada", rooms=[ROOM], key=SECRET)
    reader = issue("u2", read_rooms=[ROOM], key=SECRET)
    first, second = Peer(a.url), Peer(b.url)
    await first.sio.connect(a.url, auth={"token": writer}, transports=["websocket"])
    await second.sio.connect(b.url, auth={"token": reader}, transports=["websocket"])
    try:
        ada = (await first.join())["member"]
        assert (ada["user"], ada["name"]) == ("u1", "Ada")
        ack = await second.join()
        assert ack["member"]["user"] == "u2" and ack["member"]["name"] is None
        assert ada in ack["members"]
        assert (await second.call("update", {"room": ROOM, "set": {"x": 1}}))["error"] == (
            "forbidden"
        )
        assert await second.call("signal", {"room": ROOM, "data": "hi"}) == {"ok": True}
        await eventually(lambda: [s["data"] for s in first.signals] == ["hi"], 10, "signal")
        assert first.signals[0]["from"] == ack["member"]["id"]
    finally:
        await first.sio.disconnect()
        await second.sio.disconnect()


async def test_a_silently_dead_member_leaves_when_its_ping_times_out(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str,
) -> None:
    node = start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix,
                     "--ping-interval", "1", "--ping-timeout", "1")
    async with peers(node.url) as (watcher,):
        await watcher.join()
        silent = await RawClient(node.url, answer_pings=False).open()
        try:
            ack = await silent.join(ROOM)
            assert ack["ok"], ack
            await eventually(lambda: watcher.events("joined") == [ack["member"]], 10, "joined")
            # Its connection stays open, but it answers no ping: gone after about 2 s.
            await eventually(lambda: watcher.events("left") == [ack["member"]], 15, "left")
        finally:
            await silent.close()


async def test_presence_and_signals_in_one_process_without_redis(start_kpk: StartKpk) -> None:
    node = start_kpk()
    async with peers(node.url, node.url) as (first, second):
        me = (await first.join(meta={"hue": 1}))["member"]
        ack = await second.join()
        assert ack["members"] == [me, ack["member"]] or ack["members"] == [ack["member"], me]
        await eventually(lambda: first.events("joined") == [ack["member"]], 10, "joined")
        assert await second.call("signal", {"room": ROOM, "data": [1, 2]}) == {"ok": True}
        await eventually(lambda: first.signals == [
            {"room": ROOM, "from": ack["member"]["id"], "data": [1, 2]}
        ], 10, "signal")
        assert second.signals == []
        await second.sio.disconnect()
        await eventually(lambda: first.events("left") == [ack["member"]], 10, "left")


async def test_updates_never_travel_on_the_socketio_channel(
    two_nodes: list[KpkServer], redis_server: RedisServer, key_prefix: str,
) -> None:
    """Room state keeps its own feed: with AsyncRedisManager as the client manager, hub
    deliveries stay local (each node delivers from its own feed), so each member gets each
    update once, and the channel carries presence and signals only."""
    subscriber = aioredis.Redis.from_url(redis_server.url)
    channel = subscriber.pubsub(ignore_subscribe_messages=True)
    await channel.subscribe(socketio_channel(key_prefix))
    events: list[str] = []

    async def record() -> None:
        async for message in channel.listen():
            events.append(json.loads(message["data"])["event"])

    recorder = asyncio.create_task(record())
    try:
        a_url, b_url = (n.url for n in two_nodes)
        async with peers(a_url, b_url, b_url) as (writer, far, near):
            for peer in (writer, far, near):
                await peer.join()
            for n in range(5):
                assert (await writer.call("update", {"room": ROOM, "set": {"n": n}}))["ok"]
            assert (await writer.call("signal", {"room": ROOM, "data": "done"}))["ok"]
            await eventually(lambda: "signal" in events, 10, "the signal on the channel")
            await eventually(lambda: len(far.updates) == len(near.updates) == 5, 10, "updates")
        for peer in (far, near):
            assert [u["rev"] for u in peer.updates] == [1, 2, 3, 4, 5]
        assert set(events) == {"presence", "signal"}, events
    finally:
        recorder.cancel()
        await channel.aclose()  # type: ignore[no-untyped-call]
        await subscriber.aclose()


async def test_a_redis_stall_holds_up_no_signal_request(
    start_kpk: StartKpk, own_redis: RedisServer, key_prefix: str,
) -> None:
    """Signals are delivered on their own node at once and only queue for the relay, which
    runs in a task of its own, never in the request's turn: a stalled Redis delays their
    relay, neither the sender's connection nor the node's own members."""
    flags = ("--redis-url", own_redis.url, "--key-prefix", key_prefix)
    a, b = start_kpk(*flags), start_kpk(*flags)
    async with peers(a.url, a.url, b.url) as (sender, near, far):
        for peer in (sender, near, far):
            await peer.join()
        own_redis.pause()
        try:
            loop = asyncio.get_running_loop()
            slowest = 0.0
            # 30 at 10 per second: longer than a signal may wait for its relay (2 s), and
            # each publish that Redis does not answer takes 2 s.
            for n in range(30):
                started = loop.time()
                assert await sender.call("signal", {"room": ROOM, "data": n}) == {"ok": True}
                slowest = max(slowest, loop.time() - started)
                await asyncio.sleep(0.1)
            assert slowest < 1.5, slowest
            # Every one delivered on its own node meanwhile, in order.
            await eventually(lambda: [s["data"] for s in near.signals] == list(range(30)), 5,
                             "all local signals during the stall")
        finally:
            own_redis.resume()
        ack = await sender.call("update", {"room": ROOM, "set": {"after": True}})
        assert ack["ok"], ack
        await eventually(lambda: any(u["rev"] == ack["rev"] for u in far.updates), 10, "update")
        assert (await sender.call("signal", {"room": ROOM, "data": "later"}))["ok"]
        await eventually(lambda: "later" in [s["data"] for s in far.signals], 15, "relayed")
    assert a.log().count("cannot publish presence and signals to Redis") <= 1


async def test_a_signal_does_not_wait_behind_its_connections_pending_update(
    start_kpk: StartKpk, own_redis: RedisServer, key_prefix: str,
) -> None:
    """An update holds its connection's turn while Redis stalls (seconds); the connection's
    signals and presence requests need no order with it and do not queue behind it."""
    node = start_kpk("--redis-url", own_redis.url, "--key-prefix", key_prefix)
    async with peers(node.url, node.url) as (sender, near):
        await sender.join()
        await near.join()
        own_redis.pause()
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            update = asyncio.create_task(
                sender.call("update", {"room": ROOM, "set": {"x": 1}}, timeout=30))
            await asyncio.sleep(0.1)
            assert await sender.call("signal", {"room": ROOM, "data": "now"}) == {"ok": True}
            await eventually(lambda: [s["data"] for s in near.signals] == ["now"], 5, "signal")
            assert loop.time() - started < 1.5
            assert not update.done()  # the update was still waiting for Redis all along
        finally:
            own_redis.resume()
        assert (await update)["ok"] in (True, False)  # answered, whatever Redis made of it
        assert (await sender.call("signal", {"room": ROOM, "data": "after"}))["ok"]


async def test_signals_and_meta_sent_right_after_a_join_count_as_the_members(
    start_kpk: StartKpk,
) -> None:
    """They skip only updates and syncs: a join (or leave) still comes first."""
    node = start_kpk()
    async with peers(node.url, node.url) as (sender, near):
        await near.join()
        for _ in range(5):
            join = asyncio.create_task(sender.call("join", {"room": ROOM}))
            signal = asyncio.create_task(sender.call("signal", {"room": ROOM, "data": 1}))
            meta = asyncio.create_task(sender.call("presence", {"room": ROOM, "meta": {}}))
            assert (await join)["ok"]
            assert await signal == {"ok": True} and await meta == {"ok": True}
            leave = asyncio.create_task(sender.call("leave", {"room": ROOM}))
            late = asyncio.create_task(sender.call("signal", {"room": ROOM, "data": 2}))
            assert (await leave)["ok"] and (await late)["error"] == "not_joined"
        await eventually(lambda: [s["data"] for s in near.signals] == [1] * 5, 10, "signals")


async def test_a_nodes_room_set_holds_only_rooms_with_members_and_expires(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str,
) -> None:
    node = start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix,
                     "--presence-ttl", "30")
    redis = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    rooms = [f"{ROOM}/{n}" for n in range(20)]

    async def held() -> set[str]:
        keys = await redis.keys(f"{key_prefix}presence-rooms:*")
        assert len(keys) <= 1, keys
        return {str(m) for m in await redis.smembers(keys[0])} if keys else set()

    try:
        async with peers(node.url, node.url) as (many, few):
            for _ in range(2):
                for room in rooms:
                    await many.join(room)
                for room in rooms[:3]:
                    await few.join(room)
                assert await held() == set(rooms)
                (key,) = await redis.keys(f"{key_prefix}presence-rooms:*")
                assert 0 < await redis.pttl(key) <= 90_000  # three TTLs: a dead node's goes
                for room in rooms:
                    assert (await many.call("leave", {"room": room}))["ok"]
                await eventually_async(held, set(rooms[:3]), timeout=10)
                for room in rooms[:3]:
                    assert (await few.call("leave", {"room": room}))["ok"]
                await eventually_async(held, set(), timeout=10)
            await few.join(rooms[0])
            await few.sio.disconnect()  # a closed connection's rooms go too
            await eventually_async(held, set(), timeout=10)
    finally:
        await redis.aclose()


async def test_a_redis_outage_is_logged_once_and_its_drops_counted(
    start_kpk: StartKpk, own_redis: RedisServer, key_prefix: str,
) -> None:
    """Not an ERROR line per presence event or signal (python-socketio's own publish logs
    one each): one warning when publishing stops working, one when it works again."""
    node = start_kpk("--redis-url", own_redis.url, "--key-prefix", key_prefix)
    async with peers(node.url, node.url) as (sender, near):
        await sender.join()
        await near.join()
        own_redis.stop()
        try:
            for n in range(10):
                assert await sender.call("signal", {"room": ROOM, "data": n}) == {"ok": True}
            await eventually(lambda: len(near.signals) == 10, 10, "local signals")
            await eventually(lambda: _relay_dropped(node) >= 1, 20, "drops counted")
        finally:
            own_redis.start()
        assert (await sender.call("signal", {"room": ROOM, "data": "back"}))["ok"]
        await eventually(lambda: "works again" in node.log(), 20, "publishing resumed")
    log = node.log()
    assert "Cannot publish to redis" not in log, log
    assert log.count("cannot publish presence and signals to Redis") == 1, log


def _relay_dropped(node: KpkServer) -> float:
    with urllib.request.urlopen(f"{node.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("kpk_io_relay_dropped_total "):
            return float(line.split()[1])
    return 0.0


async def test_a_member_that_left_while_redis_was_down_is_not_listed_afterwards(
    start_kpk: StartKpk, own_redis: RedisServer, key_prefix: str,
) -> None:
    """Its removal failed (Redis refused the connection); its node retries with its next
    heartbeat, so no ghost stays listed while the node lives."""
    # A TTL long enough that node A's heartbeat outlives the outage: its members are not
    # pruned as a dead node's, only the retry removes the one that left.
    flags = ("--redis-url", own_redis.url, "--key-prefix", key_prefix, "--presence-ttl", "9")
    a, b = start_kpk(*flags), start_kpk(*flags)
    async with peers(b.url) as (watcher,):
        await watcher.join()
        leaver = Peer(a.url)
        await leaver.sio.connect(a.url, transports=["websocket"], wait_timeout=10)
        await leaver.join()
        own_redis.stop()  # data kept in the AOF
        await leaver.sio.disconnect()
        await asyncio.sleep(1)  # the removal is tried (and fails) while Redis is down
        own_redis.start()

        async def listed() -> int:
            fresh = Peer(b.url)
            await fresh.sio.connect(b.url, transports=["websocket"], wait_timeout=10)
            try:
                ack = await fresh.call("join", {"room": ROOM})
                return len(ack["members"]) if ack.get("ok") else -1
            finally:
                await fresh.sio.disconnect()

        await eventually_async(listed, 2, timeout=20)  # the watcher and the fresh member
