"""What the kpk_io/engine package relies on in python-socketio and python-engineio. These fail
loudly when an upgrade changes any of it, so that an upgrade cannot silently break delivery."""

import asyncio
import collections
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from types import MappingProxyType
from typing import Any

import pytest
import socketio
from aiohttp import web
from aiohttp._websocket.writer import WebSocketWriter
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_server import AsyncServer as EngineServer
from engineio.async_socket import AsyncSocket
from engineio.base_socket import BaseSocket
from socketio import async_admin
from socketio import packet as sio_packet
from socketio.async_pubsub_manager import AsyncPubSubManager

from kpk_io.engine import (
    NAMESPACE,
    Outbox,
    RefusedPacket,
    RelayManager,
    Server,
    StrictPacket,
    WebSocketDriver,
    drop_transport,
)
from kpk_io.engine.frames import ENVIRON_KEPT, Message
from tests.polling import eventually
from tests.processes import free_port

ROOM = "r"


def test_the_versions_are_those_engine_py_was_checked_against() -> None:
    # Upgrading? Run this file, read the docstrings of kpk_io/engine/ against the new source,
    # then widen these and the pins in pyproject.toml.
    assert version("python-engineio").startswith("4.15."), version("python-engineio")
    assert version("python-socketio").startswith("5.18."), version("python-socketio")


def test_an_event_is_encoded_once_as_one_text_message() -> None:
    event = StrictPacket(sio_packet.EVENT, namespace=NAMESPACE, data=["update", {"a": [1]}])
    encoded = event.encode()
    assert encoded == '2["update",{"a":[1]}]'
    message = eio_packet.Packet(eio_packet.MESSAGE, data=encoded)
    assert message.encode() == '42["update",{"a":[1]}]'
    assert message.encode(b64=True) == '42["update",{"a":[1]}]'  # what polling asks for
    # frames.Message spells the Engine.IO packet itself, as Packet.encode() does.
    assert Message(encoded).text == message.encode()
    assert Message(encoded).packet.encode() == message.encode()


def test_decode_reports_attachments_and_strict_packets_refuse_them() -> None:
    assert sio_packet.Packet().decode('51-["x",{"_placeholder":true,"num":0}]') == 1
    assert sio_packet.Packet().decode('2["x",1]') == 0
    decoded = StrictPacket(encoded_packet='27["x",{"_placeholder":true,"num":9}]')
    assert (decoded.packet_type, decoded.id, decoded.data) == (
        sio_packet.EVENT, 7, ["x", {"_placeholder": True, "num": 9}])
    for refused in ('5999999-["x"]', '61-0[{"_placeholder":true,"num":0}]', '21-["x"]',
                    b"\x00\x01"):
        with pytest.raises(RefusedPacket):
            StrictPacket(encoded_packet=refused)


def test_the_server_decodes_with_strict_packets_through_the_overridden_handler() -> None:
    sio = Server(async_mode="aiohttp")
    assert sio.packet_class is StrictPacket
    assert "_handle_eio_message" in vars(socketio.AsyncServer)
    assert sio.eio.handlers["message"] == sio._handle_eio_message
    assert sio.reserved_events == ["connect", "disconnect"]


@asynccontextmanager
async def serving(compression: int = 0) -> AsyncIterator[tuple[Server, str]]:
    # Short pings: a long-poll pending at the end is answered within seconds, not 45.
    sio = Server(async_mode="aiohttp", ping_interval=1, ping_timeout=2,
                 ws_compression=compression)

    async def join(sid: str, data: object) -> bool:
        await sio.enter_room(sid, ROOM)
        return True

    sio.on("join", join)

    application = web.Application()
    sio.attach(application)
    runner = web.AppRunner(application)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield sio, f"http://127.0.0.1:{port}"
    finally:
        await sio.shutdown()
        await runner.cleanup()


