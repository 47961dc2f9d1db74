"""Changes to a room's state, as committed and as sent on the wire."""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

JSON: TypeAlias = Any
State: TypeAlias = dict[str, JSON]


def encode_json(value: JSON) -> str:
    """Compact JSON text; raises ValueError for NaN/Infinity, which JSON cannot carry."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@dataclass(frozen=True)
class Change:
    """Set some top-level fields, remove others, or (replace) remove every field not set."""

    set: Mapping[str, JSON] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    replace: bool = False

    def apply_to(self, state: State) -> None:
        if self.replace:
            state.clear()
        for name in self.unset:
            state.pop(name, None)
        state.update(self.set)


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
        if self.id is not None:
            body["id"] = self.id
        if self.tag is not None:
            body["tag"] = self.tag
        if self.by is not None:
            body["by"] = dict(self.by)
        return body

    @classmethod
    def from_wire(cls, room: str, body: Mapping[str, JSON]) -> "CommittedChange":
        """Inverse of to_wire() (the room comes separately); raises ValueError if malformed."""
        try:
            change = Change(dict(body["set"]), tuple(body["unset"]), bool(body["replace"]))
            change_id, tag, prev = body.get("id"), body.get("tag"), body.get("prev")
            for name, value in (("id", change_id), ("tag", tag), ("prev", prev)):
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"{name} {value!r}")
            by = _by(body.get("by"))
            return cls(room, int(body["rev"]), change, change_id, None, tag, prev, by)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a change: {exc!r}") from exc


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
