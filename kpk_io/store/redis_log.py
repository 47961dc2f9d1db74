"""A room's log entry in Redis, defined once: what commit.lua writes and publishes, and how
the store, its feed and its room listing read it back.

An entry is one JSON object, its keys always in this order:

    {"rev":N,"tag":"T","prev":"P","set":{...}[,"text":{...}],"unset":[...],"replace":B,"id":I,
     "origin":O,"time":MS[,"by":{"user":U[,"name":N]}]}

`tag` is the commit's random tag and `prev` the tag of the entry before it ("" for a room's
first entry): the hash chain of CommittedChange. `time` is the commit's wall-clock time in
ms. The script writes the head (entry_head: rev, tag and prev, because only it knows rev and
the previous entry) in front of the body made here (entry_body), and finds a tag again with
the pattern TAG_PATTERN_LUA spells. On the room's channel the script publishes
message_head(room) + entry + "}". tests/test_store.py checks that what the script writes is
exactly entry_head() + entry_body() and reads back as the committed change.
"""

import functools
import json
import logging
from collections.abc import Mapping, Sequence

from kpk_io import json_codec
from kpk_io.change import Change, CommittedChange, encode_json

log = logging.getLogger(__name__)

# How commit.lua finds a tag in an entry's head (tags are hex: base.new_tag).
TAG_PATTERN_LUA = '^{"rev":%d+,"tag":"(%w+)"'


def entry_head(rev: int, tag: str, prev: str) -> str:
    """The start of an entry, as commit.lua writes it (the Python twin, for tests)."""
    return f'{{"rev":{rev},"tag":"{tag}","prev":"{prev}",'


def encoded_fields(change: Change) -> list[tuple[str, str]]:
    """The change's fields with their values as JSON text: what the script stores in the
    room's hash, and what entry_body() writes (already made by the update parser, mostly)."""
    if change.encoded is not None:
        return list(change.encoded.items())
    return [(name, encode_json(value)) for name, value in change.set.items()]


def entry_body(
    change: Change,
    encoded: Sequence[tuple[str, str]],
    *,
    change_id: str | None,
    origin: str | None,
    by: Mapping[str, str] | None,
    time_ms: int,
) -> str:
    """The rest of an entry after its head, closing brace included; `encoded` is
    encoded_fields(change), made once for the hash and the entry."""
    fields = ",".join(f"{encode_json(name)}:{text}" for name, text in encoded)
    texts = f'"text":{encode_json(dict(change.text))},' if change.text else ""
    return (
        f'"set":{{{fields}}},{texts}"unset":{encode_json(list(change.unset))},'
        f'"replace":{encode_json(change.replace)},"id":{encode_json(change_id)},'
        f'"origin":{encode_json(origin)},"time":{time_ms}'
        + ("" if by is None else f',"by":{encode_json(dict(by))}')
        + "}"
    )


@functools.lru_cache(maxsize=4096)  # every commit writes one
def message_head(room: str) -> str:
    """A feed message is message_head(room) + entry + "}": {"room": R, "entry": {...}}."""
    return encode_json({"room": room})[:-1] + ',"entry":'


def parse_entry(room: str, raw: object) -> CommittedChange | None:
    """A log entry as the commit script wrote it; None (logged) when it is not one."""
    try:
        return _from_entry(room, json_codec.loads(_text(raw)))
    except ValueError:
        log.warning("room %r: log entry is not valid; its history is treated as lost", room)
        return None


def parse_message(raw: object) -> CommittedChange | None:
    """A feed message; None (logged) when it is not one."""
    try:
        data = json_codec.loads(_text(raw))
        return _from_entry(str(data["room"]), data["entry"])
    except (ValueError, KeyError, TypeError):
        log.error("change feed: message is not valid, skipped: %.200r", raw)
        return None


def entry_time(raw: bytes | None) -> float | None:
    """The commit time an entry records, in seconds (entries written before it was kept
    have none)."""
    try:
        millis = json.loads(raw or b"null").get("time")
    except (ValueError, AttributeError):
        return None
    return millis / 1000 if isinstance(millis, int) else None


def _from_entry(room: str, body: object) -> CommittedChange:
    """Raises ValueError when `body` is not an entry."""
    origin = body.get("origin") if isinstance(body, dict) else None
    if origin is not None and not isinstance(origin, str):
        raise ValueError(f"origin {origin!r}")
    return CommittedChange.from_wire(room, body, origin=origin)


def _text(value: object) -> str:
    """Raises ValueError (UnicodeDecodeError) for bytes that are not UTF-8."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
