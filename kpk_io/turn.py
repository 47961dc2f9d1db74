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

from kpk_io.protocol import Event

_MEMBERSHIP = frozenset({Event.JOIN, Event.LEAVE})
_UNORDERED = frozenset({Event.SIGNAL, Event.PRESENCE})  # no order with updates and syncs


class Turn:
    # One per connection: its locks are made on first use (most connections send few
    # requests, and presence requests are rarer still).
    __slots__ = ("_gated", "_lock", "_meta_lock")

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._meta_lock: asyncio.Lock | None = None
        # Joins and leaves pending, and signals and presence requests queued behind them.
        self._gated = 0

    def take(self, event: Event) -> "_Taking":
        """Wait for `event`'s turn (`async with turn.take(event)`); enter this first thing on
        arrival, before any await."""
        return _Taking(self, event)


class _Taking:
    """One request's hold on its connection's turn: the locks it waits for on entering the
    block, released on leaving it. (A class rather than an asynccontextmanager: it runs for
    every request.)"""

    __slots__ = ("_event", "_gated", "_held", "_turn")

    def __init__(self, turn: Turn, event: Event) -> None:
        self._turn = turn
        self._event = event
        self._gated = False
        self._held: list[asyncio.Lock] = []

    async def __aenter__(self) -> None:
        turn, event = self._turn, self._event
        unordered = event in _UNORDERED
        self._gated = gated = event in _MEMBERSHIP or (unordered and turn._gated > 0)
        turn._gated += gated
        try:
            if gated or not unordered:
                lock = turn._lock = turn._lock or asyncio.Lock()
                await lock.acquire()
                self._held.append(lock)
            if event == Event.PRESENCE:
                meta_lock = turn._meta_lock = turn._meta_lock or asyncio.Lock()
                await meta_lock.acquire()
                self._held.append(meta_lock)
        except BaseException:
            self._release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        while self._held:
            self._held.pop().release()
        self._turn._gated -= self._gated
        self._gated = False