@asynccontextmanager
async def client(url: str, transport: str) -> AsyncIterator[tuple[socketio.AsyncClient, list[Any]]]:
    received: list[Any] = []
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("e", received.append)
    await sio.connect(url, transports=[transport], wait_timeout=10)
    assert await sio.call("join", {}, timeout=10) is True
    try:
        yield sio, received
    finally:
        await sio.disconnect()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_sockets_have_an_unbounded_asyncio_queue_their_writer_sends_in_order(
    transport: str,
) -> None:
    async with serving() as (sio, url), client(url, transport) as (_, received):
        [socket] = sio.eio.sockets.values()
        assert isinstance(socket.queue, asyncio.Queue) and socket.queue.maxsize == 0
        assert (socket.closing, socket.closed) == (False, False)
        outbox = Outbox(sio)
        assert outbox.post("e", 1, ROOM) == 1
        await sio.emit("e", 2, room=ROOM)  # the public path shares the queue and its order
        assert outbox.post("e", 3, ROOM) == 1
        await eventually(lambda: len(received) == 3, 10, "three events")
        assert received == [1, 2, 3]


async def test_post_falls_back_to_emit_when_the_internals_differ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving() as (sio, url), client(url, "websocket") as (_, received):
        monkeypatch.setattr(sio.eio, "sockets", MappingProxyType(sio.eio.sockets))
        assert Outbox(sio).post("e", "fallback", ROOM) == 1
        await eventually(lambda: received == ["fallback"], 10, "the fallback emit")
        monkeypatch.undo()


async def test_post_skips_the_sender_and_closed_sockets() -> None:
    async with serving() as (sio, url), client(url, "websocket") as (me, received):
        [socket] = sio.eio.sockets.values()
        assert Outbox(sio).post("e", 1, ROOM, skip_sid=me.get_sid()) == 0
        socket.closing = True
        Outbox(sio).post("e", 2, ROOM)
        assert socket.queue.empty()
        socket.closing = False
        Outbox(sio).post("e", 3, ROOM)
        await eventually(lambda: received, 10, "an event")
        assert received == [3]


async def test_dropping_a_transport_closes_it_without_a_goodbye() -> None:
    async with serving() as (sio, url), client(url, "websocket") as (me, _):
        reasons: list[Any] = []
        me.on("disconnect", reasons.append)
        [eio_sid] = list(sio.eio.sockets)
        await drop_transport(sio, eio_sid)
        await eventually(lambda: reasons, 10, "the client to see the transport close")
        assert reasons == [me.reason.TRANSPORT_ERROR]  # not SERVER_DISCONNECT: it reconnects


class BrokenQueue(asyncio.Queue[Any]):
    """A send queue that refuses packets: the one fault here we cannot cause for real."""

    def put_nowait(self, item: Any) -> None:
        raise RuntimeError("broken queue")


async def test_one_recipient_failing_costs_the_others_nothing() -> None:
    async with (serving() as (sio, url), client(url, "websocket") as (first, _),
                client(url, "websocket") as (_, received)):
        broken = sio.eio.sockets[sio.manager.eio_sid_from_sid(first.get_sid(), NAMESPACE)]
        working, broken.queue = broken.queue, BrokenQueue()
        try:
            assert Outbox(sio).post("e", "for all", ROOM) == 2
            await eventually(lambda: received == ["for all"], 10, "the healthy recipient")
        finally:
            broken.queue = working


def test_the_relay_managers_hook_is_still_python_socketios() -> None:
    """RelayManager overrides AsyncPubSubManager._handle_emit(message) and reads the
    manager's `rooms` map (namespace -> room -> members): both must still be there."""
    hook = vars(AsyncPubSubManager)["_handle_emit"]
    assert inspect.iscoroutinefunction(hook)
    assert list(inspect.signature(hook).parameters) == ["self", "message"]
    manager = RelayManager("redis://127.0.0.1:1/0", write_only=True)
    assert manager.rooms == {}


