"""The StateStore contract, run against every implementation."""

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from kpk_io.change import Change, CommittedChange, encode_json
from kpk_io.limits import DEFAULT_LIMITS, Limits
from kpk_io.store import redis_commit
from kpk_io.store.base import (
    Conflict,
    Duplicate,
    RoomPage,
    RoomSummary,
    StateStore,
    StoreUnavailable,
    TooLarge,
)
from kpk_io.store.memory import MemoryStateStore
from kpk_io.store.redis import RedisStateStore
from kpk_io.store.redis_commit import CommitArgs
from kpk_io.store.redis_keys import room_keys
from kpk_io.store.redis_log import (
    TAG_PATTERN_LUA,
    encoded_fields,
    entry_body,
    entry_head,
    entry_time,
    message_head,
    parse_entry,
    parse_message,
)
from kpk_io.update_request import parse_update
from tests.polling import eventually, eventually_async
from tests.processes import RedisServer

ROOM = "kpk/notes/acme%20co/q1/intro"


class Recorder:
    def __init__(self) -> None:
        self.changes: list[CommittedChange] = []
        self.restored = 0

    def on_change(self, committed: CommittedChange) -> None:
        self.changes.append(committed)

    def on_feed_restored(self) -> None:
        self.restored += 1

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[CommittedChange]:
        await eventually(lambda: len(self.changes) >= count, timeout, f"{count} changes")
        return self.changes


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_server: RedisServer, key_prefix: str
) -> AsyncIterator[StateStore]:
    made: StateStore
    if request.param == "memory":
        made = MemoryStateStore(history=5)
    else:
        made = RedisStateStore(redis_server.url, prefix=key_prefix, history=5)
    yield made
    await made.close()


StoreFactory = Callable[..., StateStore]


