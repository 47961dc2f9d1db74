"""Real python-socketio clients for tests."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import socketio

from tests.polling import eventually

Ack = dict[str, Any]


class Member:
    """A raw Socket.IO connection that records every `update` event it receives."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.updates: list[dict[str, Any]] = []
        self.sio.on("update", self.updates.append)

    async def connect(self) -> "Member":
        await self.sio.connect(self.url, transports=["websocket"], wait_timeout=10)
        return self

    async def call(self, event: str, *data: Any, timeout: float = 10) -> Any:
        return await self.sio.call(event, data[0] if len(data) == 1 else data or None,
                                   timeout=timeout)

    async def join(self, room: str) -> Ack:
        ack: Ack = await self.call("join", {"room": room})
        assert ack["ok"], ack
        return ack

    async def update(self, room: str, **body: Any) -> Ack:
        ack: Ack = await self.call("update", {"room": room, **body})
        return ack

    def updates_of(self, room: str) -> list[dict[str, Any]]:
        return [u for u in self.updates if u["room"] == room]

    async def wait_updates(self, room: str, count: int, timeout: float = 10) -> list[Ack]:
        await eventually(lambda: len(self.updates_of(room)) >= count, timeout,
                         f"{count} updates of {room!r}")
        return self.updates_of(room)

    async def close(self) -> None:
        await self.sio.disconnect()


@asynccontextmanager
async def members(*urls: str) -> AsyncIterator[list[Member]]:
    made = [await Member(url).connect() for url in urls]
    try:
        yield made
    finally:
        for member in made:
            await member.close()


def untagged(bodies: list[Ack]) -> list[Ack]:
    """`update` bodies (or acks) without their commit tag (which must be there) and the tag
    before it, and join acks without their presence fields: tags and member ids are random,
    so tests compare the rest."""
    for body in bodies:
        assert isinstance(body.get("tag"), str), body
    random = {"tag", "prev", "member", "members"}
    return [{k: v for k, v in body.items() if k not in random} for body in bodies]
