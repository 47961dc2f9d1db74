"""kpk_io/engine/sockets.py: lighter Engine.IO sockets, driven by real clients."""

import asyncio
import json

import aiohttp
import pytest

from kpk_io.engine.sockets import LeanSocket, SendQueue
from tests.polling import eventually
from tests.test_engine import client, serving


def _task_names() -> list[str]:
    return [task.get_coro().__qualname__ for task in asyncio.all_tasks()]  # type: ignore[union-attr]


async def test_websocket_sockets_are_lean_and_hold_no_task_per_read_or_ping() -> None:
    async with serving() as (sio, url), client(url, "websocket"):
        [socket] = sio.eio.sockets.values()
        assert type(socket) is LeanSocket and type(socket.queue) is SendQueue
        names = _task_names()
        assert not [n for n in names if "_send_ping" in n or "websocket_wait" in n], names
        assert names.count("LeanSocket._write") == 1, names


async def test_pings_keep_an_answering_client_connected() -> None:
    # serving(): a ping every second, two seconds to answer it.
    async with serving() as (sio, url), client(url, "websocket") as (peer, received):
        await asyncio.sleep(4.5)
        assert peer.connected and len(sio.eio.sockets) == 1
        await sio.emit("e", "still here")
        await eventually(lambda: received == ["still here"], 10, "the event")


async def test_a_client_that_stops_answering_pings_is_closed_and_its_websocket_too() -> None:
    async with serving() as (sio, url), aiohttp.ClientSession() as session:
        ws_url = url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with session.ws_connect(ws_url) as ws:
            opened = await ws.receive_str()
            assert opened.startswith("0") and json.loads(opened[1:])["pingInterval"]
            await ws.send_str("40")
            assert (await ws.receive_str()).startswith("40")
            assert (await ws.receive_str()) == "2"  # a PING, left unanswered
            async with asyncio.timeout(15):
                while not ws.closed:
                    await ws.receive()
        await eventually(lambda: not sio.eio.sockets, 10, "the socket to be gone")


async def test_a_client_closing_ends_its_socket() -> None:
    async with serving() as (sio, url):
        async with client(url, "websocket"):
            await eventually(lambda: len(sio.eio.sockets) == 1, 10, "the socket")
        await eventually(lambda: not sio.eio.sockets, 10, "the socket to be gone")
        assert not [n for n in _task_names() if n.startswith("LeanSocket")]


async def test_a_send_queue_is_an_unbounded_asyncio_queue() -> None:
    queue = SendQueue()
    for item in range(3):
        queue.put_nowait(item)
    await queue.put(3)
    assert [queue.get_nowait() for _ in range(4)] == [0, 1, 2, 3]
    for _ in range(4):
        queue.task_done()
    await asyncio.wait_for(queue.join(), 1)
    queue.put_nowait("x")
    joined = asyncio.ensure_future(queue.join())
    await asyncio.sleep(0)
    assert not joined.done()
    assert await queue.get() == "x"
    queue.task_done()
    await asyncio.wait_for(joined, 1)
    with pytest.raises(ValueError):
        SendQueue(5)
