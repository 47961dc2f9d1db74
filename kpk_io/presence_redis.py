"""PresenceStore on Redis: a hash per room, a heartbeat key per node.

Keys (all named in _keys):
- `<prefix>presence:{<room>}`: hash, member id -> JSON `{node, member}`;
- `<prefix>presence-node:<node>`: the node's heartbeat, expiring `ttl` * 2/3 after each beat;
- `<prefix>presence-rooms:<node>`: set of the rooms the node has members in, so that
  whoever prunes the node knows where to look; a room leaves it with the node's last member
  of it, and the set expires ROOMS_TTLS * ttl after the node's last beat (long after others
  have pruned the node);
- `<prefix>presence-nodes`: set of the nodes that hold members.
A member of a node without a heartbeat is never listed, so a dead node's members vanish from
`members()` as soon as its heartbeat expires; `prune()` then deletes them, and the node that
wins the node's SREM is the only one to report them.
"""

import contextlib
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from kpk_io.change import encode_json
from kpk_io.presence import Member, member_from_wire
from kpk_io.store.base import StoreUnavailable
from kpk_io.store.redis_client import blocking_client

log = logging.getLogger(__name__)

_TIMEOUT = 2.0
ROOMS_TTLS = 3


@dataclass(frozen=True)
class _Keys:
    prefix: str

    def room(self, room: str) -> str:
        # The percent-encoded room never holds a brace: a Redis Cluster hash tag, one-to-one.
        return f"{self.prefix}presence:{{{quote(room, safe='')}}}"

    def heartbeat(self, node: str) -> str:
        return f"{self.prefix}presence-node:{node}"

    def rooms_of(self, node: str) -> str:
        return f"{self.prefix}presence-rooms:{node}"

    @property
    def nodes(self) -> str:
        return f"{self.prefix}presence-nodes"


class RedisPresence:
    def __init__(self, url: str, *, prefix: str, ttl: float) -> None:
        self._keys = _Keys(prefix)
        self._lapse_ms = max(1, round(ttl * 2000 / 3))
        self._rooms_ms = max(1, round(ttl * 1000 * ROOMS_TTLS))
        self._node = uuid.uuid4().hex[:12]
        # room -> ids of this node's members written there: the node's room set follows it.
        self._held: dict[str, set[str]] = {}
        self._beaten = False
        # Every command here is idempotent, so one lost connection (a pooled one from before
        # a Redis restart) is retried once; a timeout is not: that would double a stall.
        self._redis = blocking_client(  # waits for a free connection in a burst of joins
            url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )

    @property
    def node(self) -> str:
        return self._node

    async def add(self, room: str, member: Member) -> list[Member]:
        entry = encode_json({"node": self._node, "member": member.to_wire()})
        self._held.setdefault(room, set()).add(member.id)
        rooms = self._keys.rooms_of(self._node)
        with _unavailable():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._keys.room(room), member.id, entry)
                pipe.sadd(rooms, room)
                pipe.pexpire(rooms, self._rooms_ms)
                pipe.hgetall(self._keys.room(room))  # the room as this write left it
                *_, raw = await pipe.execute()
            return await self._listed(room, raw)

    async def remove(self, room: str, member_id: str) -> None:
        held = self._held.get(room, set())
        held.discard(member_id)
        with _unavailable():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(self._keys.room(room), member_id)
                if not held:  # the node's last member of the room
                    self._held.pop(room, None)
                    pipe.srem(self._keys.rooms_of(self._node), room)
                await pipe.execute()

    async def members(self, room: str) -> list[Member]:
        with _unavailable():
            return await self._listed(room, await self._redis.hgetall(self._keys.room(room)))

    async def _listed(self, room: str, raw: dict[Any, Any]) -> list[Member]:
        """The members of a room's hash whose node is alive."""
        held = self._decode(room, raw)
        others = sorted({node for node, _ in held} - {self._node})
        alive = {self._node, *await self._alive(others)} if others else {self._node}
        return [member for node, member in held if node in alive]

    async def counts(self, rooms: list[str]) -> dict[str, int]:
        if not rooms:
            return {}
        with _unavailable():
            async with self._redis.pipeline(transaction=False) as pipe:
                for room in rooms:
                    pipe.hgetall(self._keys.room(room))
                raw = await pipe.execute()
            held = {room: self._decode(room, entries)
                    for room, entries in zip(rooms, raw, strict=True)}
            others = sorted({node for entries in held.values() for node, _ in entries}
                            - {self._node})
            alive = {self._node, *await self._alive(others)}
        return {room: sum(node in alive for node, _ in entries) for room, entries in held.items()}

    async def beat(self) -> bool:
        rooms = self._keys.rooms_of(self._node)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.heartbeat(self._node), b"1", px=self._lapse_ms)
            pipe.sadd(self._keys.nodes, self._node)
            # Again each beat: a join's SADD and a leave's SREM of one room can reach Redis
            # in either order (pooled connections), and Redis may have lost the set.
            if self._held:
                pipe.sadd(rooms, *self._held)
            pipe.pexpire(rooms, self._rooms_ms)
            added = (await pipe.execute())[1]
        # Added again after the first beat: pruned (or Redis lost its data) meanwhile.
        pruned = bool(added) and self._beaten
        self._beaten = True
        return pruned

    async def prune(self) -> list[tuple[str, Member]]:
        nodes = sorted(_text(n) for n in await self._redis.smembers(self._keys.nodes))
        others = [n for n in nodes if n != self._node]
        alive = await self._alive(others)
        removed: list[tuple[str, Member]] = []
        for node in others:
            if node not in alive and await self._redis.srem(self._keys.nodes, node):
                removed.extend(await self._prune_node(node))
        return removed

    async def _alive(self, nodes: list[str]) -> set[str]:
        """Those of `nodes` whose heartbeat has not lapsed."""
        if not nodes:
            return set()
        beats = await self._redis.mget([self._keys.heartbeat(n) for n in nodes])
        return {node for node, beat in zip(nodes, beats, strict=True) if beat is not None}

    async def close(self) -> None:
        await self._redis.aclose()

    async def _prune_node(self, node: str) -> list[tuple[str, Member]]:
        rooms_key = self._keys.rooms_of(node)
        removed: list[tuple[str, Member]] = []
        for raw_room in await self._redis.smembers(rooms_key):
            room = _text(raw_room)
            key = self._keys.room(room)
            gone = [m for n, m in self._decode(room, await self._redis.hgetall(key)) if n == node]
            if gone:
                await self._redis.hdel(key, *(m.id for m in gone))
                removed.extend((room, m) for m in gone)
        await self._redis.delete(rooms_key)
        log.warning("node %s stopped beating: %d members pruned", node, len(removed))
        return removed

    @staticmethod
    def _decode(room: str, raw: dict[Any, Any]) -> list[tuple[str, Member]]:
        held = []
        for value in raw.values():
            try:
                entry = json.loads(value)
            except ValueError:
                entry = None
            node = entry.get("node") if isinstance(entry, dict) else None
            member = member_from_wire(entry.get("member")) if isinstance(entry, dict) else None
            if isinstance(node, str) and member is not None:
                held.append((node, member))
            else:
                log.warning("room %r: a presence entry is not one; left out", room)
        return held


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"presence: {exc}") from exc


def _text(raw: bytes | str) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else raw
