"""The one module of kpk-io that reaches past the public API of python-socketio and
python-engineio. Everything else uses their public API only.

Tested with python-socketio 5.18 and python-engineio 4.15 (pinned below the next minor
release in pyproject.toml); tests/test_engine.py fails loudly when an upgrade changes
anything this module relies on:

- `sio.eio.sockets`: engineio's map of Engine.IO session id to its `AsyncSocket`;
- an `AsyncSocket`'s `queue` (an unbounded `asyncio.Queue` of `engineio.packet.Packet`s that
  the socket's writer, WebSocket or long-polling, sends in order), and its `closing` and
  `closed` flags; a `None` in the queue ends the writer, which closes the transport;
- `socket.close(wait=False, abort=...)`: runs the disconnect handler, then (abort=False)
  queues an Engine.IO CLOSE packet; `queue.qsize()` for the slow-consumer gauge;
- `socketio.AsyncServer._handle_eio_message(eio_sid, data)`, the handler of every incoming
  Engine.IO message, which decodes it with `sio.packet_class` (the public `serializer=`);
- `socketio.AsyncServer._send_packet(eio_sid, packet)`, through which every packet to a
  client goes, CONNECT_ERROR included.

Delivery (`Outbox`), never awaiting a send. A Socket.IO emit awaits engineio's
`AsyncSocket.send`, which first runs `check_ping_timeout`: for a client whose pong is
overdue that closes the socket and runs the server's disconnect handler inline, inside the
emit. A caller holding a turn that the disconnect handler needs (a room's hub lane: the
handler leaves the rooms) would wait on itself. So the outbox never awaits a send: it
encodes the event once and puts the same Engine.IO packet on each recipient's queue with
`put_nowait`, skipping closing and closed sockets. That is the very queue `send` uses, so
each connection's packets keep their order; the queue is the writer's only input, so one
recipient never waits on another. Timed-out clients are still found and closed by engineio's
own service task and read timeout. Where the internals are not what this module expects (a
socket without such a queue, an encoding that is not one text packet), it falls back to the
public `sio.emit`, in a task of its own that no caller awaits.

Relaying (`RelayManager`). python-socketio's AsyncRedisManager hands every message on its
channel to `_handle_emit`, which encodes the packet before it looks for recipients; a node
with no member in the room skips that (`manager.rooms`, the namespace -> room -> members map
python-socketio keeps for each node's own sockets), so such a node does no work per signal
beyond the manager's own decode.

Refusals (`StrictPacket`, `Server`). kpk-io's protocol uses no binary packets, so a packet
announcing attachments, a BINARY_EVENT or BINARY_ACK, or a binary frame is refused before
python-socketio keeps any state for it (it would otherwise keep every later frame of the
connection as an attachment), and the connection is closed. Any other packet kpk-io cannot
read (empty, not JSON, NaN or Infinity, nested past the JSON decoder's recursion limit, an event
with no name or a name that is not a string, a packet type clients do not send) keeps the
connection: python-socketio would drop it without an answer (or, for an event without a
name, fail in a task), so it is refused here and answered with an `invalid_request` ack
whenever its ack id can be read. Frames that are not Engine.IO packets at all (empty, or
not starting with a packet type) never reach this module: python-engineio drops that
WebSocket itself, and its socket is gone at the next ping timeout.

Two events that decode are refused too (`Server._handle_event`), with the connection kept:
one on a namespace the connection has not connected to, which python-socketio drops without
an answer, is answered `invalid_request` on that namespace (the Socket.IO protocol lets an
ACK name any namespace; socket.io-client drops it, as it would not be waiting for one); and
one named `*`, the name python-socketio registers its catch-all handler under, which it
would call as that event's own handler with the arguments shifted (the first data item taken
for the sid), is answered `unknown_event`.
"""

import asyncio
import logging
import re
import struct
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import socketio
from aiohttp import WSMsgType, web
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet

from kpk_io import json_codec
from kpk_io.protocol import ErrorCode, ProtocolError

log = logging.getLogger(__name__)

NAMESPACE = "/"
# The name under which python-socketio registers a catch-all handler; an event a client
# names so is refused (Server._handle_event).
CATCH_ALL = "*"
_DRAIN_CHECK = 0.25  # seconds between checks of the members held back past the cap
_DRAINED = 64 * 1024  # bytes buffered at most for a held member to count as drained
MAX_ATTACHMENTS = 0  # per packet: the protocol has no binary data
# The header of a Socket.IO packet: type, attachments, namespace, ack id (as python-socketio
# reads them), for reading the ack id of a packet whose body cannot be decoded.
_HEADER = re.compile(r"[0-9](?:[0-9]+-)?(?:(/[^,]*),)?([0-9]{1,16})")
# Packet types a client sends; BINARY_* are refused (with the connection) before this.
_FROM_CLIENTS = frozenset({sio_packet.CONNECT, sio_packet.DISCONNECT, sio_packet.EVENT,
                           sio_packet.ACK})


