"""The protocol side of one room of the Python client (the twin of web/kpk-io/room-sync.js):
joining on every connection, catching up (sync, gaps) and sending local edits one update at
a time with retries. What the state is after each event is RoomState's (room_state.py);
what the caller sees is Room's (client_room.py)."""

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from kpk_io.change import JSON, Change, CommittedChange, update_payload
from kpk_io.client_error import Backoff, KpkError, is_retryable, retry_delay
from kpk_io.client_presence import Presence
from kpk_io.client_text import RoomTexts
from kpk_io.protocol import Event
from kpk_io.room_state import RoomChange, RoomState

log = logging.getLogger(__name__)

_GAP_WAIT = 1.0  # how long a missing rev may take to arrive before a sync


class RoomLink(Protocol):
    @property
    def connected(self) -> bool: ...

    async def request(self, event: Event, payload: dict[str, JSON]) -> dict[str, JSON]: ...

    def next_change_id(self) -> str: ...


class RoomSync:
    def __init__(
        self,
        name: str,
        link: RoomLink,
        state: RoomState,
        presence: Presence,
        *,
        applied: Callable[[list[RoomChange]], None],
        texts: RoomTexts,
        meta: Callable[[], dict[str, JSON]],
    ) -> None:
        """`applied` hears the changes of others RoomState applied (and, with none, that
        something changed); `texts` each whole state, the server's edits made of our sets of
        texts (in an update's ack), our acknowledged and stale edits; `meta` gives what a
        join shows."""
        self.name = name
        self._link = link
        self._state = state
        self._presence = presence
        self._applied = applied
        self._texts = texts
        self._meta = meta
        self.joined = False
        self.closed = False
        self.idle = asyncio.Event()
        self.idle.set()
        self.last_error: KpkError | None = None
        self._sender: asyncio.Task[None] | None = None
        self._resumer: asyncio.Task[None] | None = None
        self._syncing = asyncio.Lock()
        self._send_backoff = Backoff()

    def edited(self) -> None:
        """A local edit: send it as soon as possible."""
        self.idle.clear()
        self.kick()

    async def rejoin(self) -> None:
        """Join on the current connection and catch up from `rev`."""
        request: dict[str, JSON] = {"room": self.name}
        if meta := self._meta():
            request["meta"] = meta
        self._presence.joining()
        self._state.joining()
        try:
            ack = await self._link.request(Event.JOIN, request)
        except KpkError:
            self._presence.left()
            self._state.left()
            raise
        self._presence.joined(ack)
        self.joined = True
        self._texts.took_whole(ack)
        applied, needs_sync = self._state.joined(int(ack["rev"]), dict(ack["state"]), _tag_of(ack))
        self._applied(applied)
        if needs_sync:
            await self.sync()  # also settles a change in flight whose ack was lost
        self.kick()

    async def sync(self) -> None:
        async with self._syncing:
            request: dict[str, JSON] = {"room": self.name, "since": self._state.rev}
            if self._state.tag is not None:
                request["tag"] = self._state.tag  # the server answers with the whole state
                # if our history is not the room's (Redis lost data and moved on)
            ack = await self._link.request(Event.SYNC, request)
            if "state" in ack:
                self._texts.took_whole(ack)
                self._applied(self._state.reset(int(ack["rev"]), dict(ack["state"]), _tag_of(ack)))
                return
            for body in ack["changes"]:
                self.remote(CommittedChange.from_wire(self.name, body), sync=False)

    def remote(self, committed: CommittedChange, *, sync: bool = True) -> None:
        """An update from the server (or from a sync result)."""
        self._applied(self._state.remote(committed))
        if sync and self._state.held and not self._state.in_flight:
            self._spawn_resume(self.sync)

    def disconnected(self) -> None:
        self.joined = False
        self._presence.left()
        self._state.left()

    def reconnected(self) -> None:
        self._spawn_resume(self.rejoin, restart=True)

    def close(self) -> None:
        self.closed = True
        for task in (self._sender, self._resumer):
            if task is not None:
                task.cancel()

    def acknowledged(
        self, change_id: str, ack: Mapping[str, JSON], change: Change | None = None
    ) -> None:
        """The ack of change `change_id` (`change` when it was sent outside `pending`)."""
        text = ack.get("text")  # the server's edits made of our sets of texts
        self._texts.took(text if isinstance(text, dict) else {})
        sent = next((e.change for e in self._state.in_flight if e.id == change_id), change)
        if sent is not None:
            self._texts.acknowledged(sent)
        rev, tag = int(ack["rev"]), _tag_of(ack)
        self._applied(self._state.acknowledged(change_id, rev, tag, change=change))
        if self._state.own:  # revs before ours are missing: they should be on their way
            asyncio.get_running_loop().call_later(_GAP_WAIT, self._check_gap, self._state.rev)

    def kick(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_all())

    def _check_gap(self, rev: int) -> None:
        state = self._state
        if not self.closed and state.own and state.rev == rev and not state.in_flight:
            self._spawn_resume(self.sync)

    async def _send_all(self) -> None:
        while not self.closed and self.joined and self._link.connected:
            entry = self._state.in_flight[0] if self._state.in_flight else None
            if entry is None:
                entry = self._state.send(self._link.next_change_id())
                if entry is None:
                    break
            try:
                ack = await self._link.request(
                    Event.UPDATE, update_payload(self.name, entry.id, entry.change)
                )
            except KpkError as exc:
                if not await self._refused(entry.id, exc):
                    return
                continue
            self._send_backoff.reset()
            self.acknowledged(entry.id, ack)
        if not self._state.has_unsent:
            self.idle.set()

    async def _refused(self, change_id: str, exc: KpkError) -> bool:
        """Handle a refused update; True to go on sending now."""
        self.last_error = exc
        if exc.code == "text_stale":  # edits of a text the server no longer holds
            self._spawn_resume(lambda: self._retype(change_id))
            return False
        if not is_retryable(exc.code):
            log.error("room %r: change dropped, the server refused it: %s", self.name, exc)
            self._state.drop(change_id)
            self._applied([])
            return True
        if exc.code == "disconnected":
            return False  # kept in flight; settled by the sync after reconnecting
        if exc.code == "not_joined":  # the server forgot this connection's rooms
            self.joined = False
            self._spawn_resume(self.rejoin, restart=True)
            return False
        # unavailable, internal, timeout or rate_limited: send the same change again, with the
        # same id, so if it was committed after all the server answers `duplicate` instead.
        await asyncio.sleep(retry_delay(exc, self._send_backoff.next_delay()))
        return True

    async def _retype(self, change_id: str) -> None:
        """After text_stale: sync (it brings the unset, replace or lost room the edit missed),
        then the edited texts start over and their typing is sent again; the change's other
        fields are sent again as they were."""
        await self.sync()
        entry = next((e for e in self._state.in_flight if e.id == change_id), None)
        if entry is None or not self._state.drop(change_id):
            return
        change = entry.change
        others = {k: v for k, v in change.set.items() if k not in change.text}
        if others or change.unset or change.replace:
            self._state.edit(dataclasses.replace(change, set=others, text={}))
        self._texts.stale(change)
        self._applied([])

    def _spawn_resume(self, step: Callable[[], Awaitable[None]], *, restart: bool = False) -> None:
        """Run `step` (rejoin or sync) in the background, retrying while connected."""

        async def run() -> None:
            backoff = Backoff()
            while not self.closed and self._link.connected:
                try:
                    await step()
                    break
                except KpkError as exc:
                    self.last_error = exc
                    delay = retry_delay(exc, backoff.next_delay())
                    log.warning("room %r: %s; retrying in %.1f s", self.name, exc, delay)
                    await asyncio.sleep(delay)
            self.kick()

        running = self._resumer is not None and not self._resumer.done()
        if running and not restart:
            return
        if running and self._resumer is not None:
            self._resumer.cancel()
        self._resumer = asyncio.create_task(run())


def _tag_of(ack: Mapping[str, JSON]) -> str | None:
    tag = ack.get("tag")
    return tag if isinstance(tag, str) else None