def test_the_websocket_driver_is_engineios_with_the_internals_it_uses() -> None:
    """Server swaps engineio's aiohttp WebSocket driver for WebSocketDriver, which repeats
    its __call__ (WebSocketResponse, prepare, handler) with compress= chosen; the Outbox's
    direct writes use aiohttp's WebSocketWriter (transport, protocol._paused, _limit,
    _output_size, _write_websocket_frame) and asyncio.Queue's _getters."""
    sio = Server(async_mode="aiohttp", ws_compression=100)
    driver = sio.eio._async["websocket"]
    assert issubclass(driver, WebSocketDriver) and driver.compress_above == 100
    assert issubclass(driver, eio_aiohttp.WebSocket)
    assert list(inspect.signature(eio_aiohttp.WebSocket.__init__).parameters) == [
        "self", "handler", "server"]
    source = inspect.getsource(eio_aiohttp.WebSocket.__call__)
    assert "WebSocketResponse(" in source and "self.handler(self)" in source
    assert "compress" in inspect.signature(web.WebSocketResponse).parameters
    for name in ("_write_websocket_frame", "send_frame"):
        assert callable(getattr(WebSocketWriter, name))
    assert "self._output_size > self._limit" in inspect.getsource(WebSocketWriter.send_frame)
    assert hasattr(asyncio.Queue(), "_getters")
    assert "ws.send(pkt.encode())" in inspect.getsource(AsyncSocket._websocket_handler)
    # write_now reads the writer's protocol and transport as they were when the WebSocket
    # opened: aiohttp sets the response's writer once, in prepare, and keeps it.
    response_source = inspect.getsource(web.WebSocketResponse)
    assert response_source.count("self._writer = ") == 1  # a class default of None, then this
    assert "self._writer = writer" in response_source
    # The Cork writes nothing after aiohttp's Close frame: its writer says so with _closing.
    assert "self._closing = True" in inspect.getsource(WebSocketWriter.close)


@pytest.mark.parametrize("compression", [0, 64])
async def test_broadcasts_to_idle_websockets_are_written_directly_in_order(
    compression: int,
) -> None:
    async with serving(compression) as (sio, url), client(url, "websocket") as (_, received):
        [socket] = sio.eio.sockets.values()
        # python-socketio's client offers no permessage-deflate; with it off, none is taken.
        assert not compression or not socket._kpk_ws._sock.compress
        writer = socket._kpk_ws._sock._writer
        assert socket._kpk_direct == (
            writer, writer.protocol, writer.transport, 1 << 62, sio.eio.cork)
        outbox = Outbox(sio)
        sizes = [1, 120, 200, 70_000, 3]  # frames of every length encoding, some compressed
        for number, size in enumerate(sizes):
            outbox.post("e", [number, "x" * size], ROOM)
            if number == 2:
                await sio.emit("e", "public", room=ROOM)
            await asyncio.sleep(0)
        await eventually(lambda: len(received) == 6, 10, "six events")
        assert [r if isinstance(r, str) else (r[0], len(r[1])) for r in received] == [
            (0, 1), (1, 120), (2, 200), "public", (3, 70_000), (4, 3)]
        assert outbox.direct >= 1


async def test_direct_writes_of_one_turn_are_one_write_per_transport_in_order() -> None:
    """The Cork: frames written directly in one loop turn go out in one write at the start
    of the next; a packet queued after them (which wakes the writer) follows them,
    and so does everything posted after it, which waits in the queue."""
    async with serving() as (sio, url), client(url, "websocket") as (_, received):
        [socket] = sio.eio.sockets.values()
        transport = socket._kpk_ws._sock._writer.transport
        writes: list[bytes] = []
        write = transport.write
        outbox = Outbox(sio)

        def counted(data: bytes) -> None:  # observes the writes; each still happens
            writes.append(bytes(data))
            write(data)

        transport.write = counted
        try:
            assert outbox.post("e", 1, ROOM) == 1
            assert outbox.post("e", 2, ROOM) == 1
            assert writes == []  # corked until the turn ends
            # As engineio's send() queues a packet: the writer is woken.
            socket.queue.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, data='2["e","queued"]'))
            assert outbox.post("e", 3, ROOM) == 1  # behind it, on the queue
            await eventually(lambda: len(received) == 4, 10, "four events")
        finally:
            transport.write = write
        assert received == [1, 2, "queued", 3]
        assert writes[0].count(b"\x81") == 2 and b'["e",1]' in writes[0] \
            and writes[0].endswith(b'["e",2]')
        assert outbox.direct == 2