@pytest.fixture(params=["memory", "redis"])
async def new_store(
    request: pytest.FixtureRequest, redis_server: RedisServer, key_prefix: str
) -> AsyncIterator[StoreFactory]:
    """Make stores of one kind with the options a test needs (history_bytes, room_ttl)."""
    made: list[StateStore] = []

    def make(**options: Any) -> StateStore:
        store: StateStore
        if request.param == "memory":
            store = MemoryStateStore(**options)
        else:
            store = RedisStateStore(redis_server.url, prefix=key_prefix, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def commit(store: StateStore, change: Change, **kw: object) -> CommittedChange:
    result = await store.commit(ROOM, change, **kw)  # type: ignore[arg-type]
    assert isinstance(result, CommittedChange)
    return result


async def test_a_room_never_written_is_empty_at_rev_0(store: StateStore) -> None:
    snapshot = await store.snapshot(ROOM)
    assert (snapshot.rev, snapshot.state) == (0, {})
    assert await store.changes_since(ROOM, 0) == []


async def test_each_commit_adds_one_to_rev(store: StateStore) -> None:
    revs = [(await commit(store, Change({"n": i}))).rev for i in range(4)]
    assert revs == [1, 2, 3, 4]
    assert (await store.snapshot(ROOM)).rev == 4


async def test_set_unset_and_replace(store: StateStore) -> None:
    await commit(store, Change({"a": 1, "b": 2, "c": None}))
    await commit(store, Change({"d": 4}, unset=("a", "missing")))
    assert (await store.snapshot(ROOM)).state == {"b": 2, "c": None, "d": 4}
    await commit(store, Change({"e": 5}, replace=True))
    assert (await store.snapshot(ROOM)).state == {"e": 5}
    await commit(store, Change(replace=True))
    assert (await store.snapshot(ROOM)).state == {}


async def test_json_values_round_trip_exactly(store: StateStore) -> None:
    values: dict[str, object] = {
        "nested": {"a": [1, 2.5, {"b": [None, True, False]}], "": "empty key"},
        "unicode": "ünï cödé 🎉 \u2028 \"quotes\" \\ / <tag>",
        "null": None,
        "max_safe": 2**53 - 1,
        "min_safe": -(2**53 - 1),
        "float": 0.1,
        "big": 10**30,
        "empty": {},
        "list": [],
        "zero": 0,
        "ünïcode field 🎉": "x",
    }
    await commit(store, Change(values))
    snapshot = await store.snapshot(ROOM)
    assert snapshot.state == values
    assert type(snapshot.state["max_safe"]) is int
    assert (await store.changes_since(ROOM, 0))[0].change.set == values  # type: ignore[index]


async def test_compare_and_set(store: StateStore) -> None:
    await commit(store, Change({"a": 1}))
    assert await store.commit(ROOM, Change({"a": 2}), base_rev=0) == Conflict(1)
    assert (await store.snapshot(ROOM)).state == {"a": 1}
    done = await commit(store, Change({"a": 3}), base_rev=1)
    assert done.rev == 2
    assert (await store.snapshot(ROOM)).state == {"a": 3}


async def test_a_dedupe_key_is_committed_once(store: StateStore) -> None:
    first = await commit(store, Change({"a": 1}), change_id="c-1", dedupe_key="k1")
    await commit(store, Change({"a": 2}), dedupe_key="k2")
    assert await store.commit(ROOM, Change({"a": 3}), dedupe_key="k1") == Duplicate(1, first.tag)
    snapshot = await store.snapshot(ROOM)
    assert (snapshot.rev, snapshot.state) == (2, {"a": 2})
    assert first.rev == 1
    # The same change id under another sender's key is another change.
    assert (await commit(store, Change({"b": 1}), change_id="c-1", dedupe_key="k3")).rev == 3
    for i in range(46):  # remembered past the log (5 here), for 10 x history revs
        await commit(store, Change({"n": i}))
    # Still known after its log entry is gone, only without its tag.
    assert await store.commit(ROOM, Change({"a": 4}), dedupe_key="k1") == Duplicate(1)
    for i in range(4):
        await commit(store, Change({"n": i}))
    assert (await commit(store, Change({"a": 4}), dedupe_key="k1")).rev == 54


async def test_changes_since_in_order_until_history_runs_out(store: StateStore) -> None:
    for i in range(1, 8):
        await commit(store, Change({"n": i}), change_id=f"c{i}")
    kept = await store.changes_since(ROOM, 3)
    assert kept is not None
    assert [(c.rev, c.change.set["n"], c.id) for c in kept] == [
        (4, 4, "c4"), (5, 5, "c5"), (6, 6, "c6"), (7, 7, "c7")
    ]
    assert await store.changes_since(ROOM, 7) == []
    assert await store.changes_since(ROOM, 1) is None  # history is 5: rev 2 is gone
    assert await store.changes_since(ROOM, 99) is None  # a rev from the future


async def test_the_log_is_bounded_by_bytes_keeping_the_newest_entry(
    new_store: StoreFactory,
) -> None:
    store = new_store(history=100, history_bytes=4096)
    # Each entry is a little over 1000 bytes encoded: three fit in 4096 bytes, four do not.
    for i in range(10):
        await commit(store, Change({"v": f"{i}" * 1000}), change_id=f"c{i}")
    kept = await store.changes_since(ROOM, 7)
    assert kept is not None and [c.id for c in kept] == ["c7", "c8", "c9"]
    assert await store.changes_since(ROOM, 6) is None  # older gaps get the whole state
    assert await store.changes_since(ROOM, 1) is None
    # One entry larger than the bound is still kept: the newest always is.
    await commit(store, Change({"big": "x" * 5000}), change_id="big")
    newest = await store.changes_since(ROOM, 10)
    assert newest is not None and [c.id for c in newest] == ["big"]
    assert await store.changes_since(ROOM, 9) is None
    await commit(store, Change({"small": 1}), change_id="small")
    after = await store.changes_since(ROOM, 11)
    assert after is not None and [c.id for c in after] == ["small"]
    assert await store.changes_since(ROOM, 10) is None  # the big one went to make room


async def test_a_room_expires_after_its_ttl_without_commit_or_join(
    new_store: StoreFactory,
) -> None:
    store = new_store(history=5, room_ttl=1.5)
    await commit(store, Change({"a": 1}), dedupe_key="k1")
    await commit(store, Change({"b": 2}))
    renewed_until = time.monotonic() + 3.0  # twice the TTL, renewed by joins
    while time.monotonic() < renewed_until:
        assert (await store.snapshot(ROOM, renew=True)).rev == 2
        await asyncio.sleep(0.2)
    await commit(store, Change({"c": 3}))  # a commit renews it too
    assert (await store.snapshot(ROOM)).rev == 3

    async def rev() -> int:
        return (await store.snapshot(ROOM)).rev  # a plain read does not renew

    await eventually_async(rev, 0, timeout=15)
    snapshot = await store.snapshot(ROOM)
    assert (snapshot.rev, snapshot.state, snapshot.tag) == (0, {}, None)
    assert await store.changes_since(ROOM, 0) == []
    # Forgotten entirely, dedupe keys included: the room starts again at rev 1.
    assert (await commit(store, Change({"a": 1}), dedupe_key="k1")).rev == 1


async def test_a_watched_room_is_kept_while_it_is_watched(new_store: StoreFactory) -> None:
    store = new_store(history=5, room_ttl=1.0)
    store.set_listener(Recorder())
    await commit(store, Change({"a": 1}))
    await store.watch(ROOM)  # members on a node: they hold rev 1 and must not see rev 0
    watched_until = time.monotonic() + 3.0
    while time.monotonic() < watched_until:
        assert (await store.snapshot(ROOM)).rev == 1
        await asyncio.sleep(0.2)
    await store.unwatch(ROOM)

    async def rev() -> int:
        return (await store.snapshot(ROOM)).rev

    await eventually_async(rev, 0, timeout=15)


async def test_rooms_are_kept_for_good_without_a_ttl(new_store: StoreFactory) -> None:
    store = new_store(history=5)
    await commit(store, Change({"a": 1}))
    await asyncio.sleep(0.2)
    assert (await store.snapshot(ROOM, renew=True)).rev == 1


async def test_concurrent_writers_to_different_fields_lose_nothing(store: StateStore) -> None:
    async def writer(name: str) -> None:
        for i in range(20):
            await commit(store, Change({f"{name}{i}": i}))

    await asyncio.gather(*(writer(w) for w in "abc"))
    snapshot = await store.snapshot(ROOM)
    assert snapshot.rev == 60
    assert snapshot.state == {f"{w}{i}": i for w in "abc" for i in range(20)}


async def test_watchers_get_each_commit_in_order_with_its_origin(store: StateStore) -> None:
    recorder = Recorder()
    store.set_listener(recorder)
    await store.commit("other room", Change({"x": 1}))
    await store.watch(ROOM)
    await asyncio.gather(*(commit(store, Change({"n": i}), origin=f"sid{i}") for i in range(10)))
    seen = await recorder.wait_for(10)
    assert [c.rev for c in seen] == list(range(1, 11))
    assert {c.origin for c in seen} == {f"sid{i}" for i in range(10)}
    assert all(c.room == ROOM for c in seen)
    await store.unwatch(ROOM)
    await commit(store, Change({"after": True}))
    await store.watch("other room")
    await store.commit("other room", Change({"x": 2}))
    await recorder.wait_for(11)
    assert [c.room for c in recorder.changes] == [ROOM] * 10 + ["other room"]


async def test_look_alike_rooms_are_distinct(store: StateStore) -> None:
    rooms = ["a_b/c", "a/b_c", "x%2Fy", "x/y", "{braces}:colons", "{braces}", "A", "a", "a "]
    for index, room in enumerate(rooms):
        await store.commit(room, Change({"i": index}))
    for index, room in enumerate(rooms):
        snapshot = await store.snapshot(room)
        assert (snapshot.rev, snapshot.state) == (1, {"i": index})


async def test_redis_keys_of_a_room_share_one_cluster_slot(key_prefix: str) -> None:
    for room in ["plain", "{braces}:colons", "}{", "ünï cödé 🎉", "a/b%2Fc"]:
        keys = room_keys(key_prefix, room)
        slots = {key_slot(k.encode()) for k in [*keys.stored, keys.channel]}
        assert len(slots) == 1
    assert room_keys(key_prefix, "a}b") != room_keys(key_prefix, "a%7Db")


async def test_redis_store_skips_corrupt_fields(redis_server: RedisServer, key_prefix: str) -> None:
    store = RedisStateStore(redis_server.url, prefix=key_prefix)
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await store.commit(ROOM, Change({"good": 1}))
        keys = room_keys(key_prefix, ROOM)
        await raw.hset(keys.state, "bad", "{not json")
        await raw.hset(keys.state, "bytes", b'"\xff\xfe"')
        await raw.hset(keys.state, b"\xff", "1")
        await raw.rpush(keys.log, "garbage")
        await raw.set(keys.rev, "2")
        snapshot = await store.snapshot(ROOM)
        assert snapshot.state == {"good": 1}
        assert await store.changes_since(ROOM, 0) is None  # the log is unusable: full state
        await raw.rpush(keys.log, b"\xff")
        await raw.set(keys.rev, "3")
        assert await store.changes_since(ROOM, 2) is None
        assert (await commit(store, Change({"next": 2}))).rev == 4
    finally:
        await raw.aclose()
        await store.close()


async def test_redis_commit_is_unavailable_when_redis_is_down(own_redis: RedisServer) -> None:
    store = RedisStateStore(own_redis.url)
    try:
        await store.commit(ROOM, Change({"a": 1}))
        own_redis.stop()
        with pytest.raises(StoreUnavailable):
            await store.commit(ROOM, Change({"a": 2}))
        with pytest.raises(StoreUnavailable):
            await store.ping()
        own_redis.start()
        assert (await commit(store, Change({"a": 3}))).rev == 2
        assert (await store.snapshot(ROOM)).state == {"a": 3}
    finally:
        await store.close()


async def test_redis_feed_survives_a_message_it_cannot_read(
    redis_server: RedisServer, key_prefix: str
) -> None:
    store = RedisStateStore(redis_server.url, prefix=key_prefix)
    raw = aioredis.Redis.from_url(redis_server.url)
    recorder = Recorder()
    store.set_listener(recorder)
    try:
        await store.watch(ROOM)
        channel = room_keys(key_prefix, ROOM).channel
        for garbage in (b"\xff\xfe", b"{not json", b'{"room": 1}', b'{"room": "r", "entry": 2}'):
            await raw.publish(channel, garbage)
        await commit(store, Change({"after": True}))
        assert [c.change.set for c in await recorder.wait_for(1)] == [{"after": True}]
    finally:
        await raw.aclose()
        await store.close()


async def test_a_room_left_while_redis_was_away_is_not_subscribed_again(
    own_redis: RedisServer,
) -> None:
    store = RedisStateStore(own_redis.url)
    store.set_listener(Recorder())
    raw = aioredis.Redis.from_url(own_redis.url)
    try:
        await store.watch("keep")
        await store.watch("leave")
        own_redis.stop()
        await store.unwatch("leave")
        own_redis.start()

        async def subscribed() -> dict[str, int]:
            channels = [room_keys("kpk:", room).channel for room in ("keep", "leave")]
            counts = await raw.pubsub_numsub(*channels)
            return {str(name, "utf-8") if isinstance(name, bytes) else name: count
                    for name, count in counts}

        await eventually_async(subscribed, {room_keys("kpk:", "keep").channel: 1,
                                            room_keys("kpk:", "leave").channel: 0})
    finally:
        await raw.aclose()
        await store.close()


async def test_redis_commit_and_join_renew_the_ttl_of_every_key(
    redis_server: RedisServer, key_prefix: str
) -> None:
    day_ms = 86_400_000
    store = RedisStateStore(redis_server.url, prefix=key_prefix, room_ttl=day_ms / 1000)
    raw = aioredis.Redis.from_url(redis_server.url)
    keys = room_keys(key_prefix, ROOM)

    async def ttls() -> list[int]:
        return [await raw.pttl(key) for key in keys.stored]

    try:
        await commit(store, Change({"a": 1}), dedupe_key="k")
        assert all(day_ms - 60_000 < ttl <= day_ms for ttl in await ttls())
        for key in keys.stored:
            await raw.pexpire(key, 5_000)
        await store.snapshot(ROOM)  # a plain read (sync, the HTTP API) renews nothing
        assert all(ttl <= 5_000 for ttl in await ttls())
        await store.snapshot(ROOM, renew=True)  # a join
        assert all(day_ms - 60_000 < ttl <= day_ms for ttl in await ttls())
        # Retention turned off later: the next commit keeps the room for good.
        kept = RedisStateStore(redis_server.url, prefix=key_prefix)
        try:
            await commit(kept, Change({"b": 2}))
        finally:
            await kept.close()
        assert await ttls() == [-1] * len(keys.stored)
    finally:
        await raw.aclose()
        await store.close()


async def test_redis_keeps_the_log_size_exact_and_counts_an_older_log_once(
    redis_server: RedisServer, key_prefix: str
) -> None:
    store = RedisStateStore(redis_server.url, prefix=key_prefix, history_bytes=4096)
    raw = aioredis.Redis.from_url(redis_server.url)
    keys = room_keys(key_prefix, ROOM)

    async def sizes() -> tuple[int, int]:
        entries = await raw.lrange(keys.log, 0, -1)
        return int(await raw.get(keys.size) or -1), sum(len(entry) for entry in entries)

    try:
        for i in range(30):
            await commit(store, Change({"v": "é" * (i * 37 % 900)}))
            kept, actual = await sizes()
            assert kept == actual <= 4096
        await raw.delete(keys.size)  # a log written before the size was kept
        await commit(store, Change({"v": "x" * 2000}))
        kept, actual = await sizes()
        assert kept == actual <= 4096
    finally:
        await raw.aclose()
        await store.close()


LISTED = ["kpk/notes/a/b/c", "with space", "star*", "brace{}:rev", "ünï", "%41", "q?[x]"]


async def list_all(store: StateStore, limit: int) -> list[RoomSummary]:
    listed: list[RoomSummary] = []
    cursor = None
    for _ in range(100_000):
        page = await store.list_rooms(cursor, limit)
        assert len(page.rooms) <= limit
        listed += page.rooms
        cursor = page.cursor
        if cursor is None:
            return listed
    raise AssertionError("the listing never ended")


async def test_list_rooms_pages_through_every_room(store: StateStore) -> None:
    assert await store.list_rooms() == RoomPage([], None)
    before = time.time()
    for index, room in enumerate(LISTED):
        await store.commit(room, Change({"n": index, "name": room}))
    await store.commit(LISTED[0], Change({"n": "again"}))
    after = time.time()
    for limit in (1, 2, 3, 100):
        listed = await list_all(store, limit)
        assert sorted(summary.room for summary in listed) == sorted(LISTED)
    first = next(summary for summary in listed if summary.room == LISTED[0])
    assert (first.rev, first.fields) == (2, 2)
    assert first.bytes == len("n") + len('"again"') + len("name") + len(f'"{LISTED[0]}"')
    assert all(summary.changed is not None and before - 1 <= summary.changed <= after + 1
               for summary in listed)


async def test_list_rooms_skips_a_room_never_committed(store: StateStore) -> None:
    await store.snapshot("only read")
    await store.commit(ROOM, Change({"a": 1}))
    assert [summary.room for summary in await list_all(store, 10)] == [ROOM]


async def test_redis_lists_only_its_own_prefix_and_refuses_a_foreign_cursor(
    redis_server: RedisServer, key_prefix: str
) -> None:
    globbing = RedisStateStore(redis_server.url, prefix=key_prefix + "*")
    plain = RedisStateStore(redis_server.url, prefix=key_prefix + "x")
    try:
        await globbing.commit("in globbing", Change({"a": 1}))
        await plain.commit("in plain", Change({"a": 1}))
        assert [s.room for s in await list_all(globbing, 5)] == ["in globbing"]
        assert [s.room for s in await list_all(plain, 5)] == ["in plain"]
        with pytest.raises(ValueError):
            await plain.list_rooms("not-a-cursor")
        # A room written before its size was kept is measured by the listing.
        raw = aioredis.Redis.from_url(redis_server.url)
        await raw.delete(room_keys(key_prefix + "x", "in plain").state_size)
        await raw.aclose()
        assert (await plain.list_rooms()).rooms[0].bytes == len("a") + len("1")
    finally:
        await globbing.close()
        await plain.close()


async def test_a_change_past_the_rooms_bounds_commits_nothing(new_store: StoreFactory) -> None:
    store = new_store(limits=Limits(fields=3, state_bytes=40))
    await commit(store, Change({"a": 1, "b": "x" * 10}))  # 1+1 + 1+12 = 15 bytes
    before = await store.snapshot(ROOM)

    too_many = await store.commit(ROOM, Change({"c": 1, "d": 2}))
    too_big = await store.commit(ROOM, Change({"c": "y" * 30}))  # 15 + 1+32 > 40

    assert isinstance(too_many, TooLarge) and "4 fields" in too_many.message
    assert isinstance(too_big, TooLarge) and "48 bytes" in too_big.message
    assert await store.snapshot(ROOM) == before
    assert await store.changes_since(ROOM, before.rev) == []


async def test_the_bounds_count_what_the_room_holds_after_the_change(
    new_store: StoreFactory,
) -> None:
    store = new_store(limits=Limits(fields=3, state_bytes=40))
    await commit(store, Change({"a": 1, "b": 2, "c": 3}))
    await commit(store, Change({"a": "x" * 20}))  # rewrites a field: still 3 fields
    await commit(store, Change({"d": 4}, unset=("a", "a")))  # one out, one in
    assert isinstance(await store.commit(ROOM, Change({"e": 5})), TooLarge)
    await commit(store, Change({"f": "z" * 35}, replace=True))  # 1+37 bytes, all else gone
    assert isinstance(await store.commit(ROOM, Change({"g": "v" * 3})), TooLarge)  # 38 + 6
    await commit(store, Change({}, unset=("f",)))
    await commit(store, Change({"g": "w" * 36}))  # 1+38 = 39: the size went back to 0
    assert (await store.snapshot(ROOM)).state == {"g": "w" * 36}


async def test_redis_measures_a_room_written_before_sizes_were_kept(
    redis_server: RedisServer, key_prefix: str
) -> None:
    store = RedisStateStore(redis_server.url, prefix=key_prefix,
                            limits=Limits(state_bytes=30))
    try:
        await commit(store, Change({"a": "x" * 20}))  # 1 + 22 = 23 bytes
        raw = aioredis.Redis.from_url(redis_server.url)
        await raw.delete(room_keys(key_prefix, ROOM).state_size)
        await raw.aclose()
        assert isinstance(await store.commit(ROOM, Change({"b": "y" * 5})), TooLarge)
        await commit(store, Change({"b": 1}))  # 23 + 2 = 25
    finally:
        await store.close()


async def test_a_room_past_lowered_limits_can_still_shrink(
    redis_server: RedisServer, key_prefix: str
) -> None:
    """The limits were lowered under a room that holds more: it may not grow, but every change
    that does not grow it past a bound still commits (so the room is not locked)."""
    generous = RedisStateStore(redis_server.url, prefix=key_prefix)
    strict = RedisStateStore(redis_server.url, prefix=key_prefix,
                             limits=Limits(fields=2, state_bytes=40))
    try:
        await commit(generous, Change({"a": "x" * 30, "b": 1, "c": 2}))  # 3 fields, 39 bytes
        grows = await strict.commit(ROOM, Change({"d": 1}))
        assert isinstance(grows, TooLarge) and "4 fields" in grows.message
        await commit(strict, Change({"a": "y" * 20}))  # same fields, fewer bytes
        await commit(strict, Change({}, unset=("b",)))  # 2 fields now: within the bound
        assert isinstance(await strict.commit(ROOM, Change({"e": 1})), TooLarge)
        await commit(strict, Change({"e": 1}, unset=("c",)))
        assert (await strict.snapshot(ROOM)).state == {"a": "y" * 20, "e": 1}
    finally:
        await generous.close()
        await strict.close()


async def test_commit_returns_what_the_log_holds_with_its_tag_chain(store: StateStore) -> None:
    """Both stores' commit returns the change as committed, tag and prev included, and the
    log gives back exactly that."""
    by = {"user": "ann", "name": "Ann"}
    first = await commit(store, Change({"a": [1, {"b": None}]}), change_id="c-1",
                         origin="sid-1", by=by)
    second = await commit(store, Change(unset=("a",)), change_id="c-2")
    third = await commit(store, Change({"z": "ü"}, replace=True))
    assert isinstance(first.tag, str) and first.tag
    assert (first.prev, second.prev, third.prev) == ("", first.tag, second.tag)
    assert len({first.tag, second.tag, third.tag}) == 3
    assert (first.id, first.origin, first.by, second.by) == ("c-1", "sid-1", by, None)
    assert await store.changes_since(ROOM, 0) == [first, second, third]
    snapshot = await store.snapshot(ROOM)
    assert (snapshot.rev, snapshot.state, snapshot.tag) == (3, {"z": "ü"}, third.tag)


async def test_a_wrong_tag_gives_no_changes_so_the_whole_state_is_sent(
    store: StateStore,
) -> None:
    one, two, three = [await commit(store, Change({"n": n})) for n in (1, 2, 3)]
    assert await store.changes_since(ROOM, 1, one.tag) == [two, three]
    assert await store.changes_since(ROOM, 1, "0" * 16) is None
    assert await store.changes_since(ROOM, 3, three.tag) == []
    assert await store.changes_since(ROOM, 3, two.tag) is None
    assert await store.changes_since(ROOM, 1) == [two, three]  # no tag: no check
    assert await store.changes_since(ROOM, 4, three.tag) is None  # past the room's rev


async def test_a_duplicate_names_the_tag_of_the_first_commit(store: StateStore) -> None:
    first = await commit(store, Change({"a": 1}), dedupe_key="k")
    again = await store.commit(ROOM, Change({"a": 1}), dedupe_key="k")
    assert again == Duplicate(first.rev, first.tag)


async def test_the_commit_script_writes_the_entry_redis_log_defines(
    redis_server: RedisServer, key_prefix: str
) -> None:
    """commit.lua writes the head, Python the body: the entry in Redis is exactly
    entry_head() + entry_body(), its feed message is message_head() + entry + "}", and
    both read back as the committed change."""
    store = RedisStateStore(redis_server.url, prefix=key_prefix)
    raw = aioredis.from_url(redis_server.url)
    channel = room_keys(key_prefix, ROOM).channel
    try:
        async with raw.pubsub() as pubsub:
            await pubsub.subscribe(channel)
            await pubsub.get_message(timeout=5)  # the subscription's confirmation
            changes = [Change({"a": 1, "ü": "x\u2028"}), Change(unset=("a",)),
                       Change({"b": [True]}, replace=True)]
            made = []
            for n, change in enumerate(changes):
                by = {"user": "u"} if n == 1 else None
                made.append(await commit(store, change, change_id=f"c-{n}", origin="o", by=by))
            entries = await raw.lrange(room_keys(key_prefix, ROOM).log, 0, -1)
            for committed, entry, change in zip(made, entries, changes, strict=True):
                assert committed.tag is not None and committed.prev is not None
                time_ms = json.loads(entry)["time"]
                encoded = encoded_fields(change)
                expected = entry_head(committed.rev, committed.tag, committed.prev) + entry_body(
                    change, encoded, change_id=committed.id, origin="o", by=committed.by,
                    time_ms=time_ms,
                )
                assert isinstance(entry, bytes)
                assert entry.decode() == expected
                assert parse_entry(ROOM, entry) == committed
                assert entry_time(entry) == time_ms / 1000
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                assert message is not None
                assert message["data"].decode() == message_head(ROOM) + expected + "}"
                assert parse_message(message["data"]) == committed
    finally:
        await raw.aclose()
        await store.close()


def test_the_commit_script_names_its_arguments_as_commit_args_orders_them() -> None:
    script = (Path(redis_commit.__file__).parent / "commit.lua").read_text(encoding="utf-8")
    found = re.search(r"local ([\w,\s]+?) = unpack\(ARGV, 1, (\d+)\)", script)
    assert found is not None
    names = [name.strip() for name in found.group(1).split(",")]
    assert names == [field.name for field in dataclasses.fields(CommitArgs)]
    assert int(found.group(2)) == len(names)
    assert f"local first_set = {len(names) + 1}" in script
    assert TAG_PATTERN_LUA in script


def test_a_parsed_updates_values_are_encoded_once_for_the_store() -> None:
    """parse_update measures each set value as JSON text and hands the text on with the
    change (Change.encoded): the store writes that text. A change made from it with other
    values (dataclasses.replace, as a text merge does) does not carry it; nor does an
    update with text edits, whose values the merge may change."""
    values = {"a": [1, {"b": "é"}], "n": 1.5, "t": "x", "z": None}
    request = parse_update({"room": "r", "set": values}, DEFAULT_LIMITS)
    expected = [(name, encode_json(value)) for name, value in values.items()]
    assert request.change.encoded is not None
    assert encoded_fields(request.change) == expected
    other = dataclasses.replace(request.change, set={"a": 2})
    assert other.encoded is None and encoded_fields(other) == [("a", "2")]
    assert other == dataclasses.replace(other)  # the cache is no part of a change's value
    edit = parse_update({"room": "r", "set": {"a": 1}, "text": {"b": "AAA="}}, DEFAULT_LIMITS)
    assert edit.change.encoded is None


async def test_commits_keep_their_connection_and_replace_it_once_closed(
    own_redis: RedisServer, key_prefix: str
) -> None:
    """The commit batch keeps the last batch's connection for the next batch (no pool
    checkout per batch); one that Redis closed meanwhile is checked and made again before the
    next batch uses it, as the pool would, and the next commit succeeds."""
    store = RedisStateStore(own_redis.url, prefix=key_prefix, history=5)
    admin = aioredis.from_url(own_redis.url)
    try:
        await commit(store, Change({"a": 1}))
        kept = store._commit._parked
        assert kept is not None and kept.is_connected
        await commit(store, Change({"a": 2}))
        assert store._commit._parked is kept
        own_id = await admin.client_id()
        for client in await admin.client_list():
            if int(client["id"]) != own_id:
                await admin.client_kill_filter(_id=client["id"])

        async def closed() -> bool:
            return bool(await kept.can_read())  # the EOF is read: it is not clean

        await eventually_async(closed, True, timeout=10)
        # The next batch's connection is checked first and made again: not the closed one.
        pool = store._writer.connection_pool
        taken = await store._commit._connection(pool)
        assert taken.is_connected and not await taken.can_read()
        store._commit._parked = taken  # back where the batch keeps it
        assert (await commit(store, Change({"a": 3}))).rev == 3
    finally:
        await admin.aclose()
        await store.close()
