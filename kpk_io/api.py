"""HTTP API for publishing from outside: list rooms; read, change and clear a room.

    GET    /api/rooms?limit=N&cursor=C
                              -> 200 {rooms: [{room, rev, fields, bytes, changed, members}],
                                      cursor}
    GET    /api/rooms/{room}  -> 200 {room, rev, state}
    PATCH  /api/rooms/{room}  the `update` event's body (set, unset, replace, rev, id)
                              -> 200 {room, rev}, broadcast to every member
    DELETE /api/rooms/{room}  -> 200 {room, rev}: a replace with no fields, broadcast too

{room} is the room ID percent-encoded as one path segment (encodeURIComponent), decoded
exactly once. The API is off (404 `api_disabled`) unless an API key or a JWT key is
configured. Every request needs `Authorization: Bearer CREDENTIAL`: the API key (full
access; its changes carry `by: {user: "api"}`), or a JWT whose `rooms` admit the room (to
change it) or whose `rooms` or `read_rooms` do (to read it), whose changes carry its `by`;
listing every room takes the API key or a token with the pattern `*`. No usable credential
is 401 `unauthorized`; a room the token does not allow is 403 `forbidden`. Every GET (the
list too) takes a token from the client address's bucket of reads, PATCH and DELETE from its
bucket of updates. Errors (api_guard.py), unknown /api/ paths and methods too
(api_errors.py), are `{error, message}` (plus `rev` for a conflict) with the protocol's
codes; docs/deployment.md lists the status of each.
"""

import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from kpk_io.address import TrustedProxies, limited_by
from kpk_io.api_errors import api_errors
from kpk_io.api_guard import Action, Credentials, Guard
from kpk_io.change import JSON
from kpk_io.commits import (
    PublishError,
    clear_request,
    commit_change,
    parse_change,
    read_room,
    take,
)
from kpk_io.config import Settings
from kpk_io.identity import Identity, TokenVerifier
from kpk_io.limits import Limits
from kpk_io.logs import bind_request
from kpk_io.metrics import Metrics
from kpk_io.presence import PresenceStore
from kpk_io.protocol import ErrorCode
from kpk_io.rate import KeyedBuckets
from kpk_io.rooms import InvalidRoom, check_room, decode_uri_component
from kpk_io.store.base import MAX_PAGE, StateStore, StoreUnavailable
from kpk_io.update_request import UpdateRequest

ROOMS_PATH = "/api/rooms"
# Any one segment: aiohttp's default `[^{}/]+` would answer 404 for rooms with braces.
ROOM_PATH = "/api/rooms/{room:[^/]+}"
RoomAction = Callable[[web.Request, str, Identity], Awaitable[dict[str, JSON]]]


def add_api_routes(
    app: web.Application, store: StateStore, settings: Settings, metrics: Metrics,
    verifier: TokenVerifier | None = None, *, presence: PresenceStore,
) -> None:
    app.middlewares.append(api_errors)  # unknown /api/ paths and methods: the JSON body
    rooms = _RoomApi(store, presence, metrics, settings)
    guard = Guard(Credentials(settings.api_key, verifier), metrics)
    app.router.add_get(ROOMS_PATH, guard.endpoint("api_list", rooms.list))
    app.router.add_get(ROOM_PATH, guard.endpoint("api_get", _in_room(rooms.get, write=False)))
    app.router.add_patch(
        ROOM_PATH, guard.endpoint("api_patch", _in_room(rooms.patch, write=True), update=True)
    )
    app.router.add_delete(
        ROOM_PATH, guard.endpoint("api_delete", _in_room(rooms.delete, write=True), update=True)
    )


