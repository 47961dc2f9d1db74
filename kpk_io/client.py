"""The Python client: rooms whose state follows the server's, with local changes applied at once.

    async with KpkClient("http://127.0.0.1:8000") as client:
        room = await client.join("kpk/notes/acme/q1/intro")
        room.set("title", "Q1 plan")
        await room.flush()
        print(room.state, room.rev)

Reconnection is python-socketio's own (exponential backoff with jitter); `on_status`
listeners see `connecting`, `connected`, `offline` (not trying) and `error` (the server
refused the connection), as in the browser client. After every
reconnect each room is joined again, brought up to date with `sync`, and changes that were
never acknowledged are sent again; one whose ack was lost is recognised by its id in the sync
result and is not sent twice. docs/protocol.md describes the algorithm.
"""

import asyncio
import contextlib
import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeAlias

import socketio

from kpk_io.change import JSON, Change, CommittedChange
from kpk_io.client_events import CustomEvents
from kpk_io.client_presence import Presence
from kpk_io.client_room import KpkError, Room, RoomChange, RoomLink
from kpk_io.client_status import ConnectionStatus, Status, StatusListener
from kpk_io.presence import Member
from kpk_io.protocol import ErrorCode, Event

log = logging.getLogger(__name__)

__all__ = ["Change", "KpkClient", "KpkError", "Member", "Room", "RoomChange", "Status"]

# A token, or a function (plain or async) that returns one: asked on every (re)connect.
TokenSource: TypeAlias = str | Callable[[], str] | Callable[[], Awaitable[str]]


