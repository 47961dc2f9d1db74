"""Room IDs: the one place they are checked, built from page URLs and mapped to Socket.IO rooms."""

import re
from urllib.parse import quote, unquote, urlsplit

MAX_ROOM_LENGTH = 256
# What a broken page sends when its template variable is missing.
_PLACEHOLDERS = frozenset({"undefined", "null"})
# Unicode's categories Cc (controls) and Cs (surrogates), exactly.
_CONTROL_OR_SURROGATE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Socket.IO delivers emit(to=sid) to any room named like a sid, so a room ID never names
# a Socket.IO room directly: it always goes behind this prefix.
_SIO_PREFIX = "room:"
# The characters JavaScript's encodeURIComponent leaves as they are (besides ASCII letters
# and digits, which quote() never escapes).
_URI_COMPONENT_SAFE = "-_.!~*'()"


class InvalidRoom(ValueError):
    """The value is not a usable room ID; the message says why."""


def check_room(value: object) -> str:
    """Return `value` if it is a valid room ID, else raise InvalidRoom."""
    if not isinstance(value, str):
        raise InvalidRoom("room must be a string")
    if not value or value.isspace():
        raise InvalidRoom("room must not be empty")
    if len(value) > MAX_ROOM_LENGTH:
        raise InvalidRoom(f"room must be at most {MAX_ROOM_LENGTH} characters")
    if _CONTROL_OR_SURROGATE.search(value):
        raise InvalidRoom("room must not contain control characters or lone surrogates")
    if value.strip().casefold() in _PLACEHOLDERS:
        raise InvalidRoom(f"room {value!r} is a placeholder, not an ID")
    return value


def sio_room(room: str) -> str:
    """The Socket.IO room that holds the members of `room`."""
    return _SIO_PREFIX + room


def room_of_sio_room(name: str) -> str | None:
    """Inverse of sio_room(): the room ID, or None for a room kpk-io did not make."""
    return name[len(_SIO_PREFIX) :] if name.startswith(_SIO_PREFIX) else None


def encode_uri_component(text: str) -> str:
    """Percent-encode exactly as JavaScript's encodeURIComponent does."""
    return quote(text, safe=_URI_COMPONENT_SAFE)


def decode_uri_component(segment: str) -> str | None:
    """Inverse of encode_uri_component(), as JavaScript's decodeURIComponent decodes: None
    where that would throw URIError (a malformed escape, or bytes that are not UTF-8)."""
    pieces = segment.split("%")
    for piece in pieces[1:]:
        if len(piece) < 2 or not all(c in "0123456789abcdefABCDEF" for c in piece[:2]):
            return None
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None


def room_from_path(pattern: str, path: str) -> str | None:
    """The room ID of a page, or None when `path` does not match `pattern`.

    `pattern` is a path such as ``/kpk/notes/:org/:project/:page``; each ``:name`` matches
    one non-empty segment. Every segment is percent-decoded, then encoded again as
    encodeURIComponent does, and the segments are joined with ``/``, so distinct segment
    tuples always give distinct rooms. `path` may be a full URL; its query and fragment are
    ignored. Malformed percent-encoding, or a parameter that is a placeholder such as
    ``undefined``, gives None.
    """
    wanted = _segments(pattern)
    given = _segments(urlsplit(path).path)
    if wanted is None or given is None or len(wanted) != len(given):
        return None
    parts = []
    for expected, raw in zip(wanted, given, strict=True):
        segment = decode_uri_component(raw)
        if segment is None or not segment:
            return None
        if expected.startswith(":"):
            if segment.strip().casefold() in _PLACEHOLDERS:
                return None
        elif segment != decode_uri_component(expected):
            return None
        parts.append(encode_uri_component(segment))
    room = "/".join(parts)
    try:
        return check_room(room)
    except InvalidRoom:
        return None


def _segments(path: str) -> list[str] | None:
    """Split an absolute path; one trailing slash is allowed, as Django URLs end with one."""
    if not path.startswith("/"):
        return None
    segments = path[1:].split("/")
    if len(segments) > 1 and segments[-1] == "":
        segments.pop()
    return segments
