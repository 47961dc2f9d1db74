"""One joined room of the Python client, as its caller sees it: the state, local edits,
listeners, flush. Like the browser client it rests on a pure RoomState (room_state.py, which
tests/client_vectors.json pins for both clients), and leaves the protocol (join, sync, gaps,
sending with retries) to RoomSync (client_sync.py; room-sync.js in the browser).
"""

import asyncio
import logging
from collections.abc import Callable, Mapping

import pycrdt

from kpk_io.change import JSON, Change, CommittedChange, State, update_payload
from kpk_io.client_error import Backoff, KpkError
from kpk_io.client_presence import Presence, PresenceKind
from kpk_io.client_sync import RoomLink, RoomSync
from kpk_io.client_text import RoomTexts
from kpk_io.presence import Member
from kpk_io.protocol import Event
from kpk_io.room_state import RoomChange, RoomState

__all__ = ["Backoff", "KpkError", "Room", "RoomChange", "RoomLink"]

log = logging.getLogger(__name__)

Listener = Callable[["Room", RoomChange], None]


class Room:
    def __init__(self, name: str, link: RoomLink) -> None:
        self.name = name
        self._link = link
        self._state = RoomState(name)
        self._changed = asyncio.Event()
        self._listeners: list[Listener] = []
        # Who else is here, and the signals they send (client_presence.py).
        self.presence = Presence(name)
        self._meta: dict[str, JSON] = {}
        self._texts = RoomTexts(self.update, self._state.forget_text)
        self._sync = RoomSync(
            name, link, self._state, self.presence, applied=self._applied,
            texts=self._texts, meta=lambda: self._meta,
        )

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
    def last_error(self) -> KpkError | None:
        """The last refusal or failure this room met, if any."""
        return self._sync.last_error

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
        if self._sync.joined and self._link.connected:
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
        self._texts.removed((field,))
        self.update(Change(unset=(field,)))

    def replace(self, state: Mapping[str, JSON]) -> None:
        self._texts.removed(tuple(name for name in self._texts.bound if name not in state))
        self.update(Change(dict(state), replace=True))

    def update(self, change: Change) -> None:
        """Apply a local change now; it is sent (merged with others) as soon as possible."""
        self._state.edit(change)
        self._changed.set()
        self._sync.edited()

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
        self._sync.acknowledged(change_id, ack, change)
        return int(ack["rev"])

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every local change is acknowledged."""
        await asyncio.sleep(0)  # text edits are queued by a callback of the loop's (client_text)
        async with asyncio.timeout(timeout):
            await self._sync.idle.wait()

    async def wait_for(self, condition: Callable[[State], bool], timeout: float = 5.0) -> State:
        """Wait until `condition(state)` holds and return that state."""
        async with asyncio.timeout(timeout):
            while not condition(state := self.state):
                self._changed.clear()
                await self._changed.wait()
        return state

    # Called by the client (client.py).

    async def rejoin(self) -> None:
        """Join on the current connection and catch up from `rev`."""
        await self._sync.rejoin()

    async def sync(self) -> None:
        await self._sync.sync()

    def remote(self, committed: CommittedChange, *, sync: bool = True) -> None:
        """An update from the server (or from a sync result)."""
        self._sync.remote(committed, sync=sync)

    def disconnected(self) -> None:
        self._sync.disconnected()

    def reconnected(self) -> None:
        self._sync.reconnected()

    def close(self) -> None:
        self._sync.close()

    def _applied(self, changes: list[RoomChange]) -> None:
        """Tell the listeners about changes of others that RoomState just applied."""
        for change in changes:
            if not change.reset:  # a whole state reached the texts already (took_whole)
                self._texts.took_change(change.change)
            for listener in list(self._listeners):
                try:
                    listener(self, change)
                except Exception:  # one broken listener must not stop the room
                    log.exception("room %r: a change listener failed", self.name)
        self._changed.set()
