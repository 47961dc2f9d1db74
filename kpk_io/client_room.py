"""One joined room of the Python client: the I/O around a pure RoomState (room_state.py).

This module sends, retries, waits and notifies; what the state is after each event is
RoomState's, which tests/client_vectors.json pins for both clients. An update further ahead
is held while an ack of ours may still fill the gap, and otherwise triggers a sync. Local
changes wait merged in `pending` and go out one update at a time.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import pycrdt

from kpk_io.change import JSON, Change, CommittedChange, State, update_payload
from kpk_io.client_error import Backoff, KpkError, is_retryable, retry_delay
from kpk_io.client_presence import Presence, PresenceKind
from kpk_io.client_text import RoomTexts
from kpk_io.presence import Member
from kpk_io.protocol import Event
from kpk_io.room_state import RoomChange, RoomState

__all__ = ["Backoff", "KpkError", "Room", "RoomChange", "RoomLink"]

log = logging.getLogger(__name__)

_GAP_WAIT = 1.0  # how long a missing rev may take to arrive before a sync


class RoomLink(Protocol):
    @property
    def connected(self) -> bool: ...

    async def request(self, event: Event, payload: dict[str, JSON]) -> dict[str, JSON]: ...

    def next_change_id(self) -> str: ...


Listener = Callable[["Room", RoomChange], None]


class Room:
    def __init__(self, name: str, link: RoomLink) -> None:
        self.name = name
        self._link = link
        self._state = RoomState(name)
        self._joined = False
        self._closed = False
        self._changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._listeners: list[Listener] = []
        self._sender: asyncio.Task[None] | None = None
        self._resumer: asyncio.Task[None] | None = None
        self._syncing = asyncio.Lock()
        self._send_backoff = Backoff()
        self.last_error: KpkError | None = None
        # Who else is here, and the signals they send (client_presence.py).
        self.presence = Presence(name)
        self._meta: dict[str, JSON] = {}
        self._texts = RoomTexts(self.update)

    @property
    def state(self) -> State:
        """The state as this client sees it: confirmed, then its own changes on top; a text
        field bound with text() shows its document, which holds every edit received."""
        return self._texts.show(self._state.view)

    def text(self, field: str) -> pycrdt.Text:
        """The text field `field` as a pycrdt Y.Text: `insert(index, s)`, `del t[a:b]`,
        `str(t)`. Its edits are sent like any change and merge with everyone else's. A
        field holding a plain string becomes a text holding that string."""
        return self._texts.text(field, self._state.view.get(field))

    @property
    def rev(self) -> int:
        return self._state.rev

    @property
    def tag(self) -> str | None:
        """The tag of the commit that made `rev` (see CommittedChange)."""
        return self._state.tag

    @property
    def has_unsent(self) -> bool:
        return self._state.has_unsent

    def on_change(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(room, change)` for each change another member made and for each
        whole state the server sent (`change.reset`); returns a function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    @property
    def members(self) -> list[Member]:
        """Everyone in the room now, on every node, this client included (`presence.me`)."""
        return self.presence.members

    def on_presence(
        self, listener: Callable[["Room", PresenceKind, list[Member]], None]
    ) -> Callable[[], None]:
        """Call `listener(room, kind, members)` when members join, leave or change their
        meta, and with `reset` and everyone after each join; returns a remover."""
        return self.presence.on_presence(lambda kind, members: listener(self, kind, members))

    def on_signal(
        self, listener: Callable[["Room", str | None, JSON], None]
    ) -> Callable[[], None]:
        """Call `listener(room, sender, data)` for each signal another member sends (`sender`
        is its member id; None from the server side); returns a remover."""
        return self.presence.on_signal(lambda sender, data: listener(self, sender, data))

    async def set_meta(self, meta: dict[str, JSON]) -> None:
        """Show `meta` (at most 1 KiB encoded) to the other members; kept for later joins."""
        self._meta = dict(meta)
        if self._joined and self._link.connected:
            await self._link.request(Event.PRESENCE, {"room": self.name, "meta": self._meta})
            self.presence.meta_set(self._meta)

    async def signal(self, data: JSON) -> None:
        """Send `data` to every other member now; never stored. Raises KpkError when the
        server refuses it (`rate_limited`, `too_large`, `not_joined`)."""
        await self._link.request(Event.SIGNAL, {"room": self.name, "data": data})

    def set(self, field: str, value: JSON) -> None:
        if not self._texts.set(field, value):  # a string set of a text edits it
            self.update(Change({field: value}))

    def unset(self, field: str) -> None:
        self.update(Change(unset=(field,)))

    def replace(self, state: Mapping[str, JSON]) -> None:
        self.update(Change(dict(state), replace=True))

    def update(self, change: Change) -> None:
        """Apply a local change now; it is sent (merged with others) as soon as possible."""
        self._state.edit(change)
        self._idle.clear()
        self._changed.set()
        self._kick()

    async def commit(
        self, change: Change, *, rev: int | None = None, change_id: str | None = None
    ) -> int:
        """Send one update now and return its rev; raises KpkError (e.g. `conflict`).

        After `unavailable`, `internal` or `timeout` the change may have been committed: call
        again with the same `change_id` (and `rev`), and the server answers with the rev it
        was committed as instead of applying it twice."""
        await self.flush()
        change_id = change_id or self._link.next_change_id()
        ack = await self._link.request(
            Event.UPDATE, update_payload(self.name, change_id, change, rev)
        )
        self._acknowledged(change_id, ack, change)
        return int(ack["rev"])

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every local change is acknowledged."""
        await asyncio.sleep(0)  # text edits are queued by a callback of the loop's (client_text)
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def wait_for(self, condition: Callable[[State], bool], timeout: float = 5.0) -> State:
        """Wait until `condition(state)` holds and return that state."""
        async with asyncio.timeout(timeout):
            while not condition(state := self.state):
                self._changed.clear()
                await self._changed.wait()
        return state

    async def rejoin(self) -> None:
        """Join on the current connection and catch up from `rev`."""
        request: dict[str, JSON] = {"room": self.name}
        if self._meta:
            request["meta"] = self._meta
        self.presence.joining()
        try:
            ack = await self._link.request(Event.JOIN, request)
        except KpkError:
            self.presence.left()
            raise
        self.presence.joined(ack)
        self._joined = True
        self._texts.took_whole(ack)
        applied, needs_sync = self._state.joined(int(ack["rev"]), dict(ack["state"]), _tag_of(ack))
        self._applied(applied)
        if needs_sync:
            await self.sync()  # also settles a change in flight whose ack was lost
        self._kick()

    async def sync(self) -> None:
        async with self._syncing:
            request: dict[str, JSON] = {"room": self.name, "since": self.rev}
            if self.tag is not None:
                request["tag"] = self.tag  # the server answers with the whole state if our
                # history is not the room's (Redis lost data and moved on)
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
        self._joined = False
        self.presence.left()

    def reconnected(self) -> None:
        self._spawn_resume(self.rejoin, restart=True)

    def close(self) -> None:
        self._closed = True
        for task in (self._sender, self._resumer):
            if task is not None:
                task.cancel()

    def _acknowledged(
        self, change_id: str, ack: Mapping[str, JSON], change: Change | None = None
    ) -> None:
        text = ack.get("text")  # the server's edits made of our sets of texts
        self._texts.took(text if isinstance(text, dict) else {})
        rev, tag = int(ack["rev"]), _tag_of(ack)
        self._applied(self._state.acknowledged(change_id, rev, tag, change=change))
        if self._state.own:  # revs before ours are missing: they should be on their way
            asyncio.get_running_loop().call_later(_GAP_WAIT, self._check_gap, self.rev)

    def _check_gap(self, rev: int) -> None:
        state = self._state
        if not self._closed and state.own and state.rev == rev and not state.in_flight:
            self._spawn_resume(self.sync)

    def _applied(self, changes: list[RoomChange]) -> None:
        """Tell the listeners about changes of others that RoomState just applied."""
        for change in changes:
            self._texts.took(change.change.text)
            for listener in list(self._listeners):
                try:
                    listener(self, change)
                except Exception:  # one broken listener must not stop the room
                    log.exception("room %r: a change listener failed", self.name)
        self._changed.set()

    def _kick(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_all())

    async def _send_all(self) -> None:
        while not self._closed and self._joined and self._link.connected:
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
            self._acknowledged(entry.id, ack)
        if not self.has_unsent:
            self._idle.set()

    async def _refused(self, change_id: str, exc: KpkError) -> bool:
        """Handle a refused update; True to go on sending now."""
        self.last_error = exc
        if not is_retryable(exc.code):
            log.error("room %r: change dropped, the server refused it: %s", self.name, exc)
            self._state.drop(change_id)
            self._changed.set()
            return True
        if exc.code == "disconnected":
            return False  # kept in flight; settled by the sync after reconnecting
        if exc.code == "not_joined":  # the server forgot this connection's rooms
            self._joined = False
            self._spawn_resume(self.rejoin, restart=True)
            return False
        # unavailable, internal, timeout or rate_limited: send the same change again, with the
        # same id, so if it was committed after all the server answers `duplicate` instead.
        await asyncio.sleep(retry_delay(exc, self._send_backoff.next_delay()))
        return True

    def _spawn_resume(self, step: Callable[[], Awaitable[None]], *, restart: bool = False) -> None:
        """Run `step` (rejoin or sync) in the background, retrying while connected."""

        async def run() -> None:
            backoff = Backoff()
            while not self._closed and self._link.connected:
                try:
                    await step()
                    break
                except KpkError as exc:
                    self.last_error = exc
                    delay = retry_delay(exc, backoff.next_delay())
                    log.warning("room %r: %s; retrying in %.1f s", self.name, exc, delay)
                    await asyncio.sleep(delay)
            self._kick()

        running = self._resumer is not None and not self._resumer.done()
        if running and not restart:
            return
        if running and self._resumer is not None:
            self._resumer.cancel()
        self._resumer = asyncio.create_task(run())


def _tag_of(ack: Mapping[str, JSON]) -> str | None:
    tag = ack.get("tag")
    return tag if isinstance(tag, str) else None
