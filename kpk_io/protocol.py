"""The wire protocol: event names, error codes, and parsers that turn raw payloads into
checked requests or raise ProtocolError (the update's is in update_request.py).
docs/protocol.md describes the same rules."""

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kpk_io.change import JSON, encode_json
from kpk_io.limits import Limits
from kpk_io.rooms import InvalidRoom, check_room

MAX_ID_LENGTH = 128
MIN_SECRET = 16
MAX_SIGNAL_BYTES = 4096  # a signal's data, encoded
MAX_META_BYTES = 1024  # a member's meta, encoded


# Names python-socketio uses for its own events: a client sending them gets unknown_event.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error"})


class Event(StrEnum):
    JOIN = "join"
    LEAVE = "leave"
    UPDATE = "update"
    SYNC = "sync"
    PRESENCE = "presence"
    SIGNAL = "signal"


class ErrorCode(StrEnum):
    INVALID_REQUEST = "invalid_request"
    INVALID_ROOM = "invalid_room"
    NOT_JOINED = "not_joined"
    INVALID_UPDATE = "invalid_update"
    TEXT_STALE = "text_stale"  # a text edit made on a document the server no longer holds
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    UNKNOWN_EVENT = "unknown_event"
    TOO_MANY_ROOMS = "too_many_rooms"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    UNAUTHORIZED = "unauthorized"  # connect: no usable token
    FORBIDDEN = "forbidden"  # the token does not allow this room, or only reading it


class ProtocolError(Exception):
    """A refused request: nothing changed, except after `unavailable` for an update, whose
    outcome is unknown. `extra` adds fields to the ack (e.g. rev)."""

    def __init__(self, code: ErrorCode, message: str, **extra: JSON) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def to_ack(self) -> dict[str, JSON]:
        return {"ok": False, **self.to_data()}

    def to_data(self) -> dict[str, JSON]:
        """The refusal as `{error, message, ...}`: a connect_error's data, an HTTP body."""
        return {"error": str(self.code), "message": self.message, **self.extra}


@dataclass(frozen=True)
class SyncRequest:
    room: str
    since: int
    tag: str | None = None


@dataclass(frozen=True)
class SignalRequest:
    room: str
    data: JSON


@dataclass(frozen=True)
class PresenceRequest:
    room: str
    meta: dict[str, JSON]


def client_secret(auth: object) -> str | None:
    """The `client` secret of a connect `auth` object, or None when none is given; one that
    is given must be 16 to 128 characters of valid Unicode, or the connection is refused:
    a short one would quietly weaken the dedupe it keys."""
    secret = auth.get("client") if isinstance(auth, dict) else None
    if secret is None:
        return None
    if not (isinstance(secret, str) and MIN_SECRET <= len(secret) <= MAX_ID_LENGTH):
        message = f"client must be a string of {MIN_SECRET} to {MAX_ID_LENGTH} characters"
        raise ProtocolError(ErrorCode.INVALID_REQUEST, message)
    if not is_unicode(secret):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "client must be valid Unicode")
    return secret


def dedupe_key(sender: str, change_id: str | None) -> str | None:
    """The store's dedupe key of a change: its id as only its sender can produce it, so no
    other member can cancel a change by committing its (visible) id first."""
    if change_id is None:
        return None
    # surrogatepass: an id is checked before it gets here, but a key must never fail to hash.
    key = f"{sender}\0{change_id}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(key).hexdigest()[:32]


def ok(**fields: JSON) -> dict[str, JSON]:
    return {"ok": True, **fields}


def parse_room_request(data: object) -> str:
    """The room of a join or leave request."""
    return payload_room(payload_object(data))


def parse_join_meta(data: object, limits: Limits) -> dict[str, JSON]:
    """The optional `meta` a join starts the member with (`{}` when none is given)."""
    body = payload_object(data)
    return _meta(body.get("meta", {}), limits) if "meta" in body else {}


def parse_presence(data: object, limits: Limits) -> PresenceRequest:
    body = payload_object(data)
    room = payload_room(body)
    if "meta" not in body:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "presence needs meta")
    return PresenceRequest(room, _meta(body["meta"], limits))


def parse_signal(data: object, limits: Limits) -> SignalRequest:
    body = payload_object(data)
    room = payload_room(body)
    if "data" not in body:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "a signal needs data")
    return SignalRequest(room, _small_json(body["data"], "data", MAX_SIGNAL_BYTES, limits))


def _meta(value: object, limits: Limits) -> dict[str, JSON]:
    if not isinstance(value, dict):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "meta must be an object")
    checked = _small_json(value, "meta", MAX_META_BYTES, limits)
    assert isinstance(checked, dict)
    return checked


def _small_json(value: object, what: str, max_bytes: int, limits: Limits) -> JSON:
    problem = json_problem(value, limits.depth)
    if problem:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, f"{what}: {problem}")
    size = len(encode_json(value).encode())
    if size > max_bytes:
        message = f"{what} is {size} bytes encoded; at most {max_bytes}"
        raise ProtocolError(ErrorCode.TOO_LARGE, message)
    return value


def parse_sync(data: object) -> SyncRequest:
    body = payload_object(data)
    room = payload_room(body)
    since = body.get("since", 0)
    if not is_int(since) or since < 0:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "since must be a non-negative integer")
    tag = body.get("tag")
    if tag is not None and not (isinstance(tag, str) and 0 < len(tag) <= MAX_ID_LENGTH):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "tag must be a short string")
    return SyncRequest(room, since, tag)


def payload_object(data: object) -> Mapping[str, Any]:
    """A request's payload, which must be an object."""
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "the payload must be an object")
    return data


def payload_room(body: Mapping[str, Any]) -> str:
    """The checked `room` of a request's payload."""
    try:
        return check_room(body.get("room"))
    except InvalidRoom as exc:
        raise ProtocolError(ErrorCode.INVALID_ROOM, str(exc)) from None


def json_problem(value: object, max_depth: int) -> str | None:
    """Why `value` cannot be stored and sent on as JSON, or None.

    Nesting is limited (the value is level 1, each object or array inside adds one) because
    deep values break encoders further on (python-socketio recurses two frames per level and
    fails near 490), which would make a room unreadable.
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list) and depth > max_depth:
            return f"nested deeper than {max_depth} levels"
        if isinstance(item, str):
            if not is_unicode(item):
                return "a string is not valid Unicode (lone surrogate)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "not a finite JSON number"
        elif isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif item is not None and not isinstance(item, bool | int):
            return f"{type(item).__name__} is not a JSON value"
    return None


def is_unicode(text: str) -> bool:
    """Whether `text` has no lone surrogate (it encodes as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_int(value: object) -> bool:
    """Whether `value` is a JSON integer (True and False are not)."""
    return isinstance(value, int) and not isinstance(value, bool)
