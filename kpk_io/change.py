"""Changes to a room's state, as committed and as sent on the wire."""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from kpk_io.text import merge_text_updates

try:
    import orjson
except ImportError:  # pragma: no cover - the `speed` extra is not installed
    orjson = None  # type: ignore[assignment]

# A JSON value as kpk-io keeps it: what a room's fields hold, checked by mypy.
JSONValue: TypeAlias = dict[str, "JSONValue"] | list["JSONValue"] | str | int | float | bool | None
# A JSON value as it comes off the wire or goes onto it, before or without a check of its
# shape (acks, request bodies): parsers (protocol.py, from_wire) turn it into typed values.
JSON: TypeAlias = Any
State: TypeAlias = dict[str, JSONValue]


def encode_json(value: JSON) -> str:
    """Compact JSON text; raises ValueError for NaN/Infinity, which JSON cannot carry.

    orjson (the `speed` extra) writes the same text as the standard library below, except
    that it writes NaN and Infinity as `null` and refuses what it cannot represent (lone
    surrogates, integers past 64 bits, keys that are not strings): so its text is taken only
    when it holds no `null`, and the standard library decides every other case."""
    if value is None:
        return "null"
    if orjson is not None:
        try:
            text = orjson.dumps(value)
        except TypeError:  # orjson.JSONEncodeError
            pass
        else:
            if b"null" not in text:
                return text.decode()
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@dataclass(frozen=True)
class Change:
    """Set some top-level fields, remove others, or (replace) remove every field not set.

    `text` holds edits of text fields (kpk_io/text.py): field -> a base64 Yjs update (v1).
    A committed text edit also sets the field to the text's new plain string, so `set`
    alone tells display-only clients what the state is."""

    set: Mapping[str, JSON] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    replace: bool = False
    text: Mapping[str, str] = field(default_factory=dict)
    # `set`'s values as encode_json() writes them, when the maker of the change has them
    # (the update parser measures them): see with_encoded(). Not an argument, so that
    # dataclasses.replace(), which makes a change with other values, never copies it.
    encoded: Mapping[str, str] | None = field(default=None, init=False, repr=False,
                                              compare=False)

    def apply_to(self, state: State) -> None:
        if self.replace:
            state.clear()
        for name in self.unset:
            state.pop(name, None)
        state.update(self.set)


def with_encoded(change: Change, encoded: Mapping[str, str]) -> Change:
    """`change`, carrying `encoded`: encode_json() of each of its `set` values, in order."""
    object.__setattr__(change, "encoded", encoded)  # a frozen dataclass's own way
    return change


@dataclass(frozen=True)
class CommittedChange:
    """A change as the store committed it: its revision, who sent it, and its client id."""

    room: str
    rev: int
    change: Change
    id: str | None = None
    origin: str | None = None
    # A random tag per commit, and the tag of the commit before it: a hash chain that shows
    # when a room's history was rewritten (Redis lost data, then moved on past it).
    tag: str | None = None
    prev: str | None = None
    # Who made it, when auth is on: {user, name?} from the writer's token ({user: "api"} for
    # the HTTP API's key).
    by: Mapping[str, str] | None = None

    def to_wire(self) -> dict[str, JSON]:
        """The body of an `update` event and of a `sync` change entry."""
        body: dict[str, JSON] = {
            "room": self.room,
            "rev": self.rev,
            "set": dict(self.change.set),
            "unset": list(self.change.unset),
            "replace": self.change.replace,
        }
        if self.change.text:
            body["text"] = dict(self.change.text)
        if self.id is not None:
            body["id"] = self.id
        if self.tag is not None:
            body["tag"] = self.tag
        if self.prev:  # the tag of the commit before: a client on another history sees it
            body["prev"] = self.prev
        if self.by is not None:
            body["by"] = dict(self.by)
        return body

    @classmethod
    def from_wire(cls, room: str, body: object, origin: str | None = None) -> "CommittedChange":
        """Inverse of to_wire() (the room, and the origin a log entry records, come
        separately); raises ValueError if malformed.

        rev (a positive integer), set (an object), unset (a list of strings) and replace (a
        boolean) are required; id, tag and prev are strings or absent (null reads as absent);
        other keys are ignored. tests/client_vectors.json holds both clients to this."""
        try:
            if type(body) is not dict and not isinstance(body, Mapping):
                raise TypeError("not an object")
            rev, fields, unset, replace = body["rev"], body["set"], body["unset"], body["replace"]
            if not _is_rev(rev):
                raise TypeError(f"rev {rev!r}")
            if not isinstance(fields, dict) or not isinstance(replace, bool):
                raise TypeError(f"set {fields!r}, replace {replace!r}")
            if not isinstance(unset, list) or (
                unset and not all(isinstance(n, str) for n in unset)
            ):
                raise TypeError(f"unset {unset!r}")
            change_id = _optional_text(body, "id")
            tag, prev = _optional_text(body, "tag"), _optional_text(body, "prev")
            change = Change(dict(fields), tuple(unset), replace, _text(body.get("text")))
            return cls(room, int(rev), change, change_id, origin, tag, prev, _by(body.get("by")))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a change: {exc!r}") from exc


