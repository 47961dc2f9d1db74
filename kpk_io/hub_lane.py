"""A hub lane: one room's queue of operations, worked by one task, and its delivery cursor;
and `Members`, how the hub reaches this node's sockets."""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from kpk_io.change import CommittedChange, Snapshot


@dataclass
class Lane:
    room: str
    ops: deque[Callable[["Lane"], Awaitable[None]]] = field(default_factory=deque)
    members: set[str] = field(default_factory=set)
    cursor: int | None = None
    tag: str | None = None  # the cursor's commit tag: a later commit must name it as `prev`
    watched: bool = False
    worker: asyncio.Task[None] | None = None  # while it has operations to run
    busy: bool = False  # an operation is running (and may be awaiting the store)
    # Joins waiting for the lane's next admission, all admitted on one snapshot.
    joiners: list[tuple[str, "asyncio.Future[Snapshot]"]] = field(default_factory=list)

    def follows(self, committed: CommittedChange) -> bool:
        """Whether `committed` is the next change after the cursor, on the same history (its
        `prev` names the cursor's tag): the one case delivered as it comes."""
        if self.cursor is None or committed.rev != self.cursor + 1:
            return False
        return self.tag is None or not committed.prev or committed.prev == self.tag


async def settle(lane: Lane) -> None:
    """Nothing to do: the lane's worker checks, after every operation, whether to retire."""


class Members(Protocol):
    """How the hub reaches this node's sockets (the Socket.IO server in production)."""

    async def enter(self, sid: str, room: str) -> None:
        """Make `sid` a receiver of the room's deliveries. Sends nothing."""

    async def leave(self, sid: str, room: str) -> None:
        """Stop delivering the room to `sid`. Sends nothing."""

    def deliver(self, committed: CommittedChange) -> None:
        """Queue the change for the room's local members except its origin, without waiting
        on any of them."""

    async def resync(self, room: str) -> None:
        """Make the room's local members join again: their copy is ahead of the store."""

    def send_whole(self, sid: str, committed: CommittedChange) -> None:
        """Queue the room's whole state (a replacing change) for `sid` alone, and deliver
        the room to it again from here on, without waiting on it."""

    def release(self, sid: str, room: str) -> None:
        """Deliver the room to `sid` again without a catch-up (it is no longer a member)."""
