"""One room as the Python client sees it: the confirmed state and the local changes on top.

`confirmed` is the state at `rev` as the server has it. Incoming updates and this client's
own acknowledged commits are applied to it strictly in rev order; an update further ahead is
held while an ack of ours may still fill the gap, and otherwise triggers a sync. Local
changes wait in `pending` (merged) and go out one update at a time.
"""

import asyncio
import copy
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from kpk_io.change import JSON, Change, CommittedChange, State
from kpk_io.client_presence import Presence
from kpk_io.presence import Member
from kpk_io.protocol import Event

log = logging.getLogger(__name__)

_RETRY_DELAY = 0.5  # the first retry of a refused request; each next one waits twice as long
_RETRY_DELAY_MAX = 5.0
_GAP_WAIT = 1.0  # how long a missing rev may take to arrive before a sync
# Failures after which the same change may still succeed; after any other it is dropped.
_TRANSIENT = {
    "unavailable", "internal", "disconnected", "timeout", "not_joined", "rate_limited"
}


class KpkError(Exception):
    """A request the server refused; `code` is one of the protocol's error codes, or
    `disconnected` / `timeout` when no answer came."""

    def __init__(self, code: str, message: str, ack: Mapping[str, JSON] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ack = dict(ack or {})


class RoomLink(Protocol):
    @property
    def connected(self) -> bool: ...

    async def request(self, event: Event, payload: dict[str, JSON]) -> dict[str, JSON]: ...

    def next_change_id(self) -> str: ...


@dataclass(frozen=True)
class RoomChange(CommittedChange):
    """What `on_change` listeners receive: a change another member made, as committed.

    `reset` is True when the server sent the whole state instead (it restarted empty, its
    store went back in time, or this client was away longer than the room's history): then
    `change` replaces every field, and `id` and `origin` are None.
    """

    reset: bool = False


Listener = Callable[["Room", RoomChange], None]


class Backoff:
    """Delays between retries: doubling from `first` up to `cap`, each one drawn at random
    from its upper half, so clients refused together do not all come back together."""

    def __init__(self, first: float = _RETRY_DELAY, cap: float = _RETRY_DELAY_MAX) -> None:
        self._first = first
        self._cap = cap
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._cap, self._first * 2 ** min(self._attempt, 32))
        self._attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._attempt = 0


