"""The hub's lane rules, in process: a Hub on a real store, with this node's sockets played by
a recorder of the Members calls, and a feed that can lose messages (the fault injected)."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from kpk_io.change import Change, CommittedChange
from kpk_io.hub import Hub
from kpk_io.store.base import StateStore
from kpk_io.store.memory import MemoryStateStore
from kpk_io.store.redis import RedisStateStore
from tests.polling import eventually
from tests.processes import RedisServer

ROOM = "hub-room"


@dataclass
class Sockets:
    """This node's sockets as the hub sees them: who entered when, what was delivered."""

    log: list[tuple[str, object]] = field(default_factory=list)
    resyncs: list[str] = field(default_factory=list)

    async def enter(self, sid: str, room: str) -> None:
        self.log.append(("enter", sid))

    async def leave(self, sid: str, room: str) -> None:
        self.log.append(("leave", sid))

    def deliver(self, committed: CommittedChange) -> None:
        self.log.append(("deliver", committed))

    async def resync(self, room: str) -> None:
        self.resyncs.append(room)

    def send_whole(self, sid: str, committed: CommittedChange) -> None:
        self.log.append(("whole", (sid, committed)))

    def release(self, sid: str, room: str) -> None:
        self.log.append(("release", sid))

    @property
    def delivered(self) -> list[CommittedChange]:
        return [item for kind, item in self.log if isinstance(item, CommittedChange)]


class LossyFeed:
    """Stands between the store's feed and the hub, losing the revs in `lose`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.lose: set[int] = set()

    def on_change(self, committed: CommittedChange) -> None:
        if committed.rev not in self.lose:
            self.hub.on_change(committed)

    def on_feed_restored(self) -> None:
        self.hub.on_feed_restored()


@dataclass
class Node:
    store: StateStore
    hub: Hub
    sockets: Sockets
    feed: LossyFeed

    async def commit(self, change: Change) -> CommittedChange:
        result = await self.store.commit(ROOM, change)
        assert isinstance(result, CommittedChange)
        return result

    async def delivered_up_to(self, rev: int) -> list[CommittedChange]:
        await eventually(lambda: any(c.rev >= rev for c in self.sockets.delivered), 10.0,
                         f"delivery of rev {rev}")
        return self.sockets.delivered


def wire(store: StateStore) -> Node:
    sockets = Sockets()
    hub = Hub(store, sockets)
    feed = LossyFeed(hub)
    store.set_listener(feed)  # as app.create_app connects them, with the fault in between
    return Node(store, hub, sockets, feed)


@pytest.fixture(params=["memory", "redis"])
async def node(
    request: pytest.FixtureRequest, redis_server: RedisServer, key_prefix: str
) -> AsyncIterator[Node]:
    store: StateStore
    if request.param == "memory":
        store = MemoryStateStore(history=3)
    else:
        store = RedisStateStore(redis_server.url, prefix=key_prefix, history=3)
    made = wire(store)
    yield made
    await made.hub.close()
    await store.close()


async def test_a_joiner_enters_at_the_cursor_and_gets_every_later_change_once(node: Node) -> None:
    first = await node.hub.join("a", ROOM)
    assert first.rev == 0
    for n in (1, 2):
        await node.commit(Change({"n": n}))
    await node.delivered_up_to(2)
    second = await node.hub.join("b", ROOM)
    assert (second.rev, second.state) == (2, {"n": 2})
    await node.commit(Change({"n": 3}))
    await node.delivered_up_to(3)
    assert [c.rev for c in node.sockets.delivered] == [1, 2, 3]
    # b entered after rev 2 went out and before rev 3: it misses none and gets none twice.
    kinds = [item.rev if isinstance(item, CommittedChange) else kind
             for kind, item in node.sockets.log]
    assert kinds == ["enter", 1, 2, "enter", 3]
    assert node.hub.is_member("a", ROOM) and node.hub.is_member("b", ROOM)


async def test_a_lost_feed_message_is_filled_from_the_log(node: Node) -> None:
    await node.hub.join("a", ROOM)
    node.feed.lose = {2}
    for n in (1, 2, 3):
        await node.commit(Change({"n": n}))
    delivered = await node.delivered_up_to(3)
    assert [(c.rev, dict(c.change.set)) for c in delivered] == [
        (1, {"n": 1}), (2, {"n": 2}), (3, {"n": 3})
    ]


async def test_past_the_log_members_get_the_whole_state_as_one_replace(node: Node) -> None:
    await node.hub.join("a", ROOM)
    await node.commit(Change({"keep": 1}))
    await node.delivered_up_to(1)
    node.feed.lose = {2, 3, 4, 5}
    for n in range(2, 7):
        await node.commit(Change({f"f{n}": n}))
    delivered = await node.delivered_up_to(6)
    last = delivered[-1]
    assert [c.rev for c in delivered] == [1, 6]
    assert last.change.replace
    assert dict(last.change.set) == {"keep": 1, "f2": 2, "f3": 3, "f4": 4, "f5": 5, "f6": 6}
    assert last.tag == (await node.store.snapshot(ROOM)).tag


async def test_a_restored_feed_catches_up_every_lane(node: Node) -> None:
    await node.hub.join("a", ROOM)
    node.feed.lose = {1, 2}
    for n in (1, 2):
        await node.commit(Change({"n": n}))
    node.feed.on_feed_restored()
    delivered = await node.delivered_up_to(2)
    assert [c.rev for c in delivered] == [1, 2]
    assert node.hub.catch_ups == 1


async def test_a_rewritten_history_gives_the_whole_state(
    redis_server: RedisServer, key_prefix: str
) -> None:
    """Redis lost the room (a failover to a replica that never saw it) and others wrote it
    again past the hub's cursor: the revs look contiguous, but `prev` shows another history."""
    store = RedisStateStore(redis_server.url, prefix=key_prefix, history=10)
    node = wire(store)
    try:
        await node.hub.join("a", ROOM)
        for n in (1, 2):
            await node.commit(Change({"old": n}))
        await node.delivered_up_to(2)
        await _lose_everything(redis_server, key_prefix)
        node.feed.lose = {1, 2}  # the new revs 1 and 2 are at or below the cursor anyway
        for n in (1, 2, 3):
            await node.commit(Change({"new": n}))
        delivered = await node.delivered_up_to(3)
        assert [c.rev for c in delivered] == [1, 2, 3]
        whole = delivered[-1]
        assert whole.change.replace and dict(whole.change.set) == {"new": 3}
    finally:
        await node.hub.close()
        await store.close()


