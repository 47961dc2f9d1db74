"""PresenceStore in one process: the embedded default (no Redis).

Several MemoryPresence nodes may share one PresenceSpace: in production there is only one,
but the shared space lets the contract suite exercise heartbeats and pruning exactly as it
does for Redis.
"""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from kpk_io.presence import Member

Clock = Callable[[], float]


@dataclass
class PresenceSpace:
    """What every node of one in-process cluster sees."""

    clock: Clock = time.monotonic
    rooms: dict[str, dict[str, tuple[str, Member]]] = field(default_factory=dict)
    beats: dict[str, float] = field(default_factory=dict)  # node -> last beat


class MemoryPresence:
    def __init__(self, ttl: float, space: PresenceSpace | None = None) -> None:
        self._lapse = ttl * 2 / 3
        self._space = space or PresenceSpace()
        self._node = uuid.uuid4().hex[:12]
        self._space.beats[self._node] = self._space.clock()

    @property
    def node(self) -> str:
        return self._node

    async def add(self, room: str, member: Member) -> list[Member]:
        self._space.rooms.setdefault(room, {})[member.id] = (self._node, member)
        return await self.members(room)

    async def remove(self, room: str, member_id: str) -> None:
        held = self._space.rooms.get(room, {})
        if held.get(member_id, ("", None))[0] == self._node:
            del held[member_id]
            if not held:
                del self._space.rooms[room]

    async def members(self, room: str) -> list[Member]:
        return [m for node, m in self._space.rooms.get(room, {}).values() if self._alive(node)]

    async def counts(self, rooms: list[str]) -> dict[str, int]:
        return {room: len(await self.members(room)) for room in rooms}

    async def beat(self) -> bool:
        pruned = self._node not in self._space.beats
        self._space.beats[self._node] = self._space.clock()
        return pruned

    async def prune(self) -> list[tuple[str, Member]]:
        dead = {node for node in self._space.beats if not self._alive(node)}
        for node in dead:
            del self._space.beats[node]
        removed = []
        for room, held in list(self._space.rooms.items()):
            for member_id, (node, member) in list(held.items()):
                if node in dead:
                    del held[member_id]
                    removed.append((room, member))
            if not held:
                del self._space.rooms[room]
        return removed

    async def close(self) -> None:
        pass

    def _alive(self, node: str) -> bool:
        beat = self._space.beats.get(node)
        return node == self._node or (
            beat is not None and self._space.clock() - beat < self._lapse
        )
