"""Who else is in a room, as the Python client sees it, and the signals they send.

The join ack lists the members at the moment it was read; `presence` events may overtake
it (they come from other nodes). Events that arrive while a join is in flight are kept and
applied on top of the ack's list, in arrival order: each event is newer than, or already
part of, that list, and applying a `joined`, `left` or `updated` twice is harmless. The
browser client (web/kpk-io/presence.js) does the same; docs/protocol.md states the rule.
"""

import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal

from kpk_io.change import JSON
from kpk_io.presence import Member, member_from_wire

log = logging.getLogger(__name__)

PresenceKind = Literal["joined", "left", "updated", "reset"]
KINDS: tuple[PresenceKind, ...] = ("joined", "left", "updated")
# listener(kind, members): `reset` carries everyone, after each join.
PresenceListener = Callable[[PresenceKind, list[Member]], None]
# listener(from, data): `from` is the sender's member id, None from the server side.
SignalListener = Callable[[str | None, JSON], None]


class Presence:
    def __init__(self, room: str) -> None:
        self.room = room
        self.me: Member | None = None
        self._members: dict[str, Member] = {}
        self._early: list[Mapping[str, Any]] | None = None  # events during a join
        self._listeners: list[PresenceListener] = []
        self._signal_listeners: list[SignalListener] = []

    @property
    def members(self) -> list[Member]:
        return list(self._members.values())

    def on_presence(self, listener: PresenceListener) -> Callable[[], None]:
        return _add(self._listeners, listener)

    def on_signal(self, listener: SignalListener) -> Callable[[], None]:
        return _add(self._signal_listeners, listener)

    def joining(self) -> None:
        """A join was sent: keep events until its ack."""
        self._early = []

    def joined(self, ack: Mapping[str, JSON]) -> None:
        """The join's ack: its members, then whatever came meanwhile."""
        early, self._early = self._early or [], None
        listed = [member_from_wire(m) for m in ack.get("members") or []]
        self._members = {m.id: m for m in listed if m is not None}
        self.me = member_from_wire(ack.get("member"))
        self._emit("reset", self.members)
        for event in early:
            self.event(event)

    def meta_set(self, meta: dict[str, JSON]) -> None:
        """The server took this client's new meta (others get `updated`, not this one)."""
        if self.me is not None:
            self.me = Member(self.me.id, self.me.user, self.me.name, meta)
            self._members[self.me.id] = self.me
            self._emit("updated", [self.me])

    def left(self) -> None:
        """Not a member any more (disconnected, a failed join): nobody is known to be here."""
        self._early = None
        if self._members:
            self._members = {}
            self._emit("reset", [])

    def event(self, body: Mapping[str, Any]) -> None:
        if self._early is not None:
            self._early.append(body)
            return
        for kind in KINDS:
            changed = [m for m in map(member_from_wire, body.get(kind) or []) if m is not None]
            for member in changed:
                if kind == "left":
                    self._members.pop(member.id, None)
                else:
                    self._members[member.id] = member
            if changed:
                self._emit(kind, changed)

    def signal(self, body: Mapping[str, Any]) -> None:
        sender = body.get("from")
        for listener in list(self._signal_listeners):
            try:
                listener(sender if isinstance(sender, str) else None, body.get("data"))
            except Exception:
                log.exception("room %r: a signal listener failed", self.room)

    def _emit(self, kind: PresenceKind, members: list[Member]) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, members)
            except Exception:
                log.exception("room %r: a presence listener failed", self.room)


def _add(listeners: list[Any], listener: Any) -> Callable[[], None]:
    listeners.append(listener)

    def remove() -> None:
        if listener in listeners:
            listeners.remove(listener)

    return remove