class RefusedPacket(ValueError):
    """An incoming packet kpk-io does not accept.

    `close`: the connection must be closed (its later frames cannot be trusted to line up).
    `ack_id`: the packet's ack id when it could be read, so that a refusal that keeps the
    connection can still be answered.
    """

    def __init__(
        self, reason: str, *, close: bool, ack_id: int | None = None,
        namespace: str | None = None, code: ErrorCode = ErrorCode.INVALID_REQUEST,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.close = close
        self.ack_id = ack_id
        self.namespace = namespace or NAMESPACE


class StrictPacket(sio_packet.Packet):  # type: ignore[misc]
    """python-socketio's packet, decoding only what kpk-io's protocol can carry."""

    json = json_codec  # orjson when installed; refuses NaN and Infinity, which are not JSON

    def __init__(self, *args: Any, encoded_packet: str | bytes | None = None, **kw: Any) -> None:
        # python-socketio decodes only a non-empty packet, and takes an empty one for an
        # event with no data, which then fails in its handler: refuse it here instead.
        if encoded_packet is not None and not encoded_packet:
            raise RefusedPacket("an empty packet", close=False)
        super().__init__(*args, encoded_packet=encoded_packet, **kw)

    def decode(self, encoded_packet: str | bytes) -> int:
        if not isinstance(encoded_packet, str):
            raise RefusedPacket("binary frames are not part of the protocol", close=True)
        if encoded_packet[:1] in (str(sio_packet.BINARY_EVENT), str(sio_packet.BINARY_ACK)):
            raise RefusedPacket("binary packets are not part of the protocol", close=True)
        try:
            attachments: int = super().decode(encoded_packet)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            header = _HEADER.match(encoded_packet)
            raise RefusedPacket(
                f"not a packet kpk-io can read: {str(exc)[:200]}", close=False,
                ack_id=int(header[2]) if header else None, namespace=header and header[1],
            ) from None
        if attachments > MAX_ATTACHMENTS:
            raise RefusedPacket(f"a packet announced {attachments} attachments", close=True)
        problem = self._problem()
        if problem is not None:
            raise RefusedPacket(problem, close=False, ack_id=self.id, namespace=self.namespace)
        return attachments

    def _problem(self) -> str | None:
        if self.packet_type not in _FROM_CLIENTS:
            return f"packet type {self.packet_type} is not one a client sends"
        if self.packet_type == sio_packet.EVENT and not (
            isinstance(self.data, list) and self.data and isinstance(self.data[0], str)
        ):
            return "an event is a list whose first item is the event's name, a string"
        return None


class Server(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's AsyncServer with StrictPacket, closing connections that send a
    packet it refuses."""

    def __init__(self, *, ws_compression: int = 0, **options: Any) -> None:
        super().__init__(serializer=StrictPacket, json=json_codec, **options)
        # engineio looks its WebSocket driver up in this per-server map at every upgrade.
        driver = type("WebSocket", (WebSocketDriver,), {"compress_above": ws_compression})
        self.eio._async = {**self.eio._async, "websocket": driver}

    async def _handle_eio_message(self, eio_sid: str, data: str | bytes) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except RefusedPacket as refused:
            if refused.close:
                log.warning("closing a connection that sent a refused packet: %s",
                            refused.reason)
                await self.close_connection(eio_sid)
            else:
                await self._answer_refused(eio_sid, refused)

    async def _handle_event(
        self, eio_sid: str, namespace: str | None, ack_id: int | None, data: list[Any]
    ) -> None:
        """Refuse, before python-socketio dispatches them, the events it would mishandle:
        one on a namespace this connection is not in (python-socketio drops it without an
        answer) and one named `*` (python-socketio would run the catch-all handler as that
        event's own, shifting its arguments: the data would be taken for the sid)."""
        namespace = namespace or NAMESPACE
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            await self._answer_refused(eio_sid, RefusedPacket(
                f"this connection is not connected to the namespace {namespace}; "
                "connect to / first", close=False, ack_id=ack_id, namespace=namespace))
        elif data[0] == CATCH_ALL:
            await self._answer_refused(eio_sid, RefusedPacket(
                f"no such event: {CATCH_ALL}", close=False, ack_id=ack_id,
                namespace=namespace, code=ErrorCode.UNKNOWN_EVENT))
        else:
            await super()._handle_event(eio_sid, namespace, ack_id, data)

    async def _send_packet(self, eio_sid: str, packet: sio_packet.Packet) -> None:
        if packet.packet_type == sio_packet.CONNECT_ERROR:
            packet.data = connect_error(packet.data)
        await super()._send_packet(eio_sid, packet)

    async def _answer_refused(self, eio_sid: str, refused: RefusedPacket) -> None:
        """Answer a packet that keeps the connection with an error ack (`invalid_request`
        unless the refusal says otherwise), when
        its ack id could be read; a packet without one gets no answer, like any event
        sent without an acknowledgement."""
        log.debug("refused a packet: %s", refused.reason)
        if refused.ack_id is None:
            return
        ack = ProtocolError(refused.code, refused.reason).to_ack()
        answer = self.packet_class(
            sio_packet.ACK, namespace=refused.namespace, id=refused.ack_id, data=[ack]
        )
        await self.eio.send(eio_sid, answer.encode())

    async def close_connection(self, eio_sid: str) -> None:
        """Say goodbye (a Socket.IO DISCONNECT: client libraries do not reconnect after it)
        and close the transport."""
        sid = self.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        if sid is not None and self.manager.is_connected(sid, NAMESPACE):
            await self.disconnect(sid)
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None:
            await socket.close(wait=False, abort=False)  # an Engine.IO CLOSE packet
            socket.queue.put_nowait(None)


class WebSocketDriver(eio_aiohttp.WebSocket):  # type: ignore[misc]
    """python-engineio's aiohttp WebSocket driver, with kpk-io's compression setting, and
    remembering each socket's aiohttp response (`_kpk_ws`) for the Outbox's direct writes.

    aiohttp negotiates permessage-deflate by default and engineio's driver does not turn it
    off: every message was compressed once per recipient, and each connection held a zlib
    context. `compress_above` 0 negotiates none; N > 0 negotiates it and compresses only
    messages longer than N (shorter ones go out as plain frames, as RFC 7692 allows)."""

    compress_above = 0

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        # As engineio's own __call__, with compress= chosen here.
        self._sock = web.WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=self.compress_above > 0
        )
        await self._sock.prepare(environ["aiohttp.request"])
        self.environ = environ
        socket = getattr(self.handler, "__self__", None)
        if isinstance(socket, AsyncSocket):
            socket._kpk_ws = self
        await self.handler(self)
        return self._sock

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, str) and len(message) <= self.compress_above:
            writer: Any = self._sock._writer
            writer._write_websocket_frame(message.encode(), WSMsgType.TEXT, 0)
            # aiohttp's own flow control after a frame (WebSocketWriter.send_frame).
            if writer._output_size > writer._limit:
                writer._output_size = 0
                if writer.protocol._paused:
                    await writer.protocol._drain_helper()
            return
        await super().send(message)


class RelayManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """AsyncRedisManager that skips messages for rooms with no member on this node, and
    publishes to the other nodes without delivering locally (`relay`)."""

    connected: bool  # python-socketio's: whether its Redis client is made

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outage = False  # the last publish failed: said once, not once per event

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        room = message.get("room")
        namespace = message.get("namespace") or NAMESPACE
        if isinstance(room, str) and not self.rooms.get(namespace, {}).get(room):
            return
        await super()._handle_emit(message)

    async def relay(self, event: str, data: object, room: str, skip_sid: str | None) -> bool:
        """Publish `event` to the other nodes only (this node's members got it through the
        Outbox); the message is the one AsyncPubSubManager.emit publishes. False when
        Redis did not take it."""
        message = {"method": "emit", "event": event, "data": [data], "binary": False,
                   "namespace": NAMESPACE, "room": room, "skip_sid": skip_sid,
                   "callback": None, "host_id": self.host_id}
        return await self._publish(message)

    async def _publish(self, data: dict[str, Any]) -> bool:
        # python-socketio's own logs an ERROR line for every event while Redis is away.
        # Retried once for a pooled connection that died (a restarted Redis), but not during
        # a known outage: each try waits out the socket timeout.
        failure: Exception | None = None
        for _ in range(1 if self._outage else 2):
            try:
                if not self.connected:
                    self._redis_connect()
                await self.redis.publish(self.channel, self.json.dumps(data))
            except Exception as exc:
                self.connected = False
                failure = exc
                continue
            if self._outage:
                log.warning("publishing presence and signals to Redis works again")
                self._outage = False
            return True
        if not self._outage:
            log.warning("cannot publish presence and signals to Redis (%s); other nodes miss "
                        "them until it answers (counted in kpk_io_relay_dropped_total)",
                        failure)
            self._outage = True
        return False


def connect_error(data: object) -> dict[str, Any]:
    """A CONNECT_ERROR payload that carries `data: {error, message}`, as every connect_error
    of kpk-io does. Those of kpk-io's own handlers have it already; python-socketio's own
    (a namespace that is not served, a second connect to one, or a refusal by the admin
    namespace) are a bare message, given a code here."""
    if isinstance(data, dict) and isinstance(data.get("data"), dict) and "error" in data["data"]:
        return data
    message = str(data.get("message") if isinstance(data, dict) else data or "refused")
    if message == "Unable to connect":  # python-socketio's words for both namespace cases
        code = ErrorCode.INVALID_REQUEST
        message = "no such namespace, or this connection is in it already: connect once to /"
    else:
        code = ErrorCode.UNAUTHORIZED
    return {"message": message, "data": ProtocolError(code, message).to_data()}


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
        message = _Message(encoded)
        for sid, eio_sid in recipients:
            if (sid, room) in self._held:
                self.held_back += 1
                continue
            try:
                sent = self._send(eio_sid, message, (sid, room))
            except Exception:  # one recipient's trouble must not cost the others the event
                log.exception("queueing an event failed; sending it the public way")
                sent = False
            if not sent:
                self._in_background(partial(emit, to=sid))
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
            eio_sid, _Message(encoded), None
        ):
            self._in_background(partial(self._sio.emit, event, data, to=sid,
                                        ignore_queue=True))

    def release(self, sid: str, room: str) -> None:
        """Deliver `room` to `sid` again (it left the room, or got its catch-up)."""
        self._held.pop((sid, room), None)
        self._catching_up.discard((sid, room))

    def _send(self, eio_sid: str, message: "_Message", capped: tuple[str, str] | None) -> bool:
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
        if capped is not None and _buffered(socket, queue) > self._max_buffered:
            self._hold(capped, eio_sid)
            return True
        transport = _idle_transport(socket, queue, len(message.text))
        if transport is not None:
            transport.write(message.frame)
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
            elif _buffered(socket, socket.queue) <= _DRAINED:
                self._catching_up.add(member)
                self._on_drained(*member)  # which ends with send_to or release
        if self._held:
            self._watch = asyncio.get_running_loop().call_later(_DRAIN_CHECK, self._check)

    def _in_background(self, send: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # Tasks start in creation order, so one connection's fallback sends keep their order.
        task = asyncio.create_task(send())
        self._fallbacks.add(task)
        task.add_done_callback(self._fallbacks.discard)


def _buffered(socket: Any, queue: asyncio.Queue[Any]) -> int:
    """Bytes waiting to be sent to the socket: in its send queue, and in its WebSocket
    transport's buffer (the kernel's socket buffer, bounded by the kernel, not counted)."""
    queued = sum(
        len(packet.data) for packet in getattr(queue, "_queue", ())
        if packet is not None and isinstance(packet.data, str | bytes)
    ) if queue.qsize() else 0
    driver = getattr(socket, "_kpk_ws", None)
    writer = getattr(getattr(driver, "_sock", None), "_writer", None)
    transport = getattr(writer, "transport", None)
    return queued + (transport.get_write_buffer_size() if transport is not None else 0)


class _Message:
    """One event, encoded once for all its recipients: the Engine.IO packet for send queues,
    and its WebSocket frame (built on first use) for direct writes."""

    def __init__(self, encoded: str) -> None:
        self.packet = eio_packet.Packet(eio_packet.MESSAGE, data=encoded)
        self.text: str = self.packet.encode()
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = _text_frame(self.text.encode())
        return self._frame


def _text_frame(payload: bytes) -> bytes:
    """An unmasked, uncompressed, final WebSocket text frame (RFC 6455 5.2), as a server
    sends it."""
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def _idle_transport(socket: Any, queue: asyncio.Queue[Any], size: int) -> Any:
    """The socket's WebSocket transport when a frame written to it now keeps the socket's
    packet order, else None (the caller queues instead).

    That is so only when the socket's WebSocket writer is parked on its empty queue: a
    waiting getter means it has written every packet it took (it takes a batch, writes it,
    then waits again), and none is queued. A polling or upgrading socket, one whose writer
    is busy or waits for the transport to drain, and a message the socket compresses all go
    through the queue."""
    driver = getattr(socket, "_kpk_ws", None)
    if driver is None or not socket.upgraded or socket.upgrading or queue.qsize():
        return None
    if not any(not waiter.done() for waiter in getattr(queue, "_getters", ())):
        return None
    response = driver._sock
    writer = getattr(response, "_writer", None)
    if writer is None or writer.protocol._paused:
        return None
    if response.compress and size > driver.compress_above:
        return None
    transport = writer.transport
    if transport is None or transport.is_closing():
        return None
    return transport


def slow_consumers(sio: socketio.AsyncServer, more_than: int) -> int:
    """Connections whose send queue holds more than `more_than` packets: they read slower
    than their rooms change (or stopped reading)."""
    return sum(1 for socket in list(sio.eio.sockets.values())
               if socket.queue.qsize() > more_than)


def eio_sids(sio: socketio.AsyncServer) -> list[str]:
    """The Engine.IO session ids of this node's connections."""
    return list(sio.eio.sockets)


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
