"""Publishing from outside a Socket.IO connection: read, change and clear rooms.

For code that does not run the server (a Django view, a Celery task, a cron script), straight
against Redis:

    async with AsyncPublisher("redis://redis:6379/0") as publisher:
        rev = await publisher.update("kpk/notes/acme/q1/intro", {"title": "Q1"})

    with Publisher("redis://redis:6379/0") as publisher:  # blocking, for sync code
        publisher.delete("kpk/notes/acme/q1/intro")

A change is checked by the same parser as the `update` event and committed by the same Redis
script as the server's, so it is atomic, gets the room's next rev, and reaches every member on
every node like any other update (it has no origin, so no member is skipped). The HTTP API
(api.py) commits through the same functions (commits.py) on the server's own store.
"""

import asyncio
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import socketio

from kpk_io.broadcast import socketio_channel
from kpk_io.change import JSON, Snapshot
from kpk_io.commits import (
    PublishError,
    clear_request,
    commit_change,
    parse_change,
    parse_signal_request,
    read_room,
    take,
)
from kpk_io.limits import DEFAULT_LIMITS, Limits
from kpk_io.protocol import Event
from kpk_io.rate import TokenBucket
from kpk_io.rooms import sio_room
from kpk_io.store.base import DEFAULT_HISTORY, DEFAULT_HISTORY_BYTES, SECONDS_PER_DAY
from kpk_io.store.redis import DEFAULT_PREFIX, RedisStateStore

__all__ = ["AsyncPublisher", "PublishError", "Publisher"]

T = TypeVar("T")


class AsyncPublisher:
    """Reads and changes rooms in the Redis the servers use.

    `key_prefix`, `history`, `history_bytes` and `room_ttl` (in days) must match the servers'
    settings: every commit trims the room's log and renews its retention by them. `limits`
    should match them too: a publisher refuses what a server would (`too_large`,
    `invalid_update`), and answers `rate_limited` past `limits.updates` changes (and
    `limits.requests` reads) per second; a Rate of 0 turns that off. Use one publisher in
    one event loop (redis-py's connections belong to the loop that opened them).
    """

    def __init__(
        self,
        redis_url: str,
        *,
        key_prefix: str = DEFAULT_PREFIX,
        history: int = DEFAULT_HISTORY,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
        room_ttl: int = 0,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._limits = limits
        self._updates = TokenBucket(limits.updates)
        self._reads = TokenBucket(limits.requests)
        self._signals = TokenBucket(limits.signals)
        self._store = RedisStateStore(
            redis_url, prefix=key_prefix, history=history, history_bytes=history_bytes,
            room_ttl=room_ttl * SECONDS_PER_DAY, limits=limits,
        )
        # python-socketio's own emitter, on the servers' channel.
        self._emitter = socketio.AsyncRedisManager(
            redis_url, channel=socketio_channel(key_prefix), write_only=True,
            redis_options={"socket_timeout": 2.0, "socket_connect_timeout": 2.0},
        )

    async def get(self, room: str) -> Snapshot:
        """The room's whole state and its rev."""
        take(self._reads)
        return await read_room(self._store, room)

    async def update(
        self,
        room: str,
        set: Mapping[str, JSON] | None = None,  # named as the protocol's field
        *,
        unset: Sequence[str] = (),
        replace: bool = False,
        rev: int | None = None,
        change_id: str | None = None,
    ) -> int:
        """Commit a change as the `update` event does and return its rev; with `rev`, only if
        the room is still at that rev (PublishError `conflict` otherwise)."""
        body: dict[str, JSON] = {"room": room}
        if set is not None:
            body["set"] = dict(set) if isinstance(set, Mapping) else set
        if unset:
            body["unset"] = unset if isinstance(unset, str) else list(unset)
        if replace:
            body["replace"] = replace
        if rev is not None:
            body["rev"] = rev
        if change_id is not None:
            body["id"] = change_id
        take(self._updates)
        return await commit_change(self._store, parse_change(body, self._limits))

    async def delete(self, room: str) -> int:
        """Empty the room (a replace with no fields) and return the new rev."""
        take(self._updates)
        return await commit_change(self._store, clear_request(room))

    async def signal(self, room: str, data: JSON) -> None:
        """Send `data` to every member of `room` on every node as `signal {room, from: null,
        data}`: not stored, best effort (lost while Redis cannot be reached)."""
        request = parse_signal_request(room, data, self._limits)
        take(self._signals)
        payload = {"room": request.room, "from": None, "data": request.data}
        await self._emitter.emit(Event.SIGNAL.value, payload, room=sio_room(request.room))

    async def aclose(self) -> None:
        await self._store.close()
        if self._emitter.redis is not None:
            await self._emitter.redis.aclose()

    async def __aenter__(self) -> "AsyncPublisher":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Publisher:
    """The blocking form of AsyncPublisher, for Django views, Celery tasks and scripts.

    It runs an AsyncPublisher on a private event loop in a background thread, so it can be
    shared by every thread of a process. Create it after the process forks (gunicorn and
    Celery prefork workers): a thread does not survive fork().
    """

    def __init__(
        self,
        redis_url: str,
        *,
        key_prefix: str = DEFAULT_PREFIX,
        history: int = DEFAULT_HISTORY,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
        room_ttl: int = 0,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kpk-io publisher", daemon=True
        )
        self._thread.start()
        self._closed = False
        self._publisher = self._run(_open(lambda: AsyncPublisher(
            redis_url, key_prefix=key_prefix, history=history, history_bytes=history_bytes,
            room_ttl=room_ttl, limits=limits,
        )))

    def get(self, room: str) -> Snapshot:
        return self._run(self._publisher.get(room))

    def update(
        self,
        room: str,
        set: Mapping[str, JSON] | None = None,  # named as the protocol's field
        *,
        unset: Sequence[str] = (),
        replace: bool = False,
        rev: int | None = None,
        change_id: str | None = None,
    ) -> int:
        change = self._publisher.update(
            room, set, unset=unset, replace=replace, rev=rev, change_id=change_id
        )
        return self._run(change)

    def delete(self, room: str) -> int:
        return self._run(self._publisher.delete(room))

    def signal(self, room: str, data: JSON) -> None:
        self._run(self._publisher.signal(room, data))

    def close(self) -> None:
        if self._closed:
            return
        self._run(self._publisher.aclose())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            call.close()
            raise RuntimeError("the publisher is closed")
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()


async def _open(make: Callable[[], AsyncPublisher]) -> AsyncPublisher:
    # Made on the publisher's own loop, where its connections will be used.
    return make()
