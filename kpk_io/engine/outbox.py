"""Delivery (`Outbox`), never awaiting a send.

A Socket.IO emit awaits engineio's `AsyncSocket.send`, which first runs `check_ping_timeout`:
for a client whose pong is overdue that closes the socket and runs the server's disconnect
handler inline, inside the emit. A caller holding a turn that the disconnect handler needs (a
room's hub lane: the handler leaves the rooms) would wait on itself. So the outbox never
awaits a send: it encodes the event once and puts the same Engine.IO packet on each
recipient's queue with `put_nowait`, skipping closing and closed sockets. That is the very
queue `send` uses, so each connection's packets keep their order; the queue is the writer's
only input, so one recipient never waits on another. Timed-out clients are still found and
closed by engineio's own service task and read timeout. Where the internals are not what
this module expects (a socket without such a queue, an encoding that is not one text
packet), it falls back to the public `sio.emit`, in a task of its own that no caller awaits.

Relies on: `sio.eio.sockets`; an `AsyncSocket`'s `queue` (unbounded: `maxsize` 0), and its
`closing` and `closed` flags; and what kpk_io/engine/frames.py relies on for direct writes.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import socketio
from socketio import packet as sio_packet

from kpk_io.engine.frames import UNBOUNDED, Message, buffered, write_now
from kpk_io.engine.packets import NAMESPACE

log = logging.getLogger(__name__)

_DRAIN_CHECK = 0.25  # seconds between checks of the members held back past the cap
_DRAINED = 64 * 1024  # bytes buffered at most for a held member to count as drained


class Outbox:
    """Hands events to this node's sockets without ever awaiting a send."""

    def __init__(
        self, sio: socketio.AsyncServer, max_buffered: int = 1 << 20,
        on_drained: Callable[[str, str], None] | None = None,
    ) -> None:
        self._sio = sio
        self._fallbacks: set[asyncio.Task[None]] = set()
        self.direct = 0  # deliveries written straight to a WebSocket transport (a metric)
        self.held_back = 0  # deliveries not sent to a member past the cap (a metric)
        self._max_buffered = max_buffered
        self._on_drained = on_drained
        self._held: dict[tuple[str, str], str] = {}  # (sid, room) -> eio_sid, past the cap
        self._catching_up: set[tuple[str, str]] = set()  # held, drained, catch-up on its way
        self._watch: asyncio.TimerHandle | None = None

    def post(self, event: str, data: object, room: str, skip_sid: str | None = None) -> int:
        """Send `event` to every local member of `room` except `skip_sid`; return how many
        it was sent to. Never awaits, so it never runs a disconnect handler."""
        recipients = [
            (sid, eio_sid)
            for sid, eio_sid in self._sio.manager.get_participants(NAMESPACE, room)
            if sid != skip_sid
        ]
        encoded = self._sio.packet_class(
            sio_packet.EVENT, namespace=NAMESPACE, data=[event, data]
        ).encode()
        # ignore_queue: to this node's socket only, never through AsyncRedisManager's channel.
        emit = partial(self._sio.emit, event, data, ignore_queue=True)
        if not isinstance(encoded, str):  # not one text packet: leave it to python-socketio
            for sid, _ in recipients:
                self._in_background(partial(emit, to=sid))
            return len(recipients)
        message = Message(encoded)
        held, cap = self._held, self._max_buffered
        sockets = getattr(self._sio.eio, "sockets", None)
        sockets_get = sockets.get if isinstance(sockets, dict) else None
        direct = 0
        for sid, eio_sid in recipients:
            if held and (sid, room) in held:
                self.held_back += 1
                continue
            try:
                # The common case first: an idle WebSocket, written to at once.
                socket = sockets_get(eio_sid) if sockets_get is not None else None
                if socket is not None and not socket.closing and not socket.closed and \
                        write_now(socket, socket.queue, message, cap):
                    direct += 1
                    continue
                sent = self._send(eio_sid, message, (sid, room))
            except Exception:  # one recipient's trouble must not cost the others the event
                log.exception("queueing an event failed; sending it the public way")
                sent = False
            if not sent:
                self._in_background(partial(emit, to=sid))
        self.direct += direct
        return len(recipients)

    def send_to(self, sid: str, event: str, data: object, room: str) -> None:
        """Send `event` to `sid` alone whatever it has buffered, and deliver `room` to it
        again from here on (the catch-up of a member that was past the cap)."""
        self.release(sid, room)
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        encoded = self._sio.packet_class(
            sio_packet.EVENT, namespace=NAMESPACE, data=[event, data]
        ).encode()
        if eio_sid is None or not isinstance(encoded, str) or not self._send(
            eio_sid, Message(encoded), None
        ):
            self._in_background(partial(self._sio.emit, event, data, to=sid,
                                        ignore_queue=True))

    def release(self, sid: str, room: str) -> None:
        """Deliver `room` to `sid` again (it left the room, or got its catch-up)."""
        self._held.pop((sid, room), None)
        self._catching_up.discard((sid, room))

    def _send(self, eio_sid: str, message: "Message", capped: tuple[str, str] | None) -> bool:
        """Write `message` to the socket's WebSocket at once when its writer is idle, else
        put it on the socket's send queue; False when neither is possible here. With
        `capped` (sid, room), a socket past the cap gets nothing more of that room until
        it has drained (then `on_drained` sends it the room's whole state)."""
        sockets = getattr(self._sio.eio, "sockets", None)
        if not isinstance(sockets, dict):
            return False
        socket = sockets.get(eio_sid)
        if socket is None or socket.closing or socket.closed:
            return True  # gone or going away: its disconnect handler runs elsewhere
        queue = getattr(socket, "queue", None)
        if not isinstance(queue, asyncio.Queue) or queue.maxsize != 0:
            return False
        if capped is not None and buffered(socket, queue) > self._max_buffered:
            self._hold(capped, eio_sid)
            return True
        if write_now(socket, queue, message, UNBOUNDED):  # the cap was checked above
            self.direct += 1
        else:
            queue.put_nowait(message.packet)
        return True

    def _hold(self, member: tuple[str, str], eio_sid: str) -> None:
        log.warning("a member of %r reads slower than the room changes: holding its changes "
                    "back until it has read what is buffered", member[1])
        self._held[member] = eio_sid
        self.held_back += 1
        if self._watch is None:
            self._watch = asyncio.get_running_loop().call_later(_DRAIN_CHECK, self._check)

    def _check(self) -> None:
        """Every held member whose connection has drained gets its catch-up; one that is
        gone is forgotten."""
        self._watch = None
        sockets = self._sio.eio.sockets
        for member, eio_sid in list(self._held.items()):
            socket = sockets.get(eio_sid)
            if socket is None or socket.closing or socket.closed:
                self.release(*member)
            elif member in self._catching_up or self._on_drained is None:
                continue
            elif buffered(socket, socket.queue) <= _DRAINED:
                self._catching_up.add(member)
                self._on_drained(*member)  # which ends with send_to or release
        if self._held:
            self._watch = asyncio.get_running_loop().call_later(_DRAIN_CHECK, self._check)

    def _in_background(self, send: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # Tasks start in creation order, so one connection's fallback sends keep their order.
        task = asyncio.create_task(send())
        self._fallbacks.add(task)
        task.add_done_callback(self._fallbacks.discard)

