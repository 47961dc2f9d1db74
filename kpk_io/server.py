"""The Socket.IO server: builds the AsyncServer and wires each event to its handler."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from kpk_io.access import AccessControl
from kpk_io.broadcast import Broadcaster, socketio_channel
from kpk_io.change import CommittedChange
from kpk_io.config import Settings
from kpk_io.engine import (
    CATCH_ALL,
    NAMESPACE,
    Outbox,
    RelayManager,
    Server,
    drop_transport,
    slow_consumers,
)
from kpk_io.handlers import Handlers
from kpk_io.hub import Hub
from kpk_io.identity import TokenVerifier
from kpk_io.metrics import SLOW_CONSUMER_PACKETS, Metrics
from kpk_io.presence import PresenceStore
from kpk_io.protocol import Event
from kpk_io.rooms import room_of_sio_room, sio_room
from kpk_io.roster import Roster
from kpk_io.store.base import StateStore

log = logging.getLogger(__name__)


class SocketMembers:
    """The hub's view of this process's sockets."""

    def __init__(self, sio: Server, metrics: Metrics, max_buffered: int) -> None:
        self._sio = sio
        self._outbox = Outbox(sio, max_buffered, self._drained)
        self._metrics = metrics
        self.on_drained: Callable[[str, str], None] | None = None  # the hub's catch_up_member

    def _drained(self, sid: str, name: str) -> None:
        room = room_of_sio_room(name)
        if self.on_drained is not None and room is not None:
            self.on_drained(sid, room)
        else:
            self._outbox.release(sid, name)

    async def enter(self, sid: str, room: str) -> None:
        if self._sio.manager.is_connected(sid, NAMESPACE):  # else it is closing: the joiner
            await self._sio.enter_room(sid, sio_room(room))  # sees that and leaves again

    async def leave(self, sid: str, room: str) -> None:
        # With AsyncRedisManager, leaving a room for a sid that is not (or no longer)
        # connected here is published to the other nodes: never from a lane. python-socketio
        # clears a closed connection's rooms itself.
        self._outbox.release(sid, sio_room(room))
        if self._sio.manager.is_connected(sid, NAMESPACE):
            await self._sio.leave_room(sid, sio_room(room))

    async def resync(self, room: str) -> None:
        for sid, eio_sid in list(self._sio.manager.get_participants(NAMESPACE, sio_room(room))):
            log.warning("dropping %s so that it joins %r again", sid, room)
            await drop_transport(self._sio, eio_sid)

    def deliver(self, committed: CommittedChange) -> None:
        recipients = self._outbox.post(
            Event.UPDATE.value, committed.to_wire(), sio_room(committed.room),
            skip_sid=committed.origin,
        )
        if recipients:
            self._metrics.deliveries.inc(recipients)

    def send_whole(self, sid: str, committed: CommittedChange) -> None:
        self._outbox.send_to(sid, Event.UPDATE.value, committed.to_wire(), sio_room(committed.room))
        self._metrics.deliveries.inc()

    def release(self, sid: str, room: str) -> None:
        self._outbox.release(sid, sio_room(room))


def client_manager(settings: Settings) -> socketio.AsyncManager:
    """python-socketio's manager: with Redis, AsyncRedisManager on the channel
    `<key prefix>socketio`, which carries presence events and signals (and what outside
    emitters send) to every node. Updates never go through it: the store's commit script
    publishes each change on its room's own channel and each node's hub relays it to its
    local members in rev order (see hub.py), through the Outbox, which posts to this node's
    sockets only."""
    if settings.redis_url is None:
        return socketio.AsyncManager()
    # A publish that Redis does not answer fails after this (pub/sub reads block as they
    # should: redis-py ignores socket_timeout for them), once: redis-py's own retries would
    # make it wait several timeouts (RelayManager retries a lost connection itself).
    options = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0,
               "retry": Retry(NoBackoff(), 0)}
    return RelayManager(
        settings.redis_url, channel=socketio_channel(settings.key_prefix), redis_options=options
    )


def build_server(
    settings: Settings, store: StateStore, presence: PresenceStore, metrics: Metrics,
    verifier: TokenVerifier | None,
) -> tuple[Server, Hub, Handlers, Roster]:
    sio = Server(
        ws_compression=settings.ws_compression,
        client_manager=client_manager(settings),
        async_mode="aiohttp",
        cors_allowed_origins=list(settings.cors_origins) or None,
        # Per message, for WebSocket and polling alike: a larger one closes that connection.
        max_http_buffer_size=settings.max_payload,
        logger=False,
        engineio_logger=False,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
    )
    sockets = SocketMembers(sio, metrics, settings.max_buffered_bytes)
    hub = Hub(store, sockets)
    sockets.on_drained = hub.catch_up_member
    metrics.track_rooms(lambda: hub.room_count)
    metrics.track_gaps_filled(lambda: hub.catch_ups)
    metrics.track_slow_consumers(lambda: slow_consumers(sio, SLOW_CONSUMER_PACKETS))

    async def expire(sid: str) -> None:
        eio_sid = sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        if eio_sid is not None:
            await drop_transport(sio, eio_sid)

    access = AccessControl(verifier, expire)
    relay = sio.manager if isinstance(sio.manager, RelayManager) else None
    broadcaster = Broadcaster(Outbox(sio), relay)
    roster = Roster(presence, broadcaster, settings.presence_ttl)
    metrics.track_relay_dropped(lambda: broadcaster.dropped)
    metrics.track_presence_members(lambda: roster.member_count)
    handlers = Handlers(store, hub, metrics, settings, access, roster=roster)
    # `connect_error` has no handler here, so a client's event of that name reaches `*`.
    sio.on("connect", _lifecycle(sio, "connect", handlers.connect, handlers.unknown))
    sio.on("disconnect", _lifecycle(sio, "disconnect", handlers.disconnect, handlers.unknown))
    sio.on_request(Event.JOIN.value, handlers.join)
    sio.on_request(Event.LEAVE.value, handlers.leave)
    sio.on_request(Event.UPDATE.value, handlers.update)
    sio.on_request(Event.SYNC.value, handlers.sync)
    sio.on_request(Event.PRESENCE.value, handlers.presence)
    sio.on_request(Event.SIGNAL.value, handlers.signal)
    sio.on(CATCH_ALL, handlers.unknown)
    return sio, hub, handlers, roster


def _lifecycle(
    sio: Server, name: str, handler: Callable[..., Awaitable[Any]],
    unknown: Callable[..., Awaitable[Any]],
) -> Callable[..., Awaitable[Any]]:
    """The handler of a name python-socketio uses for its own events, which a client can
    also send as an ordinary event. python-socketio runs its own `connect` before the socket
    counts as connected and its own `disconnect` after it stopped counting: a socket that
    is connected when the handler runs sent the event itself, and gets `unknown_event`."""

    async def on_event(sid: str, *args: Any) -> Any:
        if sio.manager.is_connected(sid, NAMESPACE):
            return await unknown(name, sid, *args)
        return await handler(sid, *args)

    return on_event