def _is_rev(value: object) -> bool:
    """A positive integer; 5.0 counts, because JavaScript cannot tell it from 5."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value >= 1 and (isinstance(value, int) or value.is_integer())


def _optional_text(body: Mapping[str, object], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{key} {value!r}")
    return value


def _text(value: object) -> dict[str, str]:
    """A change's `text`: field -> base64 update, or absent."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise TypeError(f"text {value!r}")
    return dict(value)


def merge_changes(first: Change, then: Change) -> Change:
    """One change with the effect of `first` followed by `then`. Text edits of one field
    merge into one update (Yjs updates commute); a later set or unset of the field ends
    its edits."""
    if then.replace:
        return then
    fields = {k: v for k, v in first.set.items() if k not in then.unset}
    fields.update(then.set)
    unset = tuple(n for n in first.unset if n not in then.set) + tuple(
        n for n in then.unset if n not in first.unset
    )
    ended = set(then.unset) | (set(then.set) - set(then.text))
    text = {k: v for k, v in first.text.items() if k not in ended}
    for name, update in then.text.items():
        text[name] = merge_text_updates(text[name], update) if name in text else update
    return Change(fields, () if first.replace else unset, first.replace, text)


def update_payload(
    room: str, change_id: str, change: Change, rev: int | None = None
) -> dict[str, JSON]:
    """The body of an `update` request: only what the change does (`set` when it does
    nothing, so the server has something to refuse or accept), and `rev` for
    compare-and-set."""
    body: dict[str, JSON] = {"room": room, "id": change_id}
    # A text field's plain string is the sender's own view; the edit itself travels in text.
    plain = {k: v for k, v in change.set.items() if k not in change.text}
    if plain or not (change.unset or change.replace or change.text):
        body["set"] = plain
    if change.text:
        body["text"] = dict(change.text)
    if change.unset:
        body["unset"] = list(change.unset)
    if change.replace:
        body["replace"] = True
    if rev is not None:
        body["rev"] = rev
    return body


def _by(value: object) -> dict[str, str] | None:
    """A change's `by`: {user} or {user, name}, strings; other fields are left out."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("user"), str):
        raise TypeError(f"by {value!r}")
    name = value.get("name")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"by {value!r}")
    return {"user": value["user"]} if name is None else {"user": value["user"], "name": name}


@dataclass(frozen=True)
class Snapshot:
    """The whole state of a room at one revision; a room never written is at rev 0."""

    rev: int
    state: State
    tag: str | None = None  # of the commit that made `rev`; None at rev 0
    # The merged Yjs state (base64, v1) of each text field; `state` holds its plain string.
    texts: dict[str, str] = field(default_factory=dict)
