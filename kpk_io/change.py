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
        return body

    @classmethod
    def from_wire(cls, room: str, body: Mapping[str, JSON]) -> "CommittedChange":
        """Inverse of to_wire() (the room comes separately); raises ValueError if malformed."""
        try:
            change = Change(dict(body["set"]), tuple(body["unset"]), bool(body["replace"]))
            change_id = body.get("id")
            if change_id is not None and not isinstance(change_id, str):
                raise TypeError(f"id {change_id!r}")
            return cls(room, int(body["rev"]), change, change_id)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a change: {exc!r}") from exc


@dataclass(frozen=True)
class Snapshot:
    """The whole state of a room at one revision; a room never written is at rev 0."""

    rev: int
    state: State
