"""A connection's turn: the order in which its requests run.

Requests of one connection run one at a time in arrival order (python-socketio starts a task
per event, and the tasks reach their first await in arrival order, so a FIFO lock taken
first thing keeps that order); that is what makes one connection's updates commit in the
order it sent them.

Signals and presence requests are not room state: they need no order with updates and syncs,
so they do not wait behind them (an update can hold the turn for seconds while Redis stalls).
They keep their order with joins and leaves (a signal sent right after a join, before its
ack, counts as the member's): while a join or leave, or a signal or presence request queued
behind one, is pending, they take the turn like any request. Presence requests also run one
at a time among themselves, so the last meta sent is the one kept.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from kpk_io.protocol import Event

_MEMBERSHIP = frozenset({Event.JOIN, Event.LEAVE})
_UNORDERED = frozenset({Event.SIGNAL, Event.PRESENCE})  # no order with updates and syncs


class Turn:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._meta_lock = asyncio.Lock()
        # Joins and leaves pending, and signals and presence requests queued behind them.
        self._gated = 0

    @contextlib.asynccontextmanager
    async def take(self, event: Event) -> AsyncIterator[None]:
        """Wait for `event`'s turn; enter this first thing on arrival, before any await."""
        unordered = event in _UNORDERED
        gated = event in _MEMBERSHIP or (unordered and self._gated > 0)
        self._gated += gated
        try:
            async with contextlib.AsyncExitStack() as turn:
                if gated or not unordered:
                    await turn.enter_async_context(self._lock)
                if event == Event.PRESENCE:
                    await turn.enter_async_context(self._meta_lock)
                yield
        finally:
            self._gated -= gated
