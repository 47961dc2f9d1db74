"""Redis state store: a hash per room, its rev and a short log beside it, a script per commit."""

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from importlib import resources
from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from kpk_io import json_codec
from kpk_io.change import Change, CommittedChange, Snapshot
from kpk_io.limits import DEFAULT_LIMITS, Limits
from kpk_io.store.base import (
    DEFAULT_HISTORY,
    DEFAULT_HISTORY_BYTES,
    ChangeListener,
    Conflict,
    Duplicate,
    RoomPage,
    RoomSummary,
    Stale,
    StoreUnavailable,
    TooLarge,
    continuing,
    dedupe_window,
    new_tag,
)
from kpk_io.store.redis_batch import ScriptBatch
from kpk_io.store.redis_client import TIMEOUT, blocking_client, read_twice
from kpk_io.store.redis_commit import CommitArgs, commit_result
from kpk_io.store.redis_feed import RedisFeed
from kpk_io.store.redis_keys import RoomKeys, rev_key_pattern, room_keys, room_of_rev_key
from kpk_io.store.redis_listing import make_cursor, parse_cursor
from kpk_io.store.redis_log import encoded_fields, entry_body, entry_time, message_head, parse_entry
from kpk_io.text import split_texts

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "kpk:"
_COMMIT_ATTEMPTS = 3
# Watched rooms are renewed every quarter of the retention, and at least this often (seconds).
_RENEW_EVERY_MAX = 3600.0
_SCANS_PER_PAGE = 20


def _script(name: str) -> str:
    return resources.files("kpk_io.store").joinpath(name).read_text(encoding="utf-8")


