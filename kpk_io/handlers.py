"""One short coroutine per event: parse, check membership, store, answer.

Every request gets an ack: python-socketio sends none when a handler raises, so failures are
turned into `{ok: false, error, message}` here. Each request waits for its connection's turn
(kpk_io/turn.py) first thing: one connection's updates commit in the order it sent them,
while its signals and presence requests never wait behind them.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from operator import attrgetter

from kpk_io.access import AccessControl
from kpk_io.change import JSON
from kpk_io.config import Settings
from kpk_io.connections import Connection, Connections
from kpk_io.hub import Hub
from kpk_io.limits import Limits
from kpk_io.logs import bind_request
from kpk_io.metrics import Metrics, outcome_of
from kpk_io.protocol import (
    RESERVED_EVENTS,
    ErrorCode,
    Event,
    ProtocolError,
    dedupe_key,
    ok,
    parse_join_meta,
    parse_presence,
    parse_room_request,
    parse_signal,
    parse_sync,
)
from kpk_io.rate import TokenBucket
from kpk_io.roster import Roster
from kpk_io.store.base import Conflict, Duplicate, StateStore, StoreUnavailable, TooLarge
from kpk_io.text_commit import commit_change
from kpk_io.update_request import parse_update

log = logging.getLogger(__name__)

Ack = dict[str, JSON]
# A store that does not answer may still have run the commit (its reply, not the command,
# was lost: a stalled Redis runs the queued script once it resumes), so an update's outcome
# is unknown and only a re-send with the same id settles it.
_UNREACHABLE = {
    "": "the store cannot be reached",
    Event.UPDATE: "the store did not answer: the update may or may not have been committed; "
    "send it again with the same id (a duplicate is answered, not applied)",
}
Handler = Callable[[str, object], Awaitable[Ack]]


Bucket = Callable[[Connection], TokenBucket]
_UPDATES: Bucket = attrgetter("updates")
_REQUESTS: Bucket = attrgetter("requests")
_SIGNALS: Bucket = attrgetter("signals")


class Handlers:
    def __init__(
        self, store: StateStore, hub: Hub, metrics: Metrics, settings: Settings,
        access: AccessControl, *, roster: Roster,
    ) -> None:
        self._store = store
        self._roster = roster
        self._access = access
        self._max_rooms = settings.max_rooms
        self._limits = Limits.from_settings(settings)
        self._hub = hub
        self._metrics = metrics
        self._connections = Connections(hub, metrics, settings, access, roster)
        self.connect = self._connections.connect
        self.disconnect = self._connections.disconnect
        self._draining = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.join = self._answering(Event.JOIN, self._join, _REQUESTS)
        self.leave = self._answering(Event.LEAVE, self._leave, _REQUESTS)
        self.update = self._answering(Event.UPDATE, self._update, _UPDATES)
        self.sync = self._answering(Event.SYNC, self._sync, _REQUESTS)
        self.presence = self._answering(Event.PRESENCE, self._presence, _REQUESTS)
        self.signal = self._answering(Event.SIGNAL, self._signal, _SIGNALS)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def drain(self) -> None:
        """Refuse new requests and return when those already running have been answered."""
        self._draining = True
        await self._idle.wait()

    async def unknown(self, event: object, sid: str, *args: object) -> Ack:
        connection = self._connections.get(sid)
        limited = None if connection is None else _rate_limited(connection.requests)
        name = str(event)[:64]
        reserved = name in RESERVED_EVENTS
        message = f"{name!r} is reserved, not a request" if reserved else f"no event named {name!r}"
        return limited or _error(ErrorCode.UNKNOWN_EVENT, message)

    def _answering(
        self, event: Event, body: Handler, bucket: Bucket
    ) -> Callable[..., Awaitable[Ack]]:
        """The handler of `event`: refusals first (draining, closed, rate-limited), then the
        connection's turn, then `body`, whose failures become error acks; every request is
        counted. (One coroutine, not one per step: it runs for every request.)"""
        metrics = self._metrics
        connections = self._connections
        counted_update = event == Event.UPDATE

        @wraps(body)
        async def handler(sid: str, *args: object) -> Ack:
            started, code = time.perf_counter(), "internal"  # if it raised past the except
            try:
                connection = connections.get(sid)
                if self._draining:
                    ack = _error(ErrorCode.UNAVAILABLE, "the server is shutting down")
                elif connection is None:  # the connection closed while this event waited
                    ack = _error(ErrorCode.UNAVAILABLE, "the connection is closing")
                else:
                    # Taken on arrival, before queueing for the turn: a flood is refused at once.
                    ack = _rate_limited(bucket(connection)) or await self._in_turn(
                        event, body, connection, sid, args[0] if args else None)
                code = outcome_of(ack)
            finally:
                metrics.answered(event, code, time.perf_counter() - started)
            if counted_update:
                metrics.count_update(ack)
            return ack

        return handler

    async def _in_turn(
        self, event: Event, body: Handler, connection: Connection, sid: str, data: object
    ) -> Ack:
        self._in_flight += 1
        self._idle.clear()
        try:
            async with connection.turn.take(event):
                if self._connections.get(sid) is not connection:  # closed while queued
                    return _error(ErrorCode.UNAVAILABLE, "the connection is closing")
                room = data.get("room") if isinstance(data, dict) else None
                with bind_request(sid, room if isinstance(room, str) else None):
                    try:
                        return await body(sid, data)
                    except ProtocolError as exc:
                        log.info("%s refused: %s %s", event, exc.code, exc.message)
                        return exc.to_ack()
                    except StoreUnavailable as exc:
                        # An outage, not a bug: clients retry with backoff, /readyz and the
                        # kpk_io_store_up gauge report it.
                        log.warning("%s refused, store unavailable: %s", event, exc)
                        self._metrics.store_up.set(0)
                        return _error(ErrorCode.UNAVAILABLE,
                                      _UNREACHABLE.get(event, _UNREACHABLE[""]))
                    except Exception:
                        log.exception("%s failed", event)
                        return _error(ErrorCode.INTERNAL, "internal error")
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _join(self, sid: str, data: object) -> Ack:
        room = parse_room_request(data)
        meta = parse_join_meta(data, self._limits)
        self._access.require_read(sid, room)
        joined = self._hub.rooms_joined(sid)
        if joined >= self._max_rooms and not self._hub.is_member(sid, room):
            message = f"a connection may join at most {self._max_rooms} rooms; leave one first"
            raise ProtocolError(ErrorCode.TOO_MANY_ROOMS, message)
        was_member = self._hub.is_member(sid, room)
        snapshot = await self._hub.join(sid, room)
        if self._connections.get(sid) is None:  # closed while joining: nobody will leave for it
            await self._hub.leave(sid, room)
            raise ProtocolError(ErrorCode.UNAVAILABLE, "the connection is closing")
        try:
            presence = await self._roster.join(sid, room, self._access.by(sid), meta)
        except BaseException:
            if not was_member:  # a refused join changes nothing: no updates, no room counted
                await self._hub.leave(sid, room)
            raise
        if presence is None:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "the connection is closing")
        member, members = presence
        return ok(room=room, rev=snapshot.rev, state=snapshot.state, **_tag(snapshot.tag),
                  **_texts(snapshot.texts), member=member.to_wire(),
                  members=[m.to_wire() for m in members])

    async def _leave(self, sid: str, data: object) -> Ack:
        room = parse_room_request(data)
        await self._hub.leave(sid, room)
        await self._roster.leave(sid, room)
        return ok(room=room)

    async def _update(self, sid: str, data: object) -> Ack:
        request = parse_update(data, self._limits)
        self._require_member(sid, request.room)
        self._access.require_write(sid, request.room)
        started = time.perf_counter()
        result = await commit_change(
            self._store,
            request.room,
            request.change,
            base_rev=request.base_rev,
            change_id=request.id,
            dedupe_key=dedupe_key(self._connections.sender(sid), request.id),
            origin=sid,
            by=self._access.by(sid),
        )
        self._metrics.commit_seconds.observe(time.perf_counter() - started)
        if isinstance(result, Conflict):
            raise ProtocolError(
                ErrorCode.CONFLICT, f"the room is at rev {result.rev}", rev=result.rev
            )
        if isinstance(result, TooLarge):
            raise ProtocolError(ErrorCode.TOO_LARGE, result.message)
        if isinstance(result, Duplicate):
            return ok(room=request.room, rev=result.rev, duplicate=True, **_tag(result.tag))
        # A set of a text became an edit the sender has not seen: it gets it in the ack.
        made = {k: v for k, v in result.change.text.items() if k not in request.change.text}
        return ok(room=request.room, rev=result.rev, **_tag(result.tag),
                  **({"text": made} if made else {}))

    async def _sync(self, sid: str, data: object) -> Ack:
        request = parse_sync(data)
        self._require_member(sid, request.room)
        self._access.require_read(sid, request.room)
        changes = await self._store.changes_since(request.room, request.since, request.tag)
        if changes is None:
            snapshot = await self._store.snapshot(request.room)
            return ok(room=request.room, rev=snapshot.rev, state=snapshot.state,
                      **_tag(snapshot.tag), **_texts(snapshot.texts))
        rev = changes[-1].rev if changes else request.since
        wire = [{k: v for k, v in c.to_wire().items() if k != "room"} for c in changes]
        return ok(room=request.room, rev=rev, changes=wire)

    async def _presence(self, sid: str, data: object) -> Ack:
        request = parse_presence(data, self._limits)
        self._require_member(sid, request.room)
        if await self._roster.set_meta(sid, request.room, request.meta) is None:
            raise ProtocolError(ErrorCode.NOT_JOINED, f"join {request.room!r} again first")
        return ok()

    async def _signal(self, sid: str, data: object) -> Ack:
        request = parse_signal(data, self._limits)
        self._require_member(sid, request.room)  # read-only members may signal too
        self._roster.signal(sid, request.room, request.data)
        return ok()

    def _require_member(self, sid: str, room: str) -> None:
        if not self._hub.is_member(sid, room):
            raise ProtocolError(ErrorCode.NOT_JOINED, f"join {room!r} first")


def _error(code: ErrorCode, message: str) -> Ack:
    return ProtocolError(code, message).to_ack()


def _rate_limited(bucket: TokenBucket) -> Ack | None:
    wait = bucket.take()
    if not wait:
        return None
    message = f"too many requests on this connection; retry in {wait} ms"
    return ProtocolError(ErrorCode.RATE_LIMITED, message, retry_after=wait).to_ack()


def _texts(texts: dict[str, str]) -> dict[str, JSON]:
    """`texts` of a whole state: each text field's merged Yjs document (absent if none)."""
    return {"texts": dict(texts)} if texts else {}


def _tag(tag: str | None) -> dict[str, JSON]:
    return {} if tag is None else {"tag": tag}
