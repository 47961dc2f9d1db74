"""This node's side of presence and signals: which of its connections is which member of
which room, the presence store kept current, and the events other members get.

Nothing here awaits an emit: the Broadcaster puts events on this node's sockets' queues and
on its relay queue, both without waiting. A
closed connection is forgotten at once (`forget` never awaits: python-socketio runs the
disconnect handler inline wherever the close was noticed); its store entries are removed
in a task of its own.
"""

import asyncio
import base64
import contextlib
import contextvars
import hmac
import logging
import secrets
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import replace
from typing import Any

from kpk_io.broadcast import Broadcaster
from kpk_io.change import JSON
from kpk_io.presence import Member, PresenceStore
from kpk_io.protocol import Event

log = logging.getLogger(__name__)


class Roster:
    def __init__(self, store: PresenceStore, broadcaster: Broadcaster, ttl: float) -> None:
        self._store = store
        self._broadcaster = broadcaster
        self._interval = ttl / 3
        # Member ids: a keyed hash of the socket id, one per connection, which no one
        # without this key can link to the socket id (no map of them held per connection).
        self._id_key = secrets.token_bytes(16)
        self._held: dict[str, dict[str, Member]] = {}  # sid -> room -> member
        self._background: set[asyncio.Task[None]] = set()
        # Members gone from here whose removal from the store failed: retried on each beat,
        # so none stays listed while this node lives.
        self._stale: set[tuple[str, str]] = set()
        self._beating: asyncio.Task[None] | None = None

    @property
    def member_count(self) -> int:
        """Members (a connection in a room) this node holds."""
        return sum(len(rooms) for rooms in self._held.values())

    def member_id(self, sid: str) -> str:
        digest = hmac.digest(self._id_key, sid.encode(), "sha256")
        return base64.urlsafe_b64encode(digest[:9]).decode()

    def member(self, sid: str, room: str) -> Member | None:
        return self._held.get(sid, {}).get(room)

    async def join(
        self, sid: str, room: str, by: Mapping[str, str] | None, meta: dict[str, JSON]
    ) -> tuple[Member, list[Member]] | None:
        """Make `sid` a member of `room`; the member and everyone now in the room, or None
        when the connection closed meanwhile. `by` is the token's `{user, name?}` (None
        without auth: the member gets an anonymous user)."""
        known = self.member(sid, room)
        if known is not None:
            return known, await self._store.members(room)
        member_id = self.member_id(sid)
        user = by["user"] if by else f"anonymous-{member_id}"
        # An empty meta is None: one object less per member (to_wire() gives {} for it).
        member = Member(member_id, user, by.get("name") if by else None, meta or None)
        self._stale.discard((room, member_id))
        self._held.setdefault(sid, {})[room] = member
        try:
            members = await self._record(sid, room, member)
            if members is None:
                return None
        except Exception:
            self._held.get(sid, {}).pop(room, None)  # joined again later, from scratch
            self._stale.add((room, member_id))  # it may have been written all the same
            raise
        self._announce(room, "joined", member, skip_sid=sid)
        return member, members

    async def leave(self, sid: str, room: str) -> None:
        member = self._held.get(sid, {}).pop(room, None)
        if member is not None:
            self._announce(room, "left", member)
            await self._remove(room, member.id)

    async def set_meta(self, sid: str, room: str, meta: dict[str, JSON]) -> Member | None:
        """Give the member a new meta; None when `sid` is no member of `room`."""
        member = self.member(sid, room)
        if member is None:
            return None
        updated = self._held[sid][room] = replace(member, meta=meta)
        if await self._record(sid, room, updated) is None:
            return None
        self._announce(room, "updated", updated, skip_sid=sid)
        return updated

    def signal(self, sid: str, room: str, data: JSON) -> None:
        payload: dict[str, JSON] = {"room": room, "from": self.member_id(sid), "data": data}
        self._broadcaster.send(Event.SIGNAL.value, payload, room, skip_sid=sid, ephemeral=True)

    def forget(self, sid: str) -> None:
        """A connection closed: its members leave every room now. Never awaits."""
        held = self._held.pop(sid, {})
        for room, member in held.items():
            self._announce(room, "left", member)
        if held:
            self._in_background(self._remove_all(list(held.items())))

    async def start(self) -> None:
        """Beat once (other nodes list this node's members only while it beats), then keep
        beating and pruning the members of nodes that stopped."""
        try:
            await self._store.beat()
        except Exception as exc:  # Redis down at start: the next beats try again
            log.warning("presence heartbeat failed at start: %s", exc)
        self._beating = asyncio.create_task(self._beat_forever(), name="kpk-io presence")

    async def close(self) -> None:
        """Leave every room on the way out, so that other nodes see it at once."""
        if self._beating is not None:
            self._beating.cancel()
        for sid in list(self._held):
            self.forget(sid)
        if self._background:
            await asyncio.wait(self._background, timeout=2)
        await self._broadcaster.flush(2)
        await self._broadcaster.close()
        await self._store.close()

    async def _record(self, sid: str, room: str, member: Member) -> list[Member] | None:
        """Write the member; everyone in the room then, or None (and nothing left in the
        store) when its connection closed meanwhile, whose `left` was announced already."""
        members = await self._store.add(room, member)
        if self.member(sid, room) is member:
            return members
        with contextlib.suppress(Exception):
            await self._store.remove(room, member.id)
        return None

    def _announce(
        self, room: str, change: str, member: Member, skip_sid: str | None = None
    ) -> None:
        payload: dict[str, JSON] = {"room": room, change: [member.to_wire()]}
        self._broadcaster.send(Event.PRESENCE.value, payload, room, skip_sid=skip_sid)

    async def _remove_all(self, held: list[tuple[str, Member]]) -> None:
        for room, member in held:
            await self._remove(room, member.id)

    async def _remove(self, room: str, member_id: str) -> None:
        try:
            await self._store.remove(room, member_id)
        except Exception as exc:
            log.warning("could not remove a member's presence (retried): %s", exc)
            self._stale.add((room, member_id))

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._beat()
            except Exception as exc:
                log.warning("presence heartbeat failed: %s", exc)

    async def _beat(self) -> None:
        held = {(room, member.id) for room, member in self._all_held()}
        for entry in list(self._stale - held):
            await self._store.remove(*entry)
            self._stale.discard(entry)
        if await self._store.beat():
            log.warning("this node was taken for dead (it stalled); announcing its members")
            for room, member in self._all_held():
                await self._store.add(room, member)
                self._announce(room, "joined", member)
        for room, member in await self._store.prune():
            self._announce(room, "left", member)

    def _all_held(self) -> Iterator[tuple[str, Member]]:
        for rooms in list(self._held.values()):
            yield from list(rooms.items())

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, context=contextvars.Context())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
