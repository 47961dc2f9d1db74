"""Silent members: raw Engine.IO WebSocket clients that join a room, make one edit, then go
quiet, as a suspended laptop or a phone in a tunnel does. `no_pong` keeps reading but never
answers the server's pings; `no_read` stops reading its socket altogether (aiohttp then
stops reading the TCP socket once its buffer is full, so the server's sends back up). Each
comes back with a fresh connection once the server has dropped it."""

import asyncio
import contextlib
import json
import random
from typing import Any

import aiohttp

from benchmarks.soak.journal import Journal

KINDS = ("no_pong", "no_read")
SILENT_FIELD = "silent"  # the field their one edit sets, apart from the members' fields


class SilentClient:
    def __init__(self, name: str, kind: str, url: str, rooms: list[str], journal: Journal, *,
                 rng: random.Random, hold: float) -> None:
        self.name = name
        self.kind = kind
        self.url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.rooms = rooms
        self.journal = journal
        self._rng = rng
        self._hold = hold  # how long a no_read client stays before it starts over
        self._seq = 0

    async def run(self, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(self._session(session, stop), self._hold + 30)
                except (OSError, aiohttp.ClientError, TimeoutError, ValueError):
                    self.journal.counts[f"silent {self.kind} failed"] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _session(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        async with session.ws_connect(self.url, autoping=False, heartbeat=None) as ws:
            await _expect(ws, "0")  # Engine.IO open
            await ws.send_str("40")
            await _expect(ws, "40")  # Socket.IO connect
            room = self._rng.choice(self.rooms)
            await ws.send_str("421" + json.dumps(["join", {"room": room}]))
            await _expect(ws, "431")
            self._seq += 1
            edit = {"room": room, "set": {SILENT_FIELD: f"{self.name}.{self._seq}"},
                    "id": f"{self.name}-{self._seq}"}
            await ws.send_str("422" + json.dumps(["update", edit]))
            self.journal.counts[f"silent {self.kind} joined"] += 1
            if self.kind == "no_pong":
                await _read_until_closed(ws, stop)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._hold)
            self.journal.counts[f"silent {self.kind} dropped"] += 1


async def _expect(ws: aiohttp.ClientWebSocketResponse, prefix: str) -> None:
    """Read until a text frame starting with `prefix` (pings before it go unanswered)."""
    async with asyncio.timeout(15):
        while True:
            message = await ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise ValueError(f"connection ended: {message.type}")
            if str(message.data).startswith(prefix):
                return


async def _read_until_closed(ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> None:
    waiting: asyncio.Task[Any] = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            receive = asyncio.create_task(ws.receive())
            await asyncio.wait({receive, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                receive.cancel()
                return
            if receive.result().type is not aiohttp.WSMsgType.TEXT:
                return  # the server dropped us
    finally:
        waiting.cancel()