class KpkClient:
    def __init__(
        self,
        url: str,
        *,
        token: TokenSource | None = None,
        auth: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
        transports: list[str] | None = None,
        request_timeout: float = 10.0,
        reconnection_delay: float = 0.5,
        reconnection_delay_max: float = 5.0,
    ) -> None:
        self.url = url
        self._token = token
        self._auth = auth
        # Why the server last refused a connect (e.g. `unauthorized`), until one succeeds.
        self.refused: KpkError | None = None
        self._transports = transports
        self._timeout = request_timeout
        self._id_prefix = secrets.token_hex(8)  # ids must be unique per room: see protocol.md
        self._secret = secrets.token_hex(16)
        self._counter = 0
        self._rooms: dict[str, Room] = {}
        self._pending: set[asyncio.Future[dict[str, JSON]]] = set()
        # python-socketio sets `connected` only after the connect handler has run; rooms
        # resume from that handler, so the client keeps its own flag.
        self._live = False
        self._status = ConnectionStatus()
        self.sio = socketio.AsyncClient(
            reconnection=True,
            reconnection_delay=reconnection_delay,
            reconnection_delay_max=reconnection_delay_max,
            request_timeout=request_timeout,
        )
        self._custom = CustomEvents(self.sio)  # on(): handlers per event
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("__disconnect_final", self._on_given_up)
        self.sio.on(Event.UPDATE.value, self._on_update)
        self.sio.on(Event.PRESENCE.value, partial(self._to_room, Presence.event))
        self.sio.on(Event.SIGNAL.value, partial(self._to_room, Presence.signal))

    @property
    def connected(self) -> bool:
        return self._live

    @property
    def status(self) -> Status:
        """`connecting`, `connected`, `offline` (not trying) or `error` (refused)."""
        return self._status.value

    def on_status(self, listener: StatusListener) -> Callable[[], None]:
        """Call `listener(status, error)` when the status changes; returns a function that
        removes it."""
        return self._status.listen(listener)

    def on(self, event: str, handler: Callable[[Any], Any]) -> Callable[[], None]:
        """Call `handler(data)` (a function or a coroutine function) for each `event` the
        server side sends: a custom event an outside emitter (python-socketio's
        RedisManager, docs/deployment.md) sends to a room's members. The protocol's own
        events are the client's. Several handlers may listen to one event, as in the
        browser client; returns a function that removes this one."""
        return self._custom.on(event, handler)

    async def connect(self) -> None:
        """Connect; raises KpkError with the server's code (e.g. `unauthorized`) when it
        refuses the connection."""
        self.refused = None
        self._status.set("connecting")
        try:
            await self.sio.connect(
                self.url,
                auth=self._connect_auth,
                transports=self._transports,
                wait_timeout=self._timeout,
            )
        except socketio.exceptions.ConnectionError as exc:
            self._status.set("error" if self._status.value == "error" else "offline", exc)
            if self.refused is not None:
                raise self.refused from None
            raise

    async def _connect_auth(self) -> dict[str, Any]:
        """Asked again on every reconnect, so a token function (or a callable `auth`) can
        hand out fresh tokens. `client` is this client's secret: it makes the server's
        dedupe of re-sent changes (by id) this client's own, see docs/protocol.md."""
        given = dict(self._auth() if callable(self._auth) else self._auth or {})
        if self._token is not None:
            token = self._token() if callable(self._token) else self._token
            given["token"] = await token if inspect.isawaitable(token) else token
        return {**given, "client": self._secret}

    async def close(self) -> None:
        """Wait (up to the request timeout) for unsent changes, then disconnect."""
        try:
            for room in list(self._rooms.values()):
                with contextlib.suppress(TimeoutError):
                    await room.flush(timeout=self._timeout)
        finally:
            for room in self._rooms.values():
                room.close()
            await self.sio.shutdown()
            self._status.set("offline")

    async def __aenter__(self) -> "KpkClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def join(self, room_id: str) -> Room:
        """Join a room and return its live handle (the same handle when joined already)."""
        room = self._rooms.get(room_id)
        if room is not None:
            return room
        room = self._rooms[room_id] = Room(room_id, _Link(self))
        try:
            await room.rejoin()
        except KpkError:
            self._rooms.pop(room_id, None)
            room.close()
            raise
        return room

    async def leave(self, room_id: str) -> None:
        room = self._rooms.pop(room_id, None)
        if room is not None:
            await room.flush(timeout=self._timeout)
            room.close()
            await self.request(Event.LEAVE, {"room": room_id})

    async def request(self, event: Event, payload: dict[str, JSON]) -> dict[str, JSON]:
        """Send one request; return its ok ack or raise KpkError (code `disconnected` or
        `timeout` when no ack came)."""
        future: asyncio.Future[dict[str, JSON]] = asyncio.get_running_loop().create_future()

        def answer(ack: object = None, *rest: object) -> None:
            if not future.done():
                future.set_result(ack if isinstance(ack, dict) else {"ok": False})

        self._pending.add(future)
        try:
            await self.sio.emit(event.value, payload, callback=answer)
            ack = await asyncio.wait_for(future, self._timeout)
        except socketio.exceptions.BadNamespaceError:
            raise KpkError("disconnected", "not connected") from None
        except TimeoutError:
            raise KpkError("timeout", f"no answer to {event.value} in {self._timeout}s") from None
        finally:
            self._pending.discard(future)
        if not ack.get("ok"):
            code = str(ack.get("error", ErrorCode.INTERNAL))
            raise KpkError(code, str(ack.get("message", "")), ack)
        return ack

    def next_change_id(self) -> str:
        self._counter += 1
        return f"{self._id_prefix}-{self._counter}"

    async def _on_connect(self) -> None:
        self.refused = None
        self._live = True
        self._status.set("connected")
        for room in list(self._rooms.values()):
            room.reconnected()

    async def _on_connect_error(self, data: object = None) -> None:
        # A dict comes from the server refusing the connection (CONNECT_ERROR); a string is
        # a transport failure, after which python-socketio keeps trying.
        if isinstance(data, dict):
            detail = data.get("data")
            code = detail.get("error") if isinstance(detail, dict) else None
            message = str(data.get("message", "connection refused"))
            self.refused = KpkError(str(code or "refused"), message, data)
            log.warning("connection refused: %s", self.refused)
            self._status.set("error", self.refused)

    async def _on_given_up(self) -> None:
        self._status.set("offline")

    async def _on_disconnect(self, reason: object = None) -> None:
        self._live = False
        leaving = reason == self.sio.reason.CLIENT_DISCONNECT
        self._status.set("offline" if leaving else "connecting")
        for future in list(self._pending):
            if not future.done():
                future.set_exception(KpkError("disconnected", "connection lost"))
        for room in self._rooms.values():
            room.disconnected()

    async def _on_update(self, data: object) -> None:
        if not isinstance(data, dict):
            return
        room = self._rooms.get(str(data.get("room")))
        if room is None:
            return
        try:
            committed = CommittedChange.from_wire(room.name, data)
        except ValueError:
            log.error("malformed update for %r ignored", room.name)
            return
        room.remote(committed)


    async def _to_room(self, apply: Callable[[Presence, Any], None], data: object) -> None:
        room = self._rooms.get(str(data.get("room"))) if isinstance(data, dict) else None
        if room is not None:
            apply(room.presence, data)


class _Link(RoomLink):
    """What a Room needs from its client."""

    def __init__(self, client: KpkClient) -> None:
        self._client = client

    async def request(self, event: Event, payload: dict[str, JSON]) -> dict[str, JSON]:
        return await self._client.request(event, payload)

    def next_change_id(self) -> str:
        return self._client.next_change_id()

    @property
    def connected(self) -> bool:
        return self._client.connected

