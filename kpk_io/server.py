"""The Socket.IO server: builds the AsyncServer and wires each event to its handler."""

import logging

import socketio

from kpk_io.change import CommittedChange
from kpk_io.config import Settings
from kpk_io.handlers import Handlers
from kpk_io.hub import Hub
from kpk_io.metrics import SLOW_CONSUMER_PACKETS, Metrics
from kpk_io.protocol import Event
from kpk_io.rooms import sio_room
from kpk_io.store.base import StateStore

log = logging.getLogger(__name__)


class SocketMembers:
    """The hub's view of this process's sockets."""

    def __init__(self, sio: socketio.AsyncServer, metrics: Metrics) -> None:
        self._sio = sio
        self._metrics = metrics

    async def enter(self, sid: str, room: str) -> None:
        await self._sio.enter_room(sid, sio_room(room))

    async def leave(self, sid: str, room: str) -> None:
        await self._sio.leave_room(sid, sio_room(room))

    async def resync(self, room: str) -> None:
        for sid, eio_sid in list(self._sio.manager.get_participants("/", sio_room(room))):
            log.warning("dropping %s so that it joins %r again", sid, room)
            await drop_transport(self._sio, eio_sid)

    async def deliver(self, committed: CommittedChange) -> None:
        name = sio_room(committed.room)
        # The manager's own member map of the room: counted without a second pass over it.
        participants = self._sio.manager.rooms.get("/", {}).get(name, {})
        recipients = len(participants) - (committed.origin in participants)
        await self._sio.emit(
            Event.UPDATE.value, committed.to_wire(), room=name, skip_sid=committed.origin
        )
        self._metrics.deliveries.inc(recipients)


async def drop_transport(sio: socketio.AsyncServer, eio_sid: str) -> None:
    """Close a client's transport so that it reconnects (elsewhere, through the balancer)
    and joins its rooms again.

    Not sio.disconnect() nor engineio's disconnect(): both say goodbye in the protocol (a
    Socket.IO DISCONNECT or an Engine.IO CLOSE packet), after which socket.io-client and
    python-socketio clients deliberately stay away. Aborting the Engine.IO socket and waking
    its writer closes the WebSocket (or answers the pending poll) without a goodbye.
    """
    socket = sio.eio.sockets.get(eio_sid)
    if socket is not None:
        await socket.close(wait=False, abort=True)
        socket.queue.put_nowait(None)


def slow_consumers(sio: socketio.AsyncServer) -> int:
    """Connections whose outbound Engine.IO queue holds more than SLOW_CONSUMER_PACKETS
    packets: they read slower than their rooms change (or stopped reading)."""
    return sum(
        1 for socket in list(sio.eio.sockets.values())
        if socket.queue.qsize() > SLOW_CONSUMER_PACKETS
    )


def build_server(
    settings: Settings, store: StateStore, metrics: Metrics
) -> tuple[socketio.AsyncServer, Hub, Handlers]:
    # Updates do not go through a Socket.IO client manager: the store's commit script
    # publishes each change on its room's own channel and each node's hub relays it to its
    # local members in rev order (see hub.py), so the default in-process manager is enough.
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins=list(settings.cors_origins) or None,
        # Per message, for WebSocket and polling alike: a larger one closes that connection.
        max_http_buffer_size=settings.max_payload,
        logger=False,
        engineio_logger=False,
    )
    hub = Hub(store, SocketMembers(sio, metrics))
    metrics.track_rooms(lambda: hub.room_count)
    metrics.track_gaps_filled(lambda: hub.catch_ups)
    metrics.track_slow_consumers(lambda: slow_consumers(sio))
    handlers = Handlers(store, hub, metrics, settings)
    sio.on("connect", handlers.connect)
    sio.on("disconnect", handlers.disconnect)
    sio.on(Event.JOIN.value, handlers.join)
    sio.on(Event.LEAVE.value, handlers.leave)
    sio.on(Event.UPDATE.value, handlers.update)
    sio.on(Event.SYNC.value, handlers.sync)
    sio.on("*", handlers.unknown)
    return sio, hub, handlers
