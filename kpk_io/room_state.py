"""One room's state as the Python client sees it: pure bookkeeping, no I/O and no timers.

The twin of web/kpk-io/room-state.js; tests/client_vectors.json ("transitions") holds both to
one behaviour. `confirmed` is the state at `rev` as the server has it. Changes of other
members and this client's own acknowledged changes are applied to it strictly in rev order:
`held` keeps what arrived ahead of a gap, `own` keeps acknowledged changes of ours that are
ahead of one. Local edits are merged into `pending`; a change that was sent waits in
`in_flight`, under the id it was sent with, until its ack (or a sync result carrying that id)
gives its rev.

A rev carries exactly one change. When an ack and a committed change name the same rev with
different ids, the one reported last wins: the server reports in commit order, so a later
report of the same rev comes from a commit that rewrote the room's history (Redis lost data).
A tag names one commit, though: a whole state (`replace`) with the tag of our ack is that
commit's state, our change included, so the ack never undoes it; and a whole state at our
rev is the server's word on that rev, over whatever we made of it.
"""

import copy
import dataclasses
from dataclasses import dataclass

from kpk_io.change import Change, CommittedChange, State, merge_changes


@dataclass(frozen=True)
class RoomChange(CommittedChange):
    """What `on_change` listeners receive: a change another member made, as committed.

    `reset` is True when the server sent the whole state instead (it restarted empty, its
    store went back in time, or this client was away longer than the room's history): then
    `change` replaces every field, and `id` and `origin` are None.
    """

    reset: bool = False


@dataclass(frozen=True)
class Outgoing:
    """A change that was sent and is not acknowledged yet."""

    id: str
    change: Change


@dataclass(frozen=True)
class Own:
    """An acknowledged change of ours, waiting for the revs before it."""

    id: str
    change: Change
    tag: str | None


