"""The names of a room's keys and channel in Redis: built only here, with their inverse."""

import functools
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote


@dataclass(frozen=True)
class RoomKeys:
    state: str
    rev: str
    log: str
    ids: str
    size: str  # the log's total bytes
    state_size: str  # bytes of the state's field names and values
    channel: str

    @property
    def stored(self) -> list[str]:
        """Every key the room keeps in Redis (the channel is not one)."""
        return [self.state, self.rev, self.log, self.ids, self.size, self.state_size]


@functools.lru_cache(maxsize=4096)  # every commit and read names them
def room_keys(prefix: str, room: str) -> RoomKeys:
    """The only place room keys are named.

    The percent-encoded room is the Redis Cluster hash tag: it never holds a brace, so every
    key of a room lands in one slot whatever the room ID contains, and the encoding is
    one-to-one, so distinct rooms never share a key.
    """
    base = f"{prefix}{{{quote(room, safe='')}}}"
    return RoomKeys(
        f"{base}:state", f"{base}:rev", f"{base}:log", f"{base}:ids", f"{base}:size",
        f"{base}:statesize", f"{base}:feed",
    )


def rev_key_pattern(prefix: str) -> str:
    """A SCAN pattern matching the rev key of every room under `prefix` (see room_keys)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "{*}:rev"


def room_of_rev_key(prefix: str, key: bytes | str) -> str | None:
    """The inverse of room_keys(prefix, room).rev; None for a key of another shape."""
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    head, tail = f"{prefix}{{", "}:rev"
    if not (text.startswith(head) and text.endswith(tail)):
        return None
    try:
        room = unquote(text[len(head):-len(tail)], errors="strict")
    except UnicodeDecodeError:
        return None
    return room if room_keys(prefix, room).rev == text else None
