"""A Lua script whose calls issued in the same event-loop turn go to Redis as one pipeline.

Under load many commits are issued at once (one per update being handled); one by one, each
would take a pooled connection and a round trip of its own. Batched, a turn's commits cost one
round trip on one connection, and their replies come back in order. Each call still gets its
own reply or error (`raise_on_error=False`), so one refused commit costs the others nothing;
a call whose script Redis no longer has (it restarted) is run again alone, which loads it.
"""

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

_Call = tuple[list[str], list[str | int], "asyncio.Future[Any]"]


class ScriptBatch:
    def __init__(self, redis: aioredis.Redis, script: AsyncScript) -> None:
        self._redis = redis
        self._script = script
        self._pending: list[_Call] = []
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, *, keys: list[str], args: list[str | int]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((keys, args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)  # after every call of this turn
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._run(batch) if len(batch) > 1 else self._alone(*batch[0]))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _alone(self, keys: list[str], args: list[str | int],
                     future: "asyncio.Future[Any]") -> None:
        try:
            result = await self._script(keys=keys, args=args)
        except Exception as exc:
            _settle(future, exc)
        else:
            _settle(future, result)

    async def _run(self, batch: list[_Call]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for keys, args, _ in batch:
                    pipe.evalsha(self._script.sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the connection failed: every call sees it, and may retry
            for *_, future in batch:
                _settle(future, exc)
            return
        for (keys, args, future), result in zip(batch, results, strict=True):
            if isinstance(result, NoScriptError):
                await self._alone(keys, args, future)
            else:
                _settle(future, result)


def _settle(future: "asyncio.Future[Any]", outcome: object) -> None:
    if future.done():  # its caller was cancelled
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
