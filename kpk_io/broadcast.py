"""Presence events and signals to a room's members on every node.

This node's members get each event at once, through the Outbox (engine/outbox.py), which never
awaits a send; the other nodes get it through Redis (python-socketio's AsyncRedisManager
channel, `RelayManager.relay`), from a queue of its own that one task publishes in order,
so one member's `joined`, `updated` and `left` reach the other nodes in that order. Callers
never wait: a stalled Redis delays the relay, never local delivery nor anyone's turn. The
relay queue is bounded: past MAX_QUEUED the oldest event is dropped, and signals that waited
longer than SIGNAL_MAX_AGE are dropped (a cursor position that old is noise); both counted.
Without Redis (one process) there is no relay.
"""

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import deque
from dataclasses import dataclass

from kpk_io.change import JSON
from kpk_io.engine import Outbox, RelayManager
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
    room: str  # the Socket.IO room
    skip_sid: str | None
    expires: float | None  # monotonic time after which it is not worth sending


class Broadcaster:
    def __init__(self, outbox: Outbox, relay: RelayManager | None) -> None:
        self._outbox = outbox
        self._relay = relay
        self._queue: deque[_Emit] = deque()
        self._queued = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0  # events never relayed: queue full, signals too old, Redis down

    def send(
        self, event: str, payload: dict[str, JSON], room: str, *,
        skip_sid: str | None = None, ephemeral: bool = False,
    ) -> None:
        """Deliver `event` to every member of `room` on this node except `skip_sid` now,
        and queue it for the other nodes. `ephemeral` events (signals) are not relayed
        when they could not be in time."""
        self._outbox.post(event, payload, sio_room(room), skip_sid)
        if self._relay is None:
            return
        if len(self._queue) >= MAX_QUEUED:
            self._drop(self._queue.popleft().event)
        expires = time.monotonic() + SIGNAL_MAX_AGE if ephemeral else None
        self._queue.append(_Emit(event, payload, sio_room(room), skip_sid, expires))
        self._idle.clear()
        self._queued.set()
        if self._task is None:
            # A context of its own: log lines must not carry the first caller's sid and room.
            self._task = asyncio.create_task(
                self._work(self._relay), name="kpk-io relay", context=contextvars.Context()
            )

    async def flush(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) until what is queued has been relayed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _work(self, relay: RelayManager) -> None:
        while True:
            await self._queued.wait()
            while self._queue:
                await self._publish(relay, self._queue.popleft())
            self._queued.clear()
            self._idle.set()

    async def _publish(self, relay: RelayManager, emit: _Emit) -> None:
        if emit.expires is not None and time.monotonic() > emit.expires:
            self._drop(emit.event)
            return
        try:
            relayed = await relay.relay(emit.event, emit.payload, emit.room, emit.skip_sid)
        except Exception:
            log.exception("relaying %s to room %r failed", emit.event, emit.room)
            relayed = False
        if not relayed:
            self.dropped += 1

    def _drop(self, event: str) -> None:
        self.dropped += 1
        if self.dropped % 1000 == 1:
            log.warning("%s not relayed (the relay to other nodes is behind); %d dropped so "
                        "far", event, self.dropped)