async def test_corked_frames_never_follow_the_close_frame_and_a_big_turn_goes_early() -> None:
    """What the Cork holds for a connection past 64 KB is written at once (a slow reader's
    cap is overshot by no more); and once aiohttp has written its Close frame (it closes a
    WebSocket itself on a protocol error), nothing corked before is written after it."""
    async with serving() as (sio, url), client(url, "websocket") as (_, received):
        [socket] = sio.eio.sockets.values()
        writer = socket._kpk_ws._sock._writer
        transport = writer.transport
        writes: list[bytes] = []
        write = transport.write

        def counted(data: bytes) -> None:  # observes the writes; each still happens
            writes.append(bytes(data))
            write(data)

        transport.write = counted
        try:
            outbox = Outbox(sio)
            for number in range(3):
                outbox.post("e", [number, "x" * 30_000], ROOM)
            assert len(writes) == 1 and writes[0].count(b'["e",') == 3  # past 64 KB: at once
            await eventually(lambda: len(received) == 3, 10, "three big events")
            writes.clear()
            outbox.post("e", "corked", ROOM)
            await writer.close(1002)  # as aiohttp's receive() does on a protocol error
            sio.eio.cork.flush()
        finally:
            transport.write = write
        assert len(writes) == 1 and writes[0].startswith(b"\x88")  # the Close frame alone


async def test_polling_clients_get_broadcasts_through_their_queue() -> None:
    async with serving() as (sio, url), client(url, "polling") as (_, received):
        outbox = Outbox(sio)
        for number in range(3):
            outbox.post("e", number, ROOM)
        await eventually(lambda: received == [0, 1, 2], 10, "three events")
        assert outbox.direct == 0


def test_lean_sockets_rely_on_what_engineio_and_asyncio_still_do() -> None:
    """engine/sockets.py: _handle_connect adds the socket, then triggers `connect` (where
    Engine gives it its class), then schedules the first ping; sockets make their queue with
    create_queue; the asyncio.Queue and asyncio.Event internals SendQueue replaces."""
    connect = inspect.getsource(EngineServer._handle_connect)
    added = connect.index("self.sockets[sid] = s")
    triggered = connect.index("self._trigger_event('connect', sid, environ")
    assert added < triggered < connect.index("s.schedule_ping()")
    assert "self.server.create_queue()" in inspect.getsource(BaseSocket.__init__)
    assert "self.schedule_ping()" in inspect.getsource(AsyncSocket.receive)
    wait = inspect.getsource(eio_aiohttp.WebSocket.wait)
    assert "msg = await self._sock.receive()" in wait and "raise OSError()" in wait
    receive = inspect.getsource(AsyncSocket.receive)
    assert "'message', self.sid, pkt.data" in receive
    assert "run_async=self.server.async_handlers" in receive
    assert Server(async_mode="aiohttp").eio.async_handlers is False  # so: awaited inline
    assert "self._websocket_handler" in inspect.getsource(AsyncSocket._upgrade_websocket)
    assert callable(socketio.AsyncServer._engineio_server_class)
    queue: Any = asyncio.Queue()
    assert isinstance(queue._putters, collections.deque)
    assert isinstance(queue._finished, asyncio.Event) and queue._finished.is_set()
    assert "self._waiters" in inspect.getsource(asyncio.Event.wait)
    assert "self._finished.set()" in inspect.getsource(asyncio.Queue.task_done)


