"""Engine.IO sockets that cost less to keep open (`Engine`, `LeanSocket`, `SendQueue`).

An idle WebSocket connection under python-engineio held five tasks: aiohttp's handler, a
task per awaited read (`asyncio.wait_for(ensure_future(ws.wait()))`), the writer, a task per
awaited queue read (`asyncio.wait_for(queue.get())`) and a ping task sleeping
`ping_interval`, each with its coroutines, future, timer and weak reference; and its send
queue made four deques (about 500 bytes each) of which an unbounded queue uses two. Here:

- `LeanSocket._websocket_handler` reads in aiohttp's handler task itself and its writer
  awaits `queue.get()` directly: two tasks per connection instead of five, none made per
  message. The reads have no timeout of their own: engineio's service task closes a socket
  whose PONG is overdue, and `LeanSocket.close` then ends its writer, which closes the
  WebSocket (aiohttp wakes the pending read with a CLOSING message).
- `PingClock` sends every socket's PINGs from one timer per tick (`TICK` seconds) holding
  the socket ids due then, instead of a task per socket.
- `SendQueue` is an unbounded `asyncio.Queue` whose putters deque is one shared empty deque
  (an unbounded queue never waits to put) and whose `join` event makes its deque on first
  wait.
- An upgrade from polling to WebSocket keeps engineio's own handler.

Relies on (python-engineio 4.15): `AsyncServer._handle_connect` adding the new
`AsyncSocket` to `sockets` and then calling `_trigger_event('connect', sid, environ,
run_async=False)` before `schedule_ping()` (`Engine` gives the socket its class there);
`BaseSocket.__init__` making its queue with `server.create_queue()`; `AsyncSocket`'s
`queue`, `last_ping`, `connected`, `upgraded`, `closing`, `closed`, `receive` (which runs
`server.handlers["message"]`, python-socketio's `_handle_eio_message`, inline for a MESSAGE:
called directly here), `close`, `schedule_ping` (called on every PONG), and
`_websocket_handler(ws)` (the driver's `handler`); the driver's `_sock` (aiohttp's
WebSocketResponse, whose `receive()` the driver's `wait()` awaits, raising OSError for a
message that is not data) and `send`/`close`; asyncio.Queue's `_putters` and `_finished`,
and asyncio.Event's `_waiters` and `_value` (CPython 3.11 to 3.13). tests/test_engine.py
checks them.
"""

import asyncio
import collections
import logging
import math
import time
from typing import Any, Literal

import engineio
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket

from kpk_io.engine.frames import Cork

log = logging.getLogger(__name__)

TICK = 0.1  # seconds: PINGs go out up to this much later than `ping_interval`


class _JoinEvent(asyncio.Event):
    """asyncio.Event whose waiters deque is made by the first `wait` (a queue's `join`,
    which engineio awaits only in `close(wait=True)`)."""

    def __init__(self) -> None:
        self._value = True  # as asyncio.Queue sets its _finished: nothing unfinished yet
        self._waiters: Any = ()

    async def wait(self) -> Literal[True]:
        if not isinstance(self._waiters, collections.deque):
            self._waiters = collections.deque()
        return await super().wait()


_NO_PUTTERS: collections.deque[Any] = collections.deque(maxlen=0)


class SendQueue(asyncio.Queue[Any]):
    """An unbounded asyncio.Queue, without the parts an unbounded queue never uses."""

    def __init__(self, maxsize: int = 0) -> None:
        if maxsize:
            raise ValueError("a SendQueue is unbounded")
        super().__init__()
        self._putters = _NO_PUTTERS  # put() waits only while full(), never when unbounded
        self._finished = _JoinEvent()


class PingClock:
    """The PINGs of every LeanSocket of one engine: one timer per tick with sockets due."""

    def __init__(self, engine: "Engine") -> None:
        self._engine = engine
        self._due: dict[int, list[str]] = {}

    def schedule(self, socket: "LeanSocket") -> None:
        loop = asyncio.get_running_loop()
        tick = math.ceil((loop.time() + self._engine.ping_interval) / TICK)
        due = self._due.get(tick)
        if due is None:
            due = self._due[tick] = []
            loop.call_at(tick * TICK, self._ping, tick)
        due.append(socket.sid)

    def _ping(self, tick: int) -> None:
        sockets = self._engine.sockets
        for sid in self._due.pop(tick, ()):
            socket = sockets.get(sid)
            if socket is not None and not socket.closing and not socket.closed:
                # As AsyncSocket._send_ping, whose send() would find no overdue pong: the
                # clock of the pong we now wait for starts here.
                socket.last_ping = time.time()
                socket.queue.put_nowait(eio_packet.Packet(eio_packet.PING))