async def test_a_store_behind_the_cursor_makes_members_join_again(
    redis_server: RedisServer, key_prefix: str
) -> None:
    """Redis went back in time (a failover lost the room's last writes): members hold revs
    the store will hand out again, to other changes, so they are told to join again."""
    store = RedisStateStore(redis_server.url, prefix=key_prefix, history=10)
    node = wire(store)
    try:
        await node.hub.join("a", ROOM)
        for n in (1, 2):
            await node.commit(Change({"n": n}))
        await node.delivered_up_to(2)
        node.feed.on_feed_restored()  # nothing was lost: no resync
        await eventually(lambda: node.hub.catch_ups == 1)
        assert node.sockets.resyncs == []
        await _lose_everything(redis_server, key_prefix)
        node.feed.lose = {1}
        await node.commit(Change({"n": "again"}))
        node.feed.on_feed_restored()
        await eventually(lambda: node.sockets.resyncs == [ROOM], 10.0, "a resync")
        assert [c.rev for c in node.sockets.delivered] == [1, 2]
    finally:
        await node.hub.close()
        await store.close()


async def test_the_cursor_rev_again_on_another_history_makes_members_join_again(
    redis_server: RedisServer, key_prefix: str
) -> None:
    """Redis lost the room and the next commit got the cursor's rev again: its feed message is
    no older than the cursor, its tag shows another commit, so members join again (they hold
    that rev with other contents, and nobody may write after it)."""
    store = RedisStateStore(redis_server.url, prefix=key_prefix, history=10)
    node = wire(store)
    try:
        await node.hub.join("a", ROOM)
        await node.commit(Change({"old": 1}))
        await node.delivered_up_to(1)
        await _lose_everything(redis_server, key_prefix)
        await node.commit(Change({"new": 1}))
        await eventually(lambda: node.sockets.resyncs == [ROOM], 10.0, "a resync")
        assert [c.rev for c in node.sockets.delivered] == [1]
    finally:
        await node.hub.close()
        await store.close()


async def _lose_everything(redis_server: RedisServer, key_prefix: str) -> None:
    client = aioredis.from_url(redis_server.url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{key_prefix}*")]
        await client.delete(*keys)
    finally:
        await client.aclose()
