"""WebSocket frames written by kpk-io: engineio's aiohttp driver with kpk-io's compression
(`WebSocketDriver`), and the Outbox's direct writes to an idle WebSocket (`Message`), corked
per loop turn (`Cork`: one write per transport for all the frames of a turn).

Relies on: engineio's `async_drivers.aiohttp.WebSocket` (its `__call__`, `_sock`, `server`,
`handler` and `send`); aiohttp's `WebSocketResponse._writer`, set once by `prepare` (its
`_write_websocket_frame`, `_output_size`, `_limit`, `protocol._paused`,
`protocol._drain_helper`, `transport`, and `_closing`, set once its Close frame is out); an
`AsyncSocket`'s `queue` (an unbounded `asyncio.Queue` of `engineio.packet.Packet`s that the
socket's writer sends in order; its `_queue` and `_getters`), `upgraded` and `upgrading`;
and asyncio running `call_soon` callbacks in the order they were scheduled (the Cork's flush
runs before the wake-up of a writer woken after it).
"""

import asyncio
import contextlib
import struct
from typing import Any

from aiohttp import WSMsgType, web
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_socket import AsyncSocket

UNBOUNDED = 1 << 62  # a bound no message length and no buffered size reaches


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
        slim_environ(environ)
        self.environ = environ
        socket = getattr(self.handler, "__self__", None)
        writer = self._sock._writer
        if isinstance(socket, AsyncSocket) and writer is not None:
            socket._kpk_ws = self
            # What write_now() reads for every frame, looked up once: aiohttp makes the
            # response's writer in prepare() and keeps it, and its protocol and transport.
            compress_above = self.compress_above if self._sock.compress else UNBOUNDED
            socket._kpk_direct = (writer, writer.protocol, writer.transport, compress_above,
                                  getattr(socket.server, "cork", None))
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


# What is read from a WebSocket connection's WSGI environ once it is open: by kpk-io's
# connect handler (the request, for the peer address, and X-Forwarded-For), the admin view
# and python-socketio's (scheme, path, query, address).
ENVIRON_KEPT = frozenset({
    "aiohttp.request", "REMOTE_ADDR", "QUERY_STRING", "PATH_INFO", "wsgi.url_scheme",
    "HTTP_X_FORWARDED_FOR",
})


def slim_environ(environ: dict[str, Any]) -> None:
    """Keep only ENVIRON_KEPT of an open WebSocket's environ, in place: engineio made it
    from every request header, and it lives as long as the connection (held by the request
    handler's frames and python-socketio's `environ` map): about 1.2 KB per idle connection."""
    kept = {name: environ[name] for name in ENVIRON_KEPT if name in environ}
    environ.clear()
    environ.update(kept)


def buffered(socket: Any, queue: asyncio.Queue[Any]) -> int:
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


class Message:
    """One event, encoded once for all its recipients: the Engine.IO packet for send queues,
    and its WebSocket frame (built on first use) for direct writes."""

    def __init__(self, encoded: str) -> None:
        self._encoded = encoded
        self.text = "4" + encoded  # an Engine.IO MESSAGE packet, as Packet.encode() writes it
        self._frame: bytes | None = None
        self._packet: eio_packet.Packet | None = None

    @property
    def packet(self) -> eio_packet.Packet:
        """The Engine.IO packet, for a send queue (made on first use: a direct write needs
        only the frame)."""
        if self._packet is None:
            self._packet = eio_packet.Packet(eio_packet.MESSAGE, data=self._encoded)
        return self._packet

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = text_frame(self.text.encode())
        return self._frame


def text_frame(payload: bytes) -> bytes:
    """An unmasked, uncompressed, final WebSocket text frame (RFC 6455 5.2), as a server
    sends it."""
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


_CORKED_MAX = 64 * 1024  # bytes corked for one connection past which they are written at once


class Cork:
    """Frames written directly in one turn of the event loop, sent together by one callback
    scheduled with the turn's first frame (so after what the turn had queued before it):
    one write (one `send` system call) per connection for all the frames it got in the turn.

    A burst of commits reaches each member as several updates and an ack in the same turn
    (the feed reads every message Redis has sent before it yields, and a batch of commits is
    answered at once); written one by one, each is a system call of its own. Frames are
    corked only for a socket whose writer is parked on its empty queue (`write_now`), and a
    packet queued for it after that wakes the writer in a later callback than the flush:
    the socket's order is kept. Past _CORKED_MAX bytes for one connection, what is corked is
    written at once (in order), so the cap on a slow reader's buffer (`write_now`'s `cap`,
    which reads the transport's buffer) is overshot by at most that much. Nothing is written
    after aiohttp has sent its Close frame (`_closing`): the peer must see nothing after it.
    """

    def __init__(self) -> None:
        # aiohttp's WebSocketWriter -> its frame, or its frames once it has several (most
        # connections get one a turn)
        self._pending: dict[Any, bytes | bytearray] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def write(self, writer: Any, frame: bytes) -> None:
        pending = self._pending
        queued = pending.get(writer)
        if queued is None:
            if not pending or (self._loop is not None and self._loop.is_closed()):
                self._pending = pending = {}  # (a loop that stopped never ran its flush)
                self._loop = asyncio.get_running_loop()
                self._loop.call_soon(self.flush)
            pending[writer] = frame
            return
        if isinstance(queued, bytes):
            queued = pending[writer] = bytearray(queued)
        queued += frame
        if len(queued) > _CORKED_MAX:
            del pending[writer]
            _send(writer, queued)

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for writer, queued in pending.items():
            _send(writer, queued)


def _send(writer: Any, data: bytes | bytearray) -> None:
    transport = writer.transport
    if writer._closing or transport is None or transport.is_closing():
        return  # its Close frame is out (nothing may follow it), or it is gone
    # The transport reports its own failure (connection_lost); the others still get theirs.
    with contextlib.suppress(Exception):
        transport.write(data if isinstance(data, bytes) else bytes(data))


def write_now(socket: Any, queue: asyncio.Queue[Any], message: "Message", cap: int) -> bool:
    """Write `message` straight to the socket's WebSocket (through its engine's Cork) when
    that keeps the socket's packet order and leaves at most `cap` bytes buffered for it;
    False when the caller must decide (queue it, or hold it back).

    The order is kept only when the socket's WebSocket writer is parked on its empty queue:
    a waiting getter means it has written every packet it took (it takes a batch, writes
    it, then waits again), and none is queued. A polling or upgrading socket, one whose
    writer is busy, waits for the transport to drain or has sent its Close frame, and a
    message the socket compresses all go through the queue. The common case of a
    broadcast, so written for speed: what it reads of aiohttp's writer was looked up when
    the WebSocket opened (`_kpk_direct`)."""
    direct = socket.__dict__.get("_kpk_direct")
    if direct is None or queue._queue or not socket.upgraded or socket.upgrading:  # type: ignore[attr-defined]
        return False
    for waiter in queue._getters:  # type: ignore[attr-defined]
        if not waiter.done():
            break
    else:
        return False  # the writer is busy with a batch it took
    writer, protocol, transport, compress_above, cork = direct
    if writer._closing or protocol._paused or len(message.text) > compress_above or \
            transport.is_closing() or transport.get_write_buffer_size() > cap:
        return False
    if cork is None:
        transport.write(message.frame)
    else:
        cork.write(writer, message.frame)
    return True

