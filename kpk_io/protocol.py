"""The wire protocol: event names, error codes, and parsers that turn raw payloads into
checked requests or raise ProtocolError. docs/protocol.md describes the same rules."""

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kpk_io.change import JSON, Change, encode_json
from kpk_io.limits import Limits, field_bytes
from kpk_io.rooms import InvalidRoom, check_room
from kpk_io.text import MARKER, is_reserved

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
class UpdateRequest:
    room: str
    change: Change
    base_rev: int | None = None
    id: str | None = None


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
    if not _is_unicode(secret):
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
    return _room(_object(data))


def parse_join_meta(data: object, limits: Limits) -> dict[str, JSON]:
    """The optional `meta` a join starts the member with (`{}` when none is given)."""
    body = _object(data)
    return _meta(body.get("meta", {}), limits) if "meta" in body else {}


def parse_presence(data: object, limits: Limits) -> PresenceRequest:
    body = _object(data)
    room = _room(body)
    if "meta" not in body:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "presence needs meta")
    return PresenceRequest(room, _meta(body["meta"], limits))


def parse_signal(data: object, limits: Limits) -> SignalRequest:
    body = _object(data)
    room = _room(body)
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
    body = _object(data)
    room = _room(body)
    since = body.get("since", 0)
    if not _is_int(since) or since < 0:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "since must be a non-negative integer")
    tag = body.get("tag")
    if tag is not None and not (isinstance(tag, str) and 0 < len(tag) <= MAX_ID_LENGTH):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "tag must be a short string")
    return SyncRequest(room, since, tag)


def parse_update(data: object, limits: Limits) -> UpdateRequest:
    body = _object(data)
    room = _room(body)
    if not any(key in body for key in ("set", "unset", "replace", "text")):
        raise _invalid_update("an update needs set, unset, replace or text")
    fields = _set_fields(body.get("set", {}), limits)
    unset = _unset_fields(body.get("unset", []), limits)
    texts = _text_edits(body.get("text", {}), limits)
    _check_size({**fields, **texts}, unset, limits)
    replace = body.get("replace", False)
    if not isinstance(replace, bool):
        raise _invalid_update("replace must be true or false")
    both = sorted(set(fields) & set(unset) | set(texts) & (set(fields) | set(unset)))
    if both:
        raise _invalid_update(f"fields named twice (set, unset, text): {both}")
    base_rev = body.get("rev")
    if base_rev is not None and (not _is_int(base_rev) or base_rev < 0):
        raise _invalid_update("rev must be a non-negative integer")
    change_id = body.get("id")
    if change_id is not None and (
        not isinstance(change_id, str) or not 0 < len(change_id) <= MAX_ID_LENGTH
    ):
        raise _invalid_update(f"id must be a string of 1 to {MAX_ID_LENGTH} characters")
    if change_id is not None and not _is_unicode(change_id):
        raise _invalid_update("id must be valid Unicode")
    change = Change(fields, tuple(unset), replace, texts)
    return UpdateRequest(room, change, base_rev, change_id)


def _object(data: object) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "the payload must be an object")
    return data


def _room(body: Mapping[str, Any]) -> str:
    try:
        return check_room(body.get("room"))
    except InvalidRoom as exc:
        raise ProtocolError(ErrorCode.INVALID_ROOM, str(exc)) from None


def _set_fields(value: object, limits: Limits) -> dict[str, JSON]:
    if not isinstance(value, dict):
        raise _invalid_update("set must be an object of field names to JSON values")
    for name, field_value in value.items():
        _check_name(name, limits)
        problem = json_problem(field_value, limits.depth)
        if problem:
            raise _invalid_update(f"field {name[:64]!r}: {problem}")
        if is_reserved(field_value):
            raise _invalid_update(f"field {name[:64]!r}: {{{MARKER!r}: ...}} is a stored text")
    return dict(value)


def _text_edits(value: object, limits: Limits) -> dict[str, str]:
    """An update's `text`: field -> base64 Yjs update (v1); decoded when merged."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _invalid_update("text must be an object of field names to base64 Yjs updates")
    for name in value:
        _check_name(name, limits)
    return dict(value)


def _unset_fields(value: object, limits: Limits) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise _invalid_update("unset must be a list of non-empty field names")
    for name in value:
        _check_name(name, limits)
    return list(dict.fromkeys(value))


def _check_name(name: str, limits: Limits) -> None:
    if not name:
        raise _invalid_update("field names must not be empty")
    if len(name) > limits.field_name:
        raise _invalid_update(f"field names are at most {limits.field_name} characters")
    if not _is_unicode(name):
        raise _invalid_update("field names must be valid Unicode")


def _check_size(fields: Mapping[str, JSON], unset: list[str], limits: Limits) -> None:
    """Refuse an update no room could take: more fields than a room may hold, or set values
    larger than one update may carry. The room's own totals are checked by the store."""
    if len(fields) + len(unset) > limits.fields:
        message = f"an update names at most {limits.fields} fields (a room's limit)"
        raise ProtocolError(ErrorCode.TOO_LARGE, message)
    size = sum(field_bytes(name, encode_json(value)) for name, value in fields.items())
    if size > limits.update_bytes:
        message = f"the fields set are {size} bytes encoded; at most {limits.update_bytes}"
        raise ProtocolError(ErrorCode.TOO_LARGE, message)


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
            if not _is_unicode(item):
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


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _invalid_update(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_UPDATE, message)
