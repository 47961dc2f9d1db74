"""kpk-io's Socket.IO server (`Server`) and what other modules do to connections.

Relies on: `socketio.AsyncServer._handle_eio_message(eio_sid, data)`, the handler of every
incoming Engine.IO message, which decodes it with `sio.packet_class` (the public
`serializer=`); `socketio.AsyncServer._handle_event(eio_sid, namespace, ack_id, data)`, and
`_handle_event_internal(server, sid, eio_sid, data, namespace, id)`, which runs an event's
handler and sends its ack (started here in a task, as `_handle_event` does; for a handler
registered with `on_request`, `_answer_request` does the same without `_trigger_event`,
unless something replaced `_trigger_event` on the instance, as python-socketio's admin
instrumentation does in its development mode);
`socketio.AsyncServer._send_packet(eio_sid, packet)`, through which every packet to a client
goes, CONNECT_ERROR included (replaced here: an encoded packet that is one text goes to
`sio.eio.send`, or straight to an idle WebSocket as kpk_io/engine/frames.py's `write_now`
allows); `sio.eio._async`, engineio's per-server map in which it looks
its WebSocket driver up at every upgrade; `sio.eio.sockets`, engineio's map of Engine.IO
session id to its `AsyncSocket`, with its `queue` (`qsize()` for the slow-consumer gauge);
`socket.close(wait=False, abort=...)`, which runs the disconnect handler, then (abort=False)
queues an Engine.IO CLOSE packet; a `None` in the queue ends the writer, which closes the
transport; `AsyncServer._engineio_server_class()`, which gives python-socketio its
engineio server (`Engine`, kpk_io/engine/sockets.py).

Two events that decode are refused (`Server._handle_event`), with the connection kept: one
on a namespace the connection has not connected to, which python-socketio drops without an
answer, is answered `invalid_request` on that namespace (the Socket.IO protocol lets an ACK
name any namespace; socket.io-client drops it, as it would not be waiting for one); and one
named `*`, the name python-socketio registers its catch-all handler under, which it would
call as that event's own handler with the arguments shifted (the first data item taken for
the sid), is answered `unknown_event`.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from socketio import packet as sio_packet

from kpk_io import json_codec
from kpk_io.engine.frames import UNBOUNDED, Message, WebSocketDriver, write_now
from kpk_io.engine.packets import NAMESPACE, RefusedPacket, StrictPacket
from kpk_io.engine.sockets import Engine
from kpk_io.protocol import ErrorCode, ProtocolError

log = logging.getLogger(__name__)

# The name under which python-socketio registers a catch-all handler; an event a client
# names so is refused (Server._handle_event).
CATCH_ALL = "*"


class Server(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's AsyncServer with StrictPacket, closing connections that send a
    packet it refuses."""

    def __init__(self, *, ws_compression: int = 0, **options: Any) -> None:
        super().__init__(serializer=StrictPacket, json=json_codec, **options)
        self._event_tasks: set[asyncio.Task[None]] = set()
        self._requests: dict[str, Callable[..., Awaitable[Any]]] = {}  # on_request's
        # engineio looks its WebSocket driver up in this per-server map at every upgrade.
        driver = type("WebSocket", (WebSocketDriver,), {"compress_above": ws_compression})
        self.eio._async = {**self.eio._async, "websocket": driver}

    def _engineio_server_class(self) -> type[Engine]:
        return Engine  # lighter sockets (engine/sockets.py)

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
        elif self.async_handlers:
            # What python-socketio's _handle_event does next, without looking the sid up
            # and checking it again: the event's handler in a task of its own.
            request = self._requests.get(data[0]) if namespace == NAMESPACE else None
            if request is not None and "_trigger_event" not in self.__dict__ and \
                    self.handlers[NAMESPACE].get(data[0]) is request:
                run = self._answer_request(request, sid, eio_sid, data, ack_id)
            else:  # python-socketio's own dispatch (as when something instruments it)
                run = self._handle_event_internal(self, sid, eio_sid, data, namespace, ack_id)
            task = asyncio.create_task(run)
            self._event_tasks.add(task)
            task.add_done_callback(self._event_tasks.discard)
        else:
            await super()._handle_event(eio_sid, namespace, ack_id, data)

    def on_request(self, event: str, handler: Callable[..., Awaitable[Any]]) -> None:
        """`on(event, handler)` for a request handler of the `/` namespace: a coroutine
        function called as `handler(sid, *data)` whose return value is the ack. Its events
        are dispatched straight to it (`_answer_request`), not through python-socketio's
        `_trigger_event`, whose handler lookup, coroutine check and legacy-disconnect retry
        cost a tenth of a request's handling; the handler stays in python-socketio's map,
        and while anything replaces `_trigger_event` on the instance (python-socketio's
        admin instrumentation, in development mode) events take python-socketio's own way."""
        self.on(event, handler)
        self._requests[event] = handler

    async def _answer_request(
        self, handler: Callable[..., Awaitable[Any]], sid: str, eio_sid: str, data: list[Any],
        ack_id: int | None,
    ) -> None:
        """python-socketio's _handle_event_internal for a request handler: run it, then send
        its return value as the ack (None as no data, a tuple as several items)."""
        result = await handler(sid, *data[1:])
        if ack_id is not None:
            items = [] if result is None else list(result) if isinstance(result, tuple) \
                else [result]
            await self._send_packet(eio_sid, self.packet_class(
                sio_packet.ACK, namespace=NAMESPACE, id=ack_id, data=items))

    async def _send_packet(self, eio_sid: str, packet: sio_packet.Packet) -> None:
        """Every packet to one client (acks, connects, emits to a sid): written straight to
        an idle WebSocket when that keeps the connection's order (as the Outbox does),
        which spares its writer task a wake-up per packet; else the public way."""
        if packet.packet_type == sio_packet.CONNECT_ERROR:
            packet.data = connect_error(packet.data)
        encoded = packet.encode()
        if not isinstance(encoded, str):  # binary attachments: python-socketio's own way
            await super()._send_packet(eio_sid, packet)
            return
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and not socket.closing and not socket.closed and \
                write_now(socket, socket.queue, Message(encoded), UNBOUNDED):  # never held back
            return
        await self.eio.send(eio_sid, encoded)  # as python-socketio's _send_packet does

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