def test_packets_to_clients_are_never_walked_for_binary() -> None:
    """StrictPacket turns python-socketio's binary detection off (uses_binary_events): it
    walked every outgoing packet's whole data. A bytes value fails to encode instead."""
    assert "if self.uses_binary_events and" in inspect.getsource(sio_packet.Packet.__init__)
    packet = StrictPacket(sio_packet.EVENT, data=["e", {"a": [1, {"b": "c"}]}])
    assert packet.packet_type == sio_packet.EVENT
    assert packet.encode() == '2["e",{"a":[1,{"b":"c"}]}]'
    with pytest.raises(TypeError):
        StrictPacket(sio_packet.EVENT, data=["e", b"\x00"]).encode()


def test_events_start_their_handler_as_python_socketio_does() -> None:
    """Server._handle_event starts _handle_event_internal itself, as python-socketio's
    _handle_event does after the checks Server has made already."""
    source = inspect.getsource(socketio.AsyncServer._handle_event)
    assert "self._handle_event_internal, self, sid, eio_sid, data" in source
    assert "namespace, id)" in source
    assert list(inspect.signature(socketio.AsyncServer._handle_event_internal).parameters) == [
        "self", "server", "sid", "eio_sid", "data", "namespace", "id"]


def test_request_handlers_are_answered_as_python_socketio_answers_events() -> None:
    """Server._answer_request repeats _handle_event_internal for an on_request handler: the
    handler called as handler(sid, *data[1:]) (what _trigger_event does for a handler of
    the namespace), its result sent as the ACK's data (None as [], a tuple as its items);
    and the admin view's instrumentation replaces _trigger_event on the instance, which
    turns the direct dispatch off."""
    internal = inspect.getsource(socketio.AsyncServer._handle_event_internal)
    assert "await server._trigger_event(data[0], namespace, sid, *data[1:])" in internal
    assert "if r is None:" in internal and "elif isinstance(r, tuple):" in internal
    trigger = inspect.getsource(socketio.AsyncServer._trigger_event)
    assert "ret = await handler(*args)" in trigger
    admin = inspect.getsource(async_admin.InstrumentedAsyncServer.instrument)
    assert "self.sio._trigger_event = self._trigger_event" in admin


async def test_request_handlers_answer_directly_unless_trigger_event_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving() as (sio, url), client(url, "websocket") as (me, _):
        async def echo(sid: str, *data: Any) -> Any:
            return data[0] if len(data) == 1 else data or None

        sio.on_request("echo", echo)
        dispatched: list[str] = []
        library_trigger = socketio.AsyncServer._trigger_event

        async def observed(self: Any, event: str, *args: Any) -> Any:
            dispatched.append(event)
            return await library_trigger(self, event, *args)

        monkeypatch.setattr(socketio.AsyncServer, "_trigger_event", observed)
        assert await me.call("echo", {"a": 1}, timeout=10) == {"a": 1}
        assert await me.call("echo", (1, 2), timeout=10) == (1, 2)
        assert await me.call("echo", timeout=10) is None
        assert dispatched == []  # answered directly
        monkeypatch.undo()
        seen: list[str] = []
        trigger = sio._trigger_event

        async def instrumented(event: str, namespace: str, *args: Any) -> Any:
            seen.append(event)
            return await trigger(event, namespace, *args)

        sio._trigger_event = instrumented  # as the admin view's instrument() does
        try:
            assert await me.call("echo", "through it", timeout=10) == "through it"
        finally:
            del sio._trigger_event
        assert seen == ["echo"]


async def test_an_open_websockets_environ_keeps_only_what_is_read_later() -> None:
    """frames.slim_environ, run once the WebSocket is open: engineio reads the environ
    until then (origin, query, upgrade header) and returns the WebSocket response without
    reading it again; python-socketio's map holds the same dict."""
    source = inspect.getsource(EngineServer.handle_request)
    assert "if not isinstance(r, dict):\n            return r" in source
    async with serving() as (sio, url), client(url, "websocket") as (_, _received):
        [eio_sid] = list(sio.eio.sockets)
        environ = sio.environ[eio_sid]
        assert set(environ) <= ENVIRON_KEPT
        assert {"aiohttp.request", "PATH_INFO", "QUERY_STRING"} <= set(environ)
        assert sio.eio.sockets[eio_sid]._kpk_ws.environ is environ