class _RoomApi:
    """The endpoints' actions. Rates are counted per client address, in buckets like a
    connection's: changes take from the updates bucket, reads from the requests bucket."""

    def __init__(
        self, store: StateStore, presence: PresenceStore, metrics: Metrics, settings: Settings,
    ) -> None:
        self._store = store
        self._presence = presence
        self._metrics = metrics
        self._limits = Limits.from_settings(settings)
        self._proxies = TrustedProxies(settings.trusted_proxies)
        self._updates = KeyedBuckets(self._limits.updates)
        self._reads = KeyedBuckets(self._limits.requests)

    async def list(self, request: web.Request, who: Identity) -> dict[str, JSON]:
        if not who.permissions.every_room:
            raise PublishError(ErrorCode.FORBIDDEN, "listing rooms takes the API key or a "
                               "token whose rooms or read_rooms include *")
        self._take(self._reads, request)  # a read, like GET of one room
        limit = _limit(request.query.get("limit", "100"))
        try:
            page = await self._store.list_rooms(request.query.get("cursor") or None, limit)
            members = await self._presence.counts([r.room for r in page.rooms])
        except ValueError:
            raise PublishError(ErrorCode.INVALID_REQUEST, "cursor: not one this API gave") from None
        except StoreUnavailable:
            raise PublishError(ErrorCode.UNAVAILABLE, "the store cannot be reached") from None
        rooms: list[JSON] = [
            {"room": r.room, "rev": r.rev, "fields": r.fields, "bytes": r.bytes,
             "changed": _iso_time(r.changed), "members": members.get(r.room, 0)}
            for r in page.rooms
        ]
        return {"rooms": rooms, "cursor": page.cursor}

    async def get(self, request: web.Request, room: str, who: Identity) -> dict[str, JSON]:
        self._take(self._reads, request)
        snapshot = await read_room(self._store, room)
        return {"room": room, "rev": snapshot.rev, "state": snapshot.state}

    async def patch(self, request: web.Request, room: str, who: Identity) -> dict[str, JSON]:
        self._take(self._updates, request)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise PublishError(ErrorCode.INVALID_REQUEST, "the body must be a JSON object")
        if body.get("room", room) != room:
            raise PublishError(ErrorCode.INVALID_REQUEST, "the room is given by the path")
        return await self._commit(parse_change({**body, "room": room}, self._limits), who)

    async def delete(self, request: web.Request, room: str, who: Identity) -> dict[str, JSON]:
        self._take(self._updates, request)
        return await self._commit(clear_request(room), who)

    def _take(self, buckets: KeyedBuckets, request: web.Request) -> None:
        forwarded = request.headers.get("X-Forwarded-For")
        address = self._proxies.client_address(request.remote, forwarded)
        take(buckets.bucket(limited_by(address)))

    async def _commit(self, update: UpdateRequest, who: Identity) -> dict[str, JSON]:
        started = time.perf_counter()
        try:
            rev = await commit_change(self._store, update, by=who.by)
        finally:
            self._metrics.commit_seconds.observe(time.perf_counter() - started)
        return {"room": update.room, "rev": rev}


def _in_room(action: RoomAction, *, write: bool) -> Action:
    """`action` for the room the path names, if the credentials allow it (to change it,
    with `write`), with log lines tagged by it."""

    async def in_room(request: web.Request, who: Identity) -> dict[str, JSON]:
        room = _room_of(request)
        _require(who, room, write)
        with bind_request(None, room):
            return await action(request, room, who)

    return in_room


def _require(who: Identity, room: str, write: bool) -> None:
    try:
        check_room(room)
    except InvalidRoom as exc:
        raise PublishError(ErrorCode.INVALID_ROOM, str(exc)) from None
    if write and not who.permissions.can_write(room):
        raise PublishError(ErrorCode.FORBIDDEN, f"the token may not change room {room!r}")
    if not who.permissions.can_read(room):
        raise PublishError(ErrorCode.FORBIDDEN, f"the token does not admit room {room!r}")


def _limit(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE:
        raise PublishError(ErrorCode.INVALID_REQUEST, f"limit: a number from 1 to {MAX_PAGE}")
    return int(text)


def _iso_time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _room_of(request: web.Request) -> str:
    """The room ID: the path's last segment as sent, percent-decoded exactly once.

    aiohttp's own match_info keeps malformed escapes as they are; decoding here refuses them,
    as decodeURIComponent would. The ID itself is checked by the protocol's parsers.
    """
    room = decode_uri_component(request.rel_url.raw_path.rpartition("/")[2])
    if room is None:
        message = "the room must be percent-encoded as UTF-8 (encodeURIComponent)"
        raise PublishError(ErrorCode.INVALID_ROOM, message)
    return room


async def _json_body(request: web.Request) -> object:
    try:
        return json.loads(await request.read())
    # JSONDecodeError, UnicodeDecodeError, and nesting past the decoder's recursion limit.
    # (NaN and Infinity are read, and refused by the update's own checks.)
    except (ValueError, RecursionError):
        raise PublishError(ErrorCode.INVALID_REQUEST, "the body must be JSON") from None