class LeanSocket(AsyncSocket):  # type: ignore[misc]
    """engineio's AsyncSocket with the WebSocket handler and pings described above."""

    server: "Engine"
    sid: str
    queue: asyncio.Queue[Any]
    last_ping: float | None
    connected: bool
    upgraded: bool
    closing: bool
    closed: bool

    def schedule_ping(self) -> None:
        if self.last_ping:  # as engineio's: only once the previous ping was answered
            self.last_ping = None
            self.server.pings.schedule(self)

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        was_open = not self.closed and not self.closing
        await super().close(wait=wait, abort=abort, reason=reason)
        if was_open and self.upgraded:
            # After the goodbye (if any) is written, the writer closes the WebSocket, which
            # ends the read: a peer that stopped answering holds nothing past its timeout.
            self.queue.put_nowait(None)

    async def _websocket_handler(self, ws: Any) -> None:
        if self.connected:  # an upgrade from polling: engineio's own handshake and loops
            await super()._websocket_handler(ws)
            return
        self.connected = True
        self.upgraded = True
        writer = asyncio.ensure_future(self._write(ws))
        try:
            # Read in this frame (no _read frame of its own): every coroutine frame here is
            # held by every idle connection.
            while await self._read_one(ws):
                pass
        finally:
            self.queue.put_nowait(None)  # the writer ends (after what is queued) and closes
            await writer
            await self.close(wait=False, abort=True,
                             reason=self.server.reason.TRANSPORT_CLOSE)

    async def _read_one(self, ws: Any) -> bool:
        """Receive one packet; False once the connection is done. (A frame of its own, so
        that no packet stays referenced while the next read waits.)"""
        try:
            # As the driver's wait(), without its frame: aiohttp's receive() itself.
            data = (await ws._sock.receive()).data
            if not isinstance(data, str | bytes) or len(data) > self.server.max_http_buffer_size:
                return False  # closed, closing or failed (wait() raised OSError), or too big
            pkt = eio_packet.Packet(encoded_packet=data)
        except (Exception, asyncio.CancelledError):  # engineio's loop ends so too
            return False
        try:
            if pkt.packet_type == eio_packet.MESSAGE:
                # What receive() does with a message, without _trigger_event's handler
                # lookup, coroutine check and closure per message: the Socket.IO server's
                # _handle_eio_message, awaited here.
                await self.server.handlers["message"](self.sid, pkt.data)
            else:
                await self.receive(pkt)
        except eio_exceptions.UnknownPacketError:
            pass
        except eio_exceptions.SocketIsClosedError:
            return False
        except Exception:
            log.exception("receiving a packet failed")
        return True

    async def _write(self, ws: Any) -> None:
        while await self._write_some(ws):
            pass
        await ws.close()

    async def _write_some(self, ws: Any) -> bool:
        """Send what is queued, waiting for it if nothing is; False once the writer is
        done (a None queued, or the WebSocket failed)."""
        queue = self.queue
        try:
            packets = [await queue.get()]
        except asyncio.CancelledError:
            return False
        queue.task_done()
        while packets[-1] is not None and not queue.empty():
            packets.append(queue.get_nowait())
            queue.task_done()
        try:
            for pkt in packets:
                if pkt is None:
                    return False
                await ws.send(pkt.encode())
        except Exception:
            return False
        return True


class Engine(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's AsyncServer whose sockets are LeanSockets on SendQueues."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pings = PingClock(self)
        self.cork = Cork()  # direct writes of one loop turn, one write per connection

    def create_queue(self, *args: Any, **kwargs: Any) -> asyncio.Queue[Any]:
        return SendQueue(*args, **kwargs)

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "connect":
            socket = self.sockets.get(args[0])
            if type(socket) is AsyncSocket:  # just made by _handle_connect
                socket.__class__ = LeanSocket
        return await super()._trigger_event(event, *args, **kwargs)