class RedisStateStore:
    """StateStore on one Redis server.

    Replies are read as bytes and decoded here, value by value, so that bytes which are not
    UTF-8 (written by hand, or corrupted) are logged and skipped like invalid JSON.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        history: int = DEFAULT_HISTORY,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
        room_ttl: float = 0,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        """`room_ttl`: seconds without a commit or a join after which a room's keys expire;
        0 keeps rooms for good. `limits` bounds each room's fields and state bytes."""
        self._limits = limits
        self._prefix = prefix
        self._history = history
        self._history_bytes = history_bytes
        self._ttl_ms = max(1, round(room_ttl * 1000)) if room_ttl > 0 else 0
        common: dict[str, Any] = {"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT}
        self._redis = blocking_client(url, **common)
        # A commit is retried by _commit_with_retries() itself, with a dedupe key that makes
        # the retry idempotent; redis-py's own retry could apply a change twice. The feed
        # must not reconnect silently inside redis-py either: every interruption has to
        # reach RedisFeed, which then has the hub catch up.
        self._writer = blocking_client(url, retry=Retry(NoBackoff(), 0), **common)
        commit = self._writer.register_script(_script("commit.lua"))
        self._commit = ScriptBatch(self._writer, commit)  # a turn's commits: one pipeline
        self._changes = self._redis.register_script(_script("changes_since.lua"))
        self._summary = self._redis.register_script(_script("room_summary.lua"))
        self._feed = RedisFeed(self._writer)
        self._watched: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None

    async def snapshot(self, room: str, *, renew: bool = False) -> Snapshot:
        keys = room_keys(self._prefix, room)

        async def read() -> list[Any]:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(keys.rev)
                pipe.hgetall(keys.state)
                pipe.lindex(keys.log, -1)
                for key in keys.stored if renew and self._ttl_ms else ():
                    pipe.pexpire(key, self._ttl_ms)
                return await pipe.execute()

        raw_rev, fields, raw_last, *_ = await read_twice(read)
        state = {}
        for raw_name, raw_value in fields.items():
            try:
                state[raw_name.decode()] = json_codec.loads(raw_value.decode())
            except ValueError:  # UnicodeDecodeError and JSONDecodeError
                log.warning("room %r: field %r is not UTF-8 JSON; left out", room, raw_name)
        rev = _parse_rev(room, raw_rev)
        last = parse_entry(room, raw_last) if raw_last is not None else None
        texts = split_texts(state)
        tag = last.tag if last is not None and last.rev == rev else None
        return Snapshot(rev, state, tag, texts)

    async def commit(
        self,
        room: str,
        change: Change,
        *,
        base_rev: int | None = None,
        change_id: str | None = None,
        dedupe_key: str | None = None,
        origin: str | None = None,
        by: Mapping[str, str] | None = None,
        stored: Mapping[str, str] | None = None,
        guards: Mapping[str, str] | None = None,
    ) -> CommittedChange | Conflict | Duplicate | TooLarge | Stale:
        keys = room_keys(self._prefix, room)
        encoded = encoded_fields(change)
        body = entry_body(change, encoded, change_id=change_id, origin=origin, by=by,
                          time_ms=round(time.time() * 1000))
        kept = [(name, (stored or {}).get(name, text)) for name, text in encoded]
        args = CommitArgs(
            base_rev="" if base_rev is None else base_rev,
            replace_flag=int(change.replace),
            history=self._history,
            channel=keys.channel,
            message_head=message_head(room),
            entry_body=body,
            # Without one, a generated key still makes our own retries idempotent.
            dedupe_key=dedupe_key or f"kpk-io:{secrets.token_hex(16)}",
            set_count=len(encoded),
            dedupe_window=dedupe_window(self._history),
            tag=(tag := new_tag()),
            history_bytes=self._history_bytes,
            retention_ms=self._ttl_ms,
            max_fields=self._limits.fields,
            max_state_bytes=self._limits.state_bytes,
            guard_count=len(guards or {}),
        )
        argv = args.argv(kept, guards or {}, change.unset)
        reply = await self._commit_with_retries(keys, argv)
        return commit_result(reply, room, change, self._limits, change_id=change_id,
                             origin=origin, tag=tag, by=by)

    async def _commit_with_retries(self, keys: RoomKeys, args: list[str | int]) -> list[Any]:
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            try:
                status, rev, *rest = await self._commit(keys=keys.stored, args=args)
                return [int(status), int(rev), *rest]
            except RedisError as exc:
                transient = isinstance(exc, RedisConnectionError | RedisTimeoutError)
                if attempt == _COMMIT_ATTEMPTS or not transient:
                    raise StoreUnavailable(str(exc)) from exc
                # The reply may have been lost after the commit: the retry carries the same
                # dedupe key, so the script reports that commit instead of repeating it.
                await asyncio.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    async def changes_since(
        self, room: str, since: int, tag: str | None = None
    ) -> list[CommittedChange] | None:
        keys = room_keys(self._prefix, room)

        async def read() -> list[Any]:
            return await self._changes(keys=[keys.rev, keys.log], args=[since])  # type: ignore[no-any-return]

        reply = await read_twice(read)
        rev = _parse_rev(room, reply[0])
        if len(reply) < 2:  # `since` is past the room's rev
            return None
        parsed = [parse_entry(room, raw) for raw in reply[1]]
        entries = [entry for entry in parsed if entry is not None]
        if len(entries) < len(parsed):
            return None
        return continuing(entries, since, tag, rev)

    async def list_rooms(self, cursor: str | None = None, limit: int = 100) -> RoomPage:
        """SCAN over the rooms' rev keys. A SCAN call can return more keys than asked for:
        the rooms past `limit` travel in the cursor, so a page never holds more."""
        scan, found = parse_cursor(cursor)
        # Bounded, so that a keyspace of mostly other keys answers soon (with a short page).
        for _ in range(_SCANS_PER_PAGE):
            if len(found) >= limit or scan is None:
                break
            try:
                reply, keys = await self._redis.scan(
                    scan, match=rev_key_pattern(self._prefix), count=limit
                )
            except RedisError as exc:
                raise StoreUnavailable(str(exc)) from exc
            scan = int(reply) or None
            found += [r for r in (room_of_rev_key(self._prefix, k) for k in keys) if r]
        page, rest = found[:limit], found[limit:]
        summaries = await self._summaries(page)
        done = scan is None and not rest
        return RoomPage(summaries, None if done else make_cursor(scan, rest))

    async def _summaries(self, rooms: list[str]) -> list[RoomSummary]:
        async def read() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for room in rooms:
                    keys = room_keys(self._prefix, room)
                    await self._summary(
                        keys=[keys.state, keys.rev, keys.log, keys.state_size], client=pipe
                    )
                return await pipe.execute()

        summaries = []
        for room, (rev, fields, size, last) in zip(rooms, await read_twice(read), strict=True):
            if _parse_rev(room, rev) > 0:  # 0: it expired since the SCAN
                changed = entry_time(last)
                summaries.append(
                    RoomSummary(room, _parse_rev(room, rev), int(fields), int(size), changed)
                )
        return summaries

    async def watch(self, room: str) -> None:
        await self._feed.subscribe(room_keys(self._prefix, room).channel)
        self._watched.add(room)
        if self._ttl_ms and self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_watched(), name="kpk-io renewal")

    async def unwatch(self, room: str) -> None:
        self._watched.discard(room)
        await self._feed.unsubscribe(room_keys(self._prefix, room).channel)

    async def _renew_watched(self) -> None:
        """Renew the rooms that have members here for as long as they do: keys expiring
        under connected members would restart the room at rev 1, below the revs they hold."""
        interval = min(self._ttl_ms / 4000, _RENEW_EVERY_MAX)
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for room in list(self._watched):
                        for key in room_keys(self._prefix, room).stored:
                            pipe.pexpire(key, self._ttl_ms)
                    await pipe.execute()
            except RedisError as exc:
                log.warning("cannot renew the rooms watched here (%s); retrying", exc)

    def set_listener(self, listener: ChangeListener) -> None:
        self._feed.listener = listener

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        await self._feed.close()
        await self._redis.aclose()
        await self._writer.aclose()


def _parse_rev(room: str, raw: bytes | int | None) -> int:
    if raw is None:
        return 0
    try:
        return int(raw)
    except ValueError:
        log.error("room %r: stored rev %r is not a number; read as 0", room, raw)
        return 0
