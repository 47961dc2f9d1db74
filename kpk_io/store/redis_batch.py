"""A Lua script whose calls issued in the same event-loop turn go to Redis as one pipeline.

Under load many commits are issued at once (one per update being handled); one by one, each
would take a pooled connection and a round trip of its own. Batched, a turn's commits cost one
round trip on one connection, and their replies come back in order. Each call still gets its
own reply or error, so one refused commit costs the others nothing; a call whose script Redis
no longer has (it restarted) is run again alone, which loads it.

A batch is written and read on one pooled connection (the last batch's, kept while it is
clean) through redis-py's connection API (`send_packed_command`, `read_response`, and
`is_connected` and `can_read` for the pool's own check), its commands packed by hiredis
when it is installed (the `speed` extra): redis-py's Pipeline packs every argument in
Python and wraps each batch in retry and observability layers that a commit, retried by the
store itself with its dedupe key, does not use. That was a tenth of the server's CPU in the
many-rooms benchmark.
"""

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - the `speed` extra is not installed
    _hiredis_pack = None  # type: ignore[assignment]

_Call = tuple[list[str], list[str | int], "asyncio.Future[Any]"]


class ScriptBatch:
    def __init__(self, redis: aioredis.Redis, script: AsyncScript) -> None:
        self._redis = redis
        self._script = script
        self._pending: list[_Call] = []
        self._running: set[asyncio.Task[None]] = set()
        # The connection of the last batch, kept for the next one rather than returned to
        # the pool: a pool checkout and release (its condition, lock, timer and bookkeeping)
        # cost as much as packing a small batch. The pool still counts it as in use,
        # and closing the client's pool closes it.
        self._parked: Any = None

    async def __call__(self, *, keys: list[str], args: list[str | int]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((keys, args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)  # after every call of this turn
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _alone(self, keys: list[str], args: list[str | int],
                     future: "asyncio.Future[Any]") -> None:
        """Through redis-py's Script, which loads the script when Redis lacks it."""
        try:
            result = await self._script(keys=keys, args=args)
        except Exception as exc:
            _settle(future, exc)
        else:
            _settle(future, result)

    async def _run(self, batch: list[_Call]) -> None:
        try:
            replies = await self._send(batch)
        except Exception as exc:  # the connection failed: every call sees it, and may retry
            for *_, future in batch:
                _settle(future, exc)
            return
        for (keys, args, future), reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError):
                await self._alone(keys, args, future)
            else:
                _settle(future, reply)

    async def _send(self, batch: list[_Call]) -> list[Any]:
        """Every call's reply, or the ResponseError Redis answered it with, in order."""
        pool = self._redis.connection_pool
        connection = await self._connection(pool)
        kept = False
        try:
            commands = [("EVALSHA", self._script.sha, len(keys), *keys, *args)
                        for keys, args, _ in batch]
            await connection.send_packed_command(_pack(connection, commands),
                                                 check_health=False)
            replies: list[Any] = []
            # The connection's read timeout for the whole batch, not a timer per reply.
            async with asyncio.timeout(connection.socket_timeout):
                for _ in batch:
                    try:
                        replies.append(await connection.read_response(timeout=math.inf))
                    except ResponseError as exc:  # read whole: the next reply follows it
                        replies.append(exc)
            if self._parked is None:  # every reply read: clean for the next batch
                self._parked, kept = connection, True
            return replies
        except TimeoutError as exc:  # asyncio's: redis-py's own, which the store retries
            await connection.disconnect()
            raise RedisTimeoutError(f"no reply from Redis within {connection.socket_timeout}s") \
                from exc
        except BaseException:
            await connection.disconnect()  # replies may be left unread on it
            raise
        finally:
            if not kept:
                await pool.release(connection)

    async def _connection(self, pool: Any) -> Any:
        """The parked connection when it is still clean (connected, nothing unread: the
        pool's own check), else one from the pool."""
        connection, self._parked = self._parked, None
        if connection is not None:
            if await _clean(connection):
                return connection
            try:
                await connection.disconnect()
            finally:
                await pool.release(connection)
        return await pool.get_connection()


async def _clean(connection: Any) -> bool:
    try:
        return bool(connection.is_connected) and not await connection.can_read()
    except Exception:  # one that fails the check is replaced, as the pool would replace it
        return False


def _pack(connection: Any, commands: Sequence[tuple[Any, ...]]) -> bytes | list[bytes]:
    if _hiredis_pack is not None:
        return b"".join(_hiredis_pack(command) for command in commands)
    packed: list[bytes] = connection.pack_commands(commands)
    return packed


def _settle(future: "asyncio.Future[Any]", outcome: object) -> None:
    if future.done():  # its caller was cancelled
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