class Room:
    def __init__(self, name: str, link: RoomLink) -> None:
        self.name = name
        self._link = link
        self._confirmed: State = {}
        self.rev = 0
        self.tag: str | None = None  # of the commit that made `rev` (see CommittedChange)
        # Our own acknowledged changes not yet in `confirmed`, by rev, with their tags.
        self._own: dict[int, tuple[Change, str | None]] = {}
        self._held: dict[int, CommittedChange] = {}
        self._in_flight: tuple[str, Change] | None = None
        self._pending: Change | None = None
        self._joined = False
        self._joined_before = False
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

    @property
    def state(self) -> State:
        """The state as this client sees it: confirmed, then its own changes on top."""
        view = copy.deepcopy(self._confirmed)
        for rev in sorted(self._own):
            self._own[rev][0].apply_to(view)
        for change in (self._in_flight[1] if self._in_flight else None, self._pending):
            if change is not None:
                change.apply_to(view)
        return view

    @property
    def has_unsent(self) -> bool:
        return self._in_flight is not None or self._pending is not None

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
        self.update(Change({field: value}))

    def unset(self, field: str) -> None:
        self.update(Change(unset=(field,)))

    def replace(self, state: Mapping[str, JSON]) -> None:
        self.update(Change(dict(state), replace=True))

    def update(self, change: Change) -> None:
        """Apply a local change now; it is sent (merged with others) as soon as possible."""
        self._pending = change if self._pending is None else _merge(self._pending, change)
        self._idle.clear()
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
        ack = await self._link.request(Event.UPDATE, _payload(self.name, change, change_id, rev))
        self._acknowledged(int(ack["rev"]), change, _tag_of(ack))
        return int(ack["rev"])

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every local change is acknowledged."""
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
        first = not self._joined_before
        self._joined = self._joined_before = True
        if first or int(ack["rev"]) < self.rev:
            # Behind us only if the server lost data: start over from what it has now.
            self._reset(int(ack["rev"]), dict(ack["state"]), _tag_of(ack))
        elif (int(ack["rev"]), _tag_of(ack)) != (self.rev, self.tag):
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
                self._reset(int(ack["rev"]), dict(ack["state"]), _tag_of(ack))
                return
            for body in ack["changes"]:
                self.remote(CommittedChange.from_wire(self.name, body), sync=False)

    def remote(self, committed: CommittedChange, *, sync: bool = True) -> None:
        """An update from the server (or from a sync result)."""
        if committed.rev <= self.rev:
            return
        if self._in_flight is not None and committed.id == self._in_flight[0]:
            self._in_flight = None  # our change, whose ack was lost
            self._own[committed.rev] = (committed.change, committed.tag)
        else:
            self._held[committed.rev] = committed
        self._advance()
        if sync and self._held and self._in_flight is None:
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

    def _acknowledged(self, rev: int, change: Change, tag: str | None) -> None:
        if rev > self.rev:
            self._own[rev] = (change, tag)
        self._advance()
        if self._own:  # revs before ours are missing: they should be on their way
            asyncio.get_running_loop().call_later(_GAP_WAIT, self._check_gap, self.rev)

    def _check_gap(self, rev: int) -> None:
        if not self._closed and self._own and self.rev == rev and self._in_flight is None:
            self._spawn_resume(self.sync)

    def _advance(self) -> None:
        """Apply to `confirmed` everything now contiguous with `rev`."""
        while True:
            following = self.rev + 1
            if following in self._held:
                committed = self._held.pop(following)
                mine = self._own.pop(following, None) is not None  # a sync replaying ours
                committed.change.apply_to(self._confirmed)
                self.tag = committed.tag
                if not mine:
                    self._notify(RoomChange(**vars(committed)))
            elif following in self._own:
                change, self.tag = self._own.pop(following)
                change.apply_to(self._confirmed)
            else:
                break
            self.rev = following
        self._changed.set()

    def _reset(self, rev: int, state: State, tag: str | None) -> None:
        if rev < self.rev or (rev == self.rev and tag != self.tag):
            # The server lost history (Redis failover, restored backup): the revs past its
            # rev will be handed out again, to other changes.
            self._own, self._held = {}, {}
        self._confirmed, self.rev, self.tag = state, rev, tag
        self._own = {r: c for r, c in self._own.items() if r > rev}
        self._held = {r: c for r, c in self._held.items() if r > rev}
        whole = Change(copy.deepcopy(state), replace=True)
        self._notify(RoomChange(self.name, rev, whole, tag=tag, reset=True))
        self._advance()

    def _notify(self, change: RoomChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(self, change)
            except Exception:  # one broken listener must not stop the room
                log.exception("room %r: a change listener failed", self.name)

    def _kick(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_all())

    async def _send_all(self) -> None:
        while not self._closed and self._joined and self._link.connected:
            if self._in_flight is None:
                if self._pending is None:
                    break
                self._in_flight = (self._link.next_change_id(), self._pending)
                self._pending = None
            change_id, change = self._in_flight
            try:
                ack = await self._link.request(
                    Event.UPDATE, _payload(self.name, change, change_id, None)
                )
            except KpkError as exc:
                if not await self._refused(exc):
                    return
                continue
            self._send_backoff.reset()
            if self._in_flight is not None and self._in_flight[0] == change_id:
                self._in_flight = None
                self._acknowledged(int(ack["rev"]), change, _tag_of(ack))
        if not self.has_unsent:
            self._idle.set()

    async def _refused(self, exc: KpkError) -> bool:
        """Handle a refused update; True to go on sending now."""
        self.last_error = exc
        if exc.code not in _TRANSIENT:
            log.error("room %r: change dropped, the server refused it: %s", self.name, exc)
            self._in_flight = None
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
        await asyncio.sleep(_retry_delay(exc, self._send_backoff.next_delay()))
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
                    delay = _retry_delay(exc, backoff.next_delay())
                    log.warning("room %r: %s; retrying in %.1f s", self.name, exc, delay)
                    await asyncio.sleep(delay)
            self._kick()

        running = self._resumer is not None and not self._resumer.done()
        if running and not restart:
            return
        if running and self._resumer is not None:
            self._resumer.cancel()
        self._resumer = asyncio.create_task(run())


def _retry_delay(exc: KpkError, delay: float) -> float:
    """Seconds to wait before trying again: `delay`, or what a rate_limited answer asks."""
    retry_after = exc.ack.get("retry_after")
    if exc.code == "rate_limited" and isinstance(retry_after, int | float):
        return max(0.0, retry_after / 1000)
    return delay


def _merge(first: Change, then: Change) -> Change:
    """One change with the effect of `first` followed by `then`."""
    if then.replace:
        return then
    fields = {k: v for k, v in first.set.items() if k not in then.unset}
    fields.update(then.set)
    unset = tuple(n for n in first.unset if n not in then.set) + tuple(
        n for n in then.unset if n not in first.unset
    )
    return Change(fields, () if first.replace else unset, first.replace)


def _payload(room: str, change: Change, change_id: str, rev: int | None) -> dict[str, JSON]:
    body: dict[str, JSON] = {"room": room, "id": change_id}
    if change.set or not (change.unset or change.replace):
        body["set"] = dict(change.set)
    if change.unset:
        body["unset"] = list(change.unset)
    if change.replace:
        body["replace"] = True
    if rev is not None:
        body["rev"] = rev
    return body


def _tag_of(ack: Mapping[str, JSON]) -> str | None:
    tag = ack.get("tag")
    return tag if isinstance(tag, str) else None
