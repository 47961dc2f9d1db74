"""A hub lane: one room's queue of operations, worked by one task, and its delivery cursor."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kpk_io.change import Snapshot


@dataclass
class Lane:
    room: str
    ops: asyncio.Queue[Callable[["Lane"], Awaitable[None]]] = field(
        default_factory=asyncio.Queue
    )
    members: set[str] = field(default_factory=set)
    cursor: int | None = None
    tag: str | None = None  # the cursor's commit tag: a later commit must name it as `prev`
    watched: bool = False
    worker: asyncio.Task[None] | None = None
    busy: bool = False  # an operation is running (and may be awaiting the store)
    # Joins waiting for the lane's next admission, all admitted on one snapshot.
    joiners: list[tuple[str, "asyncio.Future[Snapshot]"]] = field(default_factory=list)


async def settle(lane: Lane) -> None:
    """Nothing to do: the lane's worker checks, after every operation, whether to retire."""
