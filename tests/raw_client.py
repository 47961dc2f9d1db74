"""A Socket.IO client spoken by hand over one WebSocket (Engine.IO 4, Socket.IO 5), so that
a test can misbehave as no client library does: never answer pings, send reserved event
names or binary headers, or drop its TCP connection with a reset mid-stream."""

import asyncio
import itertools
import json
import re
import socket
import struct
from typing import Any

import aiohttp

from tests.polling import eventually

Ack = dict[str, Any]
# An ACK packet's header: the namespace (absent for "/") and the ack id.
_ACK_HEADER = re.compile(r"43(?:(/[^,]*),)?([0-9]+)")


class RawClient:
    def __init__(self, url: str, *, answer_pings: bool = True) -> None:
        self.url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.answer_pings = answer_pings
        self.sid: str | None = None
        self.connect_error: Any = None
        self.events: list[list[Any]] = []
        self.pings = 0
        self.acks_by_namespace: dict[str, list[int]] = {}  # ack ids received, per namespace
        self.closed = asyncio.Event()
        self._session = aiohttp.ClientSession()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._acks: dict[int, asyncio.Future[list[Any]]] = {}
        self._ids = itertools.count()
        self._connected = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def open(self, auth: object = None) -> "RawClient":
        """Open the Engine.IO session and connect to the `/` namespace."""
        self._ws = await self._session.ws_connect(self.url, autoping=True, compress=0)
        handshake = await self._ws.receive_str(timeout=10)
        assert handshake.startswith("0{"), handshake
        self._reader = asyncio.create_task(self._read())
        await self.send("40" + ("" if auth is None else json.dumps(auth)))
        await asyncio.wait_for(self._connected.wait(), 10)
        return self

    @property
    def updates(self) -> list[dict[str, Any]]:
        return [args[1] for args in self.events if args[0] == "update"]

    async def send(self, text: str | bytes) -> None:
        assert self._ws is not None
        if isinstance(text, bytes):
            await self._ws.send_bytes(text)
        else:
            await self._ws.send_str(text)

    async def call(self, event: str, *args: Any, timeout: float = 10) -> Ack:
        """Emit with an ack id and return the ack's first argument."""
        ack_id = next(self._ids)
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        await self.send(f"42{ack_id}" + json.dumps([event, *args]))
        answer = await asyncio.wait_for(future, timeout)
        first: Ack = answer[0]
        return first

    def expect_ack(self, ack_id: int) -> "asyncio.Future[list[Any]]":
        """The future of the ack with `ack_id`, for a packet the test sends by hand."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        return future

    async def join(self, room: str) -> Ack:
        ack = await self.call("join", {"room": room})
        assert ack["ok"], ack
        return ack

    async def wait_closed(self, timeout: float = 10) -> None:
        await eventually(self.closed.is_set, timeout, "the server to close the connection")

    def reset(self) -> None:
        """Drop the TCP connection with a reset (RST), as a crashed peer or a NAT does."""
        transport = self._transport()
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    def pause_reading(self) -> None:
        """Stop reading the socket, as a stalled client does: the server's writes pile up
        in the kernel's buffers, then in the server."""
        self._transport().pause_reading()

    def resume_reading(self) -> None:
        self._transport().resume_reading()

    def _transport(self) -> asyncio.Transport:
        assert self._ws is not None
        connection = self._ws._response.connection
        assert connection is not None and connection.transport is not None
        transport: asyncio.Transport = connection.transport
        return transport

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        await self._session.close()

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await self._on_text(message.data)
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            self.closed.set()

    async def _on_text(self, text: str) -> None:
        if text == "2":
            self.pings += 1
            if self.answer_pings:
                await self.send("3")
        elif text == "1":  # Engine.IO close
            self.closed.set()
        elif text.startswith("40"):
            self.sid = json.loads(text[2:])["sid"]
            self._connected.set()
        elif text.startswith("44"):
            self.connect_error = json.loads(text[2:])
            self._connected.set()
        elif text.startswith("42"):
            self.events.append(json.loads(text[2:]))
        elif text.startswith("43"):
            header = _ACK_HEADER.match(text)
            assert header is not None, text
            self.acks_by_namespace.setdefault(header[1] or "/", []).append(int(header[2]))
            future = self._acks.pop(int(header[2]), None)
            if future is not None and not future.done():
                future.set_result(json.loads(text[header.end():]))
