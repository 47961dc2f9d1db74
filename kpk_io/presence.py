"""Who is in each room on every node: the contract of a presence store.

Presence is not room state: it is never revisioned, logged or replayed. Each node records
the members it holds; a node that dies without saying goodbye (SIGKILL, a lost host) stops
renewing its heartbeat, and the other nodes prune its members within `ttl` seconds.
Implementations: presence_memory.py (one process) and presence_redis.py (a cluster);
tests/test_presence.py runs one suite against both.
"""

from dataclasses import dataclass
from typing import Protocol

from kpk_io.change import JSON


@dataclass(frozen=True, slots=True)
class Member:
    """One connection in one room. `id` is per connection (two tabs of one user are two
    members with the same `user`); `meta` is small, client-set data such as a colour."""

    id: str
    user: str
    name: str | None = None
    meta: dict[str, JSON] | None = None

    def to_wire(self) -> dict[str, JSON]:
        return {"id": self.id, "user": self.user, "name": self.name, "meta": self.meta or {}}


def member_from_wire(body: object) -> Member | None:
    """Inverse of Member.to_wire(); None for anything that is not one."""
    if not isinstance(body, dict):
        return None
    member_id, user, name, meta = (body.get(k) for k in ("id", "user", "name", "meta"))
    if not (isinstance(member_id, str) and isinstance(user, str)):
        return None
    if not (name is None or isinstance(name, str)) or not isinstance(meta, dict):
        return None
    return Member(member_id, user, name, meta)


class PresenceStore(Protocol):
    """Members of rooms, per node. Every implementation honours:

    - `members(room)` lists every member added on any live node and not removed since,
      and none of a node whose heartbeat lapsed, even before that node is pruned;
    - a node's heartbeat lapses when `beat()` was not called for `ttl` * 2/3 seconds;
    - `prune()` removes the members of lapsed nodes, and each removed member is returned
      by exactly one call on one node (so exactly one `left` event is sent for it);
    - `beat()` answers True when this node had been pruned (it stalled past its heartbeat):
      its members are gone from the store and the caller must add them again.
    """

    @property
    def node(self) -> str:
        """This node's id: random, per process."""

    async def add(self, room: str, member: Member) -> list[Member]:
        """Record `member`, held by this node, in `room`; replaces one with the same id.
        Returns everyone in `room` then, as `members(room)` would (so a join needs no
        second call)."""

    async def remove(self, room: str, member_id: str) -> None:
        """Forget a member of this node; nothing happens for one that is not there."""

    async def members(self, room: str) -> list[Member]:
        """Everyone in `room` on every live node, in no particular order."""

    async def counts(self, rooms: list[str]) -> dict[str, int]:
        """For each of `rooms`, how many members `members(room)` would list."""

    async def beat(self) -> bool:
        """Renew this node's heartbeat; True when the node had been pruned."""

    async def prune(self) -> list[tuple[str, Member]]:
        """Remove the members of lapsed nodes; the (room, member) pairs this call removed."""

    async def close(self) -> None: ...
