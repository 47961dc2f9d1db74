"""The `update` request: its parser, which refuses anything a room could not store (bad
field names, values that are no JSON, an update larger than the limits) before it reaches
the store. docs/protocol.md describes the same rules."""

from collections.abc import Mapping
from dataclasses import dataclass

from kpk_io.change import JSON, Change, encode_json, with_encoded
from kpk_io.limits import Limits, field_bytes
from kpk_io.protocol import (
    MAX_ID_LENGTH,
    ErrorCode,
    ProtocolError,
    is_int,
    is_unicode,
    json_problem,
    payload_object,
    payload_room,
)
from kpk_io.text import MARKER, is_reserved


@dataclass(frozen=True)
class UpdateRequest:
    room: str
    change: Change
    base_rev: int | None = None
    id: str | None = None


def parse_update(data: object, limits: Limits) -> UpdateRequest:
    body = payload_object(data)
    room = payload_room(body)
    if "set" not in body and "unset" not in body and "replace" not in body \
            and "text" not in body:
        raise _invalid_update("an update needs set, unset, replace or text")
    fields = _set_fields(body.get("set", {}), limits)
    unset = _unset_fields(body.get("unset", []), limits)
    texts = _text_edits(body.get("text", {}), limits)
    encoded = _check_size({**fields, **texts}, unset, limits)
    replace = body.get("replace", False)
    if not isinstance(replace, bool):
        raise _invalid_update("replace must be true or false")
    both = sorted(set(fields) & set(unset) | set(texts) & (set(fields) | set(unset))) \
        if unset or texts else None
    if both:
        raise _invalid_update(f"fields named twice (set, unset, text): {both}")
    base_rev = body.get("rev")
    if base_rev is not None and (not is_int(base_rev) or base_rev < 0):
        raise _invalid_update("rev must be a non-negative integer")
    change_id = body.get("id")
    if change_id is not None and (
        not isinstance(change_id, str) or not 0 < len(change_id) <= MAX_ID_LENGTH
    ):
        raise _invalid_update(f"id must be a string of 1 to {MAX_ID_LENGTH} characters")
    if change_id is not None and not is_unicode(change_id):
        raise _invalid_update("id must be valid Unicode")
    change = Change(fields, tuple(unset), replace, texts)
    if not texts:  # then `encoded` is the set values' text, which the store writes
        with_encoded(change, encoded)
    return UpdateRequest(room, change, base_rev, change_id)


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
    if not is_unicode(name):
        raise _invalid_update("field names must be valid Unicode")


def _check_size(
    fields: Mapping[str, JSON], unset: list[str], limits: Limits
) -> dict[str, str]:
    """Refuse an update no room could take: more fields than a room may hold, or set values
    larger than one update may carry; return each value's JSON text, as measured. The
    room's own totals are checked by the store."""
    if len(fields) + len(unset) > limits.fields:
        message = f"an update names at most {limits.fields} fields (a room's limit)"
        raise ProtocolError(ErrorCode.TOO_LARGE, message)
    encoded = {name: encode_json(value) for name, value in fields.items()}
    size = sum(field_bytes(name, text) for name, text in encoded.items())
    if size > limits.update_bytes:
        message = f"the fields set are {size} bytes encoded; at most {limits.update_bytes}"
        raise ProtocolError(ErrorCode.TOO_LARGE, message)
    return encoded


def _invalid_update(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_UPDATE, message)
