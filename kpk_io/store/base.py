"""The contract every state store honours; tests/test_store.py runs against each one."""

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from kpk_io.change import Change, CommittedChange, Snapshot
from kpk_io.limits import Limits

DEFAULT_HISTORY = 1000
DEFAULT_HISTORY_BYTES = 8 * 1024 * 1024
SECONDS_PER_DAY = 86_400


def new_tag() -> str:
    """A commit's random tag (see CommittedChange)."""
    return secrets.token_hex(8)


def continuing(
    entries: list[CommittedChange], since: int, tag: str | None, rev: int
) -> list[CommittedChange] | None:
    """The changes after `since` from log `entries` (oldest first, ending at `rev`), or None
    when the log does not reach back that far, or when `tag` is given and the change at
    `since` is not the one it names: the history was rewritten."""
    if entries and entries[0].rev == since:
        anchor = entries.pop(0)
        if tag is not None and anchor.tag != tag:
            return None
    elif since > 0 and tag is not None:
        return None
    if [entry.rev for entry in entries] != list(range(since + 1, rev + 1)):
        return None
    return entries


def dedupe_window(history: int) -> int:
    """How many revs back a dedupe key is remembered: well past the log, so a client whose
    ack was lost, and that comes back to a whole state rather than a list of changes, can
    still send its change again safely."""
    return 10 * history


class StoreUnavailable(Exception):
    """The store could not be reached or did not answer in time. For a read nothing
    happened; for a commit the outcome is unknown (the store may have applied it before its
    reply was lost): send it again with the same dedupe key to find out."""


@dataclass(frozen=True)
class Conflict:
    """A compare-and-set commit found the room at another revision; nothing changed."""

    rev: int


@dataclass(frozen=True)
class Duplicate:
    """A change with this dedupe key was committed already, as `rev`; nothing changed."""

    rev: int
    tag: str | None = None  # of that commit, when the log still has it


@dataclass(frozen=True)
class Stale:
    """A guarded field (a text edit's) is no longer as it was read; nothing changed: read
    it again, merge again and retry."""

    rev: int


@dataclass(frozen=True)
class TooLarge:
    """The change would take the room past its bound on fields or encoded bytes; nothing
    changed."""

    message: str


def exceeds(
    limits: Limits, after: tuple[int, int], before: tuple[int, int] = (0, 0)
) -> TooLarge | None:
    """The refusal of a change that takes a room from `before` to `after` (its field count
    and encoded bytes), or None. Only a change that grows a count past its bound is refused,
    so a room already past one (the limits were lowered) can still shrink."""
    (fields, size), (fields_before, size_before) = after, before
    if fields > limits.fields and fields > fields_before:
        return TooLarge(f"the room would hold {fields} fields; at most {limits.fields}")
    if size > limits.state_bytes and size > size_before:
        return TooLarge(f"the room's state would be {size} bytes; at most {limits.state_bytes}")
    return None


def guard_of(encoded_json: str | None) -> str:
    """A guard that holds while a field's stored JSON text is `encoded_json`."""
    if encoded_json is None:
        return ""
    return hashlib.sha1(encoded_json.encode(), usedforsecurity=False).hexdigest()


class ChangeListener(Protocol):
    """Receives the committed changes of watched rooms (one node's hub)."""

    def on_change(self, committed: CommittedChange) -> None:
        """Called once per change of a watched room, in the order the store received them.

        Order matches rev order per room, but a change may be missing (a dropped feed):
        the listener notices the gap in revs and fills it with changes_since().
        """

    def on_feed_restored(self) -> None:
        """The feed was interrupted and is back; changes in between may have been lost."""


@dataclass(frozen=True)
class RoomSummary:
    """One room as a listing shows it."""

    room: str
    rev: int
    fields: int
    bytes: int  # of the state's field names and JSON values as stored
    changed: float | None  # Unix time of the last commit; None if it was not recorded


@dataclass(frozen=True)
class RoomPage:
    rooms: list[RoomSummary]
    cursor: str | None  # where the next page starts; None once every room was listed


MAX_PAGE = 1000


class StateStore(Protocol):
    """Per-room JSON state with atomic revisioned commits and a feed of committed changes."""

    async def snapshot(self, room: str, *, renew: bool = False) -> Snapshot:
        """The whole state, its rev and that rev's tag, read atomically. Stored fields that
        are not valid JSON are logged and left out. With `renew` (a join), the room's
        retention starts again, as on a commit."""

    async def commit(
        self,
        room: str,
        change: Change,
        *,
        base_rev: int | None = None,
        change_id: str | None = None,
        dedupe_key: str | None = None,
        origin: str | None = None,
        by: Mapping[str, str] | None = None,
        stored: Mapping[str, str] | None = None,
        guards: Mapping[str, str] | None = None,
    ) -> CommittedChange | Conflict | Duplicate | TooLarge | Stale:
        """Apply `change` atomically and publish it to every watcher of the room.

        `stored` gives, for some set fields, the JSON text the state keeps instead of the
        value (a text's merged document; the log and feed carry `change` itself).
        `guards` maps fields to what they must hold for the commit to happen: '-' for
        anything but a stored text, else guard_of() the stored JSON text ('' for absent);
        otherwise nothing changes (Stale). kpk_io/text_commit.py builds both.

        Each commit adds exactly 1 to the room's rev; commits from any number of callers are
        linearised, and the feed carries them in rev order. With `base_rev`, nothing changes
        unless the room is at that rev (Conflict otherwise). A `dedupe_key` already committed
        to the room within dedupe_window() revs changes nothing (Duplicate, with its rev), so a
        change sent again after a lost acknowledgement is applied once. `change_id` and
        `origin` (the sender's socket id) and `by` (who made it) are kept with the change in
        the log and the feed.

        The log keeps the newest `history` changes whose encoded size stays within
        `history_bytes`, and never fewer than the newest one. With a retention (`room_ttl`),
        a room with no commit and no renewing snapshot for that long is forgotten (rev 0,
        empty state); a commit starts its time again, and a watched room is kept while it
        stays watched (its members must not see it start again under them).

        A change after which the room would hold more than the store's Limits allow
        (`fields`, or `state_bytes` of field names and JSON values), and more than before,
        changes nothing (TooLarge); the check and the commit are one atomic step.

        Raises StoreUnavailable when the store cannot be reached or does not answer in time;
        the change may then have been committed all the same.
        """

    async def changes_since(
        self, room: str, since: int, tag: str | None = None
    ) -> list[CommittedChange] | None:
        """Every change after rev `since`, in order; None when they are no longer all kept,
        or when `tag` is given and is not the tag of the change at `since` (the history
        since then was rewritten, so only the whole state is right)."""

    async def list_rooms(self, cursor: str | None = None, limit: int = 100) -> RoomPage:
        """A page of at most `limit` (1 to MAX_PAGE) rooms that have a commit, from `cursor`
        (None for the first page, else a page's cursor). Following the cursors until it is
        None lists every room that exists throughout, at least once, in no set order; a
        page may hold fewer than `limit`, even none, before the end. Raises ValueError for
        a cursor this store did not make."""

    async def watch(self, room: str) -> None:
        """Deliver the room's future commits to the listener; returns once that is in force."""

    async def unwatch(self, room: str) -> None:
        """Stop delivering the room's commits."""

    def set_listener(self, listener: ChangeListener) -> None:
        """Where watched rooms' commits go."""

    async def ping(self) -> None:
        """Return if the store answers; raise StoreUnavailable otherwise."""

    async def close(self) -> None:
        """Release connections and stop the feed."""