class RoomState:
    def __init__(self, room: str) -> None:
        self.room = room
        self.confirmed: State = {}
        self.rev = 0
        # The tag of the commit that made `rev`: a sync names it, so the server can tell
        # whether our history is still the room's.
        self.tag: str | None = None
        self.own: dict[int, Own] = {}
        self.held: dict[int, CommittedChange] = {}
        self.in_flight: list[Outgoing] = []
        self.pending: Change | None = None
        self.ever_joined = False
        # Updates that overtook the ack of a join on its way: they come after its snapshot
        # (of the room's current history), so they are applied on top of it, whatever we had.
        self.early: list[CommittedChange] | None = None

    @property
    def view(self) -> State:
        """The state as this client sees it: confirmed, then its own changes on top."""
        view = copy.deepcopy(self.confirmed)
        for rev in sorted(self.own):
            self.own[rev].change.apply_to(view)
        for entry in self.in_flight:
            entry.change.apply_to(view)
        if self.pending is not None:
            self.pending.apply_to(view)
        return view

    @property
    def has_gap(self) -> bool:
        """Whether a rev between `rev` and a change already here is still missing."""
        return bool(self.held or self.own)

    @property
    def has_unsent(self) -> bool:
        return bool(self.in_flight) or self.pending is not None

    def edit(self, change: Change) -> None:
        """A local edit, merged into what is not sent yet."""
        self.pending = change if self.pending is None else merge_changes(self.pending, change)

    def forget_text(self, field: str) -> None:
        """Take the unsent edits of text `field` (and its string) out of `pending`: they
        were made on a document the field has started over from (client_text.py)."""
        pending = self.pending
        if pending is not None and field in pending.text:
            fields = {k: v for k, v in pending.set.items() if k != field}
            text = {k: v for k, v in pending.text.items() if k != field}
            if fields or text or pending.unset or pending.replace:
                self.pending = dataclasses.replace(pending, set=fields, text=text)
            else:
                self.pending = None

    def send(self, change_id: str) -> Outgoing | None:
        """Move the pending change to in flight under `change_id`."""
        if self.pending is None:
            return None
        entry = Outgoing(change_id, self.pending)
        self.pending = None
        self.in_flight.append(entry)
        return entry

    def acknowledged(
        self, change_id: str, rev: int, tag: str | None = None, *, change: Change | None = None
    ) -> list[RoomChange]:
        """The ack of change `change_id`: committed as `rev`. `change` is given for a change
        sent outside `pending` (Room.commit). Returns the changes of others now applied."""
        entry = self._take_in_flight(change_id)
        committed = change if entry is None else entry.change
        if committed is not None and rev > self.rev and not self._holds_whole(rev, tag):
            self.held.pop(rev, None)  # reported before this ack: the ack is the later word
            self.own[rev] = Own(change_id, committed, tag)
        return self._advance()

    def drop(self, change_id: str) -> bool:
        """Forget change `change_id`: the server refused it for good."""
        return self._take_in_flight(change_id) is not None

    def remote(self, committed: CommittedChange) -> list[RoomChange]:
        """A committed change from an `update` event or a `sync` result."""
        if self.early is not None:
            self.early.append(committed)
            return []
        entry = None if committed.id is None else self._take_in_flight(committed.id)
        rev = committed.rev
        if rev == self.rev and committed.change.replace:
            return self._supersede(committed)
        if rev <= self.rev:
            return []  # known already (or covered by a whole state)
        own = self.own.get(rev)
        if entry is not None:  # ours, whose ack was lost
            self.held.pop(rev, None)
            self.own[rev] = Own(entry.id, entry.change, committed.tag)
        elif own is not None and own.id == committed.id:
            return []  # ours, replayed by a sync
        else:
            self.own.pop(rev, None)
            self.held[rev] = committed
        return self._advance()

    def reset(self, rev: int, state: State, tag: str | None = None) -> list[RoomChange]:
        """Take the server's whole state at `rev`; returns it as one replacing change, then
        what followed it."""
        if rev < self.rev or (rev == self.rev and tag != self.tag):
            # The server lost history (Redis failover, restored backup): the revs past its
            # rev will be handed out again, to other changes.
            self.own, self.held = {}, {}
        self.confirmed, self.rev, self.tag = copy.deepcopy(state), rev, tag
        self.own = {r: c for r, c in self.own.items() if r > rev}
        self.held = {r: c for r, c in self.held.items() if r > rev}
        whole = Change(copy.deepcopy(state), replace=True)
        return [RoomChange(self.room, rev, whole, tag=tag, reset=True), *self._advance()]

    def joining(self) -> None:
        """A join was sent: updates wait for its ack."""
        self.early = []

    def left(self) -> None:
        """The join failed or the connection dropped: updates received meanwhile are moot."""
        self.early = None

    def joined(
        self, rev: int, state: State, tag: str | None = None
    ) -> tuple[list[RoomChange], bool]:
        """A join's ack: the changes now applied, and whether a sync must follow."""
        first, self.ever_joined = not self.ever_joined, True
        early, self.early = self.early or [], None
        applied, needs_sync = [], (rev, tag) != (self.rev, self.tag)
        # Behind us only if the server lost data: start over from what it has now. At our own
        # rev and tag with another state, we applied a change on a history the server lost
        # (its ack raced the hub dropping us): the join's state is the truth.
        same = (rev, tag) == (self.rev, self.tag)
        if first or rev < self.rev or (same and state != self.confirmed):
            applied, needs_sync = self.reset(rev, state, tag), False
        for committed in early:
            applied += self.remote(committed)
        return applied, needs_sync

    def _holds_whole(self, rev: int, tag: str | None) -> bool:
        """Whether a whole state of the commit tagged `tag` already waits at `rev`."""
        held = self.held.get(rev)
        return tag is not None and held is not None and held.change.replace and held.tag == tag

    def _supersede(self, committed: CommittedChange) -> list[RoomChange]:
        """A whole state at our rev: the server sends one when its history and ours parted
        (Redis lost data), even for the commit our own ack named, so it replaces ours."""
        state: State = {}
        committed.change.apply_to(state)
        if committed.tag == self.tag and state == self.confirmed:
            return []
        if committed.tag != self.tag:
            self.own, self.held = {}, {}  # they followed a history the server no longer has
        self.confirmed, self.tag = state, committed.tag
        return [RoomChange(**vars(committed)), *self._advance()]

    def _take_in_flight(self, change_id: str) -> Outgoing | None:
        for index, entry in enumerate(self.in_flight):
            if entry.id == change_id:
                return self.in_flight.pop(index)
        return None

    def _advance(self) -> list[RoomChange]:
        """Apply to `confirmed` everything now contiguous with `rev`."""
        applied: list[RoomChange] = []
        while True:
            following = self.rev + 1
            own = self.own.pop(following, None)
            other = self.held.pop(following, None)
            if own is None and other is not None and not _follows(other, self.tag):
                self.held[following] = other  # made on another history: a sync (with our
                return applied  # tag) brings the server's whole state
            if own is not None:
                own.change.apply_to(self.confirmed)  # ours: never reported as someone else's
                self.tag = own.tag
            elif other is not None:
                other.change.apply_to(self.confirmed)
                self.tag = other.tag
                applied.append(RoomChange(**vars(other)))
            else:
                return applied
            self.rev = following


def _follows(committed: CommittedChange, tag: str | None) -> bool:
    """Whether `committed` was made on the commit tagged `tag` (unknown counts as yes)."""
    return committed.change.replace or None in (committed.prev, tag) or committed.prev == tag
