"""The Redis side of the change feed: one pub/sub connection, one channel per watched room.

A node subscribes only to rooms it has members in, so it never receives, let alone decodes,
another room's traffic. Every message comes from the commit script itself, so per room the
messages arrive in rev order.
"""

import asyncio
import contextlib
import contextvars
import logging
import math

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kpk_io.store.base import ChangeListener, StoreUnavailable
from kpk_io.store.redis_log import parse_message

log = logging.getLogger(__name__)

_CONFIRM_TIMEOUT = 5.0
_MAX_BACKOFF = 5.0


class RedisFeed:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.listener: ChangeListener | None = None
        # redis-py's default handler of each pushed message logs it at DEBUG, building the
        # message's whole text and fetching a logger every time, enabled or not.
        self._pubsub = redis.pubsub(push_handler_func=_as_is)
        self._channels: set[str] = set()
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._reader: asyncio.Task[None] | None = None
        # redis-py's PubSub connects on its first command: two joins subscribing at once on
        # a feed without a connection yet would each make one, and the confirmation sent on
        # the one the reader does not read never arrives. One command at a time.
        self._commands = asyncio.Lock()

    async def subscribe(self, channel: str) -> None:
        """Return once Redis confirms the subscription, so no later commit is missed."""
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(channel, []).append(confirmed)
        self._channels.add(channel)
        try:
            async with self._commands:
                await self._pubsub.subscribe(channel)
            self._start_reader()
            await asyncio.wait_for(asyncio.shield(confirmed), _CONFIRM_TIMEOUT)
        except (RedisError, TimeoutError) as exc:
            self._channels.discard(channel)
            raise StoreUnavailable(f"cannot subscribe to {channel}: {exc!r}") from exc
        finally:
            waiting = self._confirmations.get(channel, [])
            if confirmed in waiting:
                waiting.remove(confirmed)
            if not waiting:
                self._confirmations.pop(channel, None)

    async def unsubscribe(self, channel: str) -> None:
        # If this fails (Redis is away), the reader drops the channel after reconnecting.
        self._channels.discard(channel)
        with contextlib.suppress(RedisError):
            async with self._commands:
                await self._pubsub.unsubscribe(channel)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(RedisError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    def _start_reader(self) -> None:
        if self._reader is None or self._reader.done():
            # A fresh context: the reader outlives the request that started it, and must not
            # log under that request's socket id.
            self._reader = asyncio.create_task(
                self._read(), name="kpk-io redis feed", context=contextvars.Context()
            )

    async def _read(self) -> None:
        backoff = 0.1
        interrupted = False
        while True:
            try:
                if interrupted:
                    await self._resubscribe()
                message = await self._next()
            except (RedisError, OSError) as exc:
                if not interrupted:
                    log.error("change feed lost: %r; reconnecting", exc)
                interrupted = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            if interrupted:
                interrupted, backoff = False, 0.1
                log.warning("change feed restored; rooms catch up from their logs")
                if self.listener is not None:
                    self.listener.on_feed_restored()
            if message is not None:
                self._dispatch(*message)

    async def _next(self) -> tuple[object, object, object] | None:
        """The next (type, channel, data) from the pub/sub connection.

        Read from redis-py's connection itself, blocking and without a timeout: PubSub's
        get_message wraps every read in retry and observability layers and builds a dict
        per message, and a read with a timeout arms a timer per message. A lost connection
        still fails the read; a stalled Redis is found by the commits and snapshots, which
        have timeouts. Replies other than messages (subscription confirmations) still go
        through PubSub.handle_message, which keeps its bookkeeping."""
        connection = self._pubsub.connection
        if connection is None or not connection.is_connected:  # PubSub (re)connects it
            reply = await self._pubsub.get_message(timeout=None)
            return None if reply is None else _triple(reply)
        response = await connection.read_response(timeout=math.inf, push_request=True)
        if isinstance(response, list) and len(response) == 3 and response[0] == b"message":
            return response[0], response[1], response[2]
        reply = await self._pubsub.handle_message(response)
        return None if reply is None else _triple(reply)

    async def _resubscribe(self) -> None:
        """After a reconnect: the channels wanted now, and none left from before."""
        async with self._commands:
            subscribed = {_text(name) for name in self._pubsub.channels}
            stale = subscribed - self._channels
            if stale:
                await self._pubsub.unsubscribe(*stale)
            if self._channels:
                # redis-py resubscribes on reconnect; subscribing again makes the reconnect
                # happen now rather than at the next read.
                await self._pubsub.subscribe(*self._channels)

    def _dispatch(self, raw_kind: object, raw_channel: object, data: object) -> None:
        try:
            kind, channel = _text(raw_kind), _text(raw_channel)
            if kind == "subscribe":
                for confirmed in self._confirmations.pop(channel, []):
                    if not confirmed.done():
                        confirmed.set_result(None)
            elif kind == "message" and channel in self._channels and self.listener:
                committed = parse_message(data)
                if committed is not None:
                    self.listener.on_change(committed)
        except Exception:  # one bad message must not stop the feed for every room
            log.exception("change feed: message %.200r skipped", data)


async def _as_is(response: object) -> object:
    return response


def _triple(reply: dict[str, object]) -> tuple[object, object, object]:
    return reply.get("type"), reply.get("channel"), reply.get("data")


def _text(value: object, *, strict: bool = False) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="strict" if strict else "replace")
    return str(value)
