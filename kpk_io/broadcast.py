"""Presence events and signals to a room's members on every node, through the Socket.IO
client manager (python-socketio's AsyncRedisManager with Redis, its in-process manager
without).

Best effort, fire and forget: callers only queue. One task per node emits in queue order,
so one member's `joined`, `updated` and `left` reach the other nodes in that order. The
task, not the caller, awaits the emit: AsyncRedisManager's publish has no deadline of its
own (kpk-io gives it a socket timeout) and its local delivery awaits each recipient's send,
which can run a disconnect handler inline; no request's turn and no room's lane ever waits
on that. While Redis stalls, signals that waited longer than SIGNAL_MAX_AGE are dropped
(a cursor position that old is noise), and past MAX_QUEUED events new ones are dropped.
"""

import asyncio
import contextlib
import contextvars
import logging
import time
from dataclasses import dataclass

import socketio

from kpk_io.change import JSON
from kpk_io.rooms import sio_room

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000
SIGNAL_MAX_AGE = 2.0


def socketio_channel(prefix: str) -> str:
    """The Redis channel of python-socketio's manager for a deployment's key prefix: what
    outside emitters (`AsyncRedisManager(url, channel=..., write_only=True)`) must use."""
    return f"{prefix}socketio"


@dataclass(frozen=True)
class _Emit:
    event: str
    payload: dict[str, JSON]
    room: str
    skip_sid: str | None
    expires: float | None  # monotonic time after which it is not worth sending


class Broadcaster:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio
        self._queue: asyncio.Queue[_Emit] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0  # events never sent: queue full, or signals too old

    def send(
        self, event: str, payload: dict[str, JSON], room: str, *,
        skip_sid: str | None = None, ephemeral: bool = False,
    ) -> None:
        """Queue `event` for every member of `room` on every node except `skip_sid`.
        `ephemeral` events (signals) are dropped when they could not be sent in time."""
        if self._queue.qsize() >= MAX_QUEUED:
            self._drop(event)
            return
        expires = time.monotonic() + SIGNAL_MAX_AGE if ephemeral else None
        self._queue.put_nowait(_Emit(event, payload, room, skip_sid, expires))
        if self._task is None:
            # A context of its own: log lines must not carry the first caller's sid and room.
            self._task = asyncio.create_task(
                self._work(), name="kpk-io broadcaster", context=contextvars.Context()
            )

    async def flush(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) until what is queued has been emitted."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _work(self) -> None:
        while True:
            emit = await self._queue.get()
            try:
                await self._emit(emit)
            finally:
                self._queue.task_done()

    async def _emit(self, emit: _Emit) -> None:
        if emit.expires is not None and time.monotonic() > emit.expires:
            self._drop(emit.event)
            return
        try:
            await self._sio.emit(
                emit.event, emit.payload, room=sio_room(emit.room), skip_sid=emit.skip_sid
            )
        except Exception:
            log.exception("%s to room %r failed", emit.event, emit.room)

    def _drop(self, event: str) -> None:
        self.dropped += 1
        if self.dropped % 1000 == 1:
            log.warning("%s not sent (the Socket.IO relay is behind); %d dropped so far",
                        event, self.dropped)
