"""In-process state store: the embedded default for one process, and the reference in tests."""

import json
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from kpk_io.change import Change, CommittedChange, Snapshot, encode_json
from kpk_io.limits import DEFAULT_LIMITS, Limits, field_bytes
from kpk_io.store.base import (
    DEFAULT_HISTORY,
    DEFAULT_HISTORY_BYTES,
    ChangeListener,
    Conflict,
    Duplicate,
    RoomPage,
    RoomSummary,
    Stale,
    TooLarge,
    continuing,
    dedupe_window,
    exceeds,
    guard_of,
    new_tag,
)
from kpk_io.text import split_texts, stored_text


@dataclass
class _Room:
    rev: int = 0
    # Values are kept as JSON text, as Redis keeps them, so callers never share objects.
    fields: dict[str, str] = field(default_factory=dict)
    log: deque[CommittedChange] = field(default_factory=deque)
    sizes: deque[int] = field(default_factory=deque)  # encoded bytes of each log entry
    log_bytes: int = 0
    ids: dict[str, int] = field(default_factory=dict)  # dedupe key -> rev, oldest first
    changed: float | None = None  # Unix time of the last commit
    expires: float = float("inf")  # time.monotonic() at which the room is forgotten
    size: int = 0  # field_bytes() of every field


def _guards_hold(data: _Room, guards: Mapping[str, str]) -> bool:
    for name, expected in guards.items():
        old = data.fields.get(name)
        if expected == "-":
            if old is not None and stored_text(old) is not None:
                return False
        elif guard_of(old) != expected:
            return False
    return True


def _bounds_after(data: _Room, change: Change, encoded: dict[str, str]) -> tuple[int, int]:
    """The room's field count and encoded size once `change` is applied."""
    count, size = (0, 0) if change.replace else (len(data.fields), data.size)
    gone: set[str] = set()
    for name in () if change.replace else change.unset:
        if name in data.fields and name not in gone:
            count, size = count - 1, size - field_bytes(name, data.fields[name])
            gone.add(name)
    for name, text in encoded.items():
        old = None if change.replace or name in gone else data.fields.get(name)
        count += old is None
        size += field_bytes(name, text) - (0 if old is None else field_bytes(name, old))
    return count, size


class MemoryStateStore:
    """StateStore kept in this process; lost when it exits."""

    def __init__(
        self,
        history: int = DEFAULT_HISTORY,
        *,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
        room_ttl: float = 0,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        """`room_ttl`: seconds without a commit or a join after which a room is forgotten;
        0 keeps rooms for good. `limits` bounds each room's fields and state bytes."""
        self._limits = limits
        self._history = history
        self._history_bytes = history_bytes
        self._ttl = room_ttl if room_ttl > 0 else float("inf")
        self._dedupe_window = dedupe_window(history)
        # Least recently renewed first, so expired rooms are found at the front.
        self._rooms: OrderedDict[str, _Room] = OrderedDict()
        self._watched: set[str] = set()
        self._listener: ChangeListener | None = None

    async def snapshot(self, room: str, *, renew: bool = False) -> Snapshot:
        data = self._live(room)
        if data is None:
            return Snapshot(0, {})
        if renew:
            self._renew(room, data)
        state = {name: json.loads(text) for name, text in data.fields.items()}
        texts = split_texts(state)
        return Snapshot(data.rev, state, data.log[-1].tag if data.log else None, texts)

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
        data = self._live(room) or _Room()  # stored once committed
        if dedupe_key is not None and dedupe_key in data.ids:
            rev = data.ids[dedupe_key]
            return Duplicate(rev, next((c.tag for c in data.log if c.rev == rev), None))
        if base_rev is not None and base_rev != data.rev:
            return Conflict(data.rev)
        if not _guards_hold(data, guards or {}):
            return Stale(data.rev)
        encoded = {name: encode_json(value) for name, value in change.set.items()}
        shown = dict(encoded)
        encoded.update({name: text for name, text in (stored or {}).items() if name in encoded})
        count, size = _bounds_after(data, change, encoded)
        too_large = exceeds(self._limits, (count, size), (len(data.fields), data.size))
        if too_large is not None:
            return too_large
        data.size = size
        if change.replace:
            data.fields.clear()
        for name in change.unset:
            data.fields.pop(name, None)
        data.fields.update(encoded)
        data.rev += 1
        data.changed = time.time()
        copied = {name: json.loads(text) for name, text in shown.items()}
        logged = Change(copied, change.unset, change.replace, dict(change.text))
        prev = data.log[-1].tag if data.log else ""
        committed = CommittedChange(room, data.rev, logged, change_id, origin, new_tag(), prev,
                                    None if by is None else dict(by))
        self._append(data, committed)
        if dedupe_key is not None:
            data.ids[dedupe_key] = data.rev
        while data.ids and next(iter(data.ids.values())) <= data.rev - self._dedupe_window:
            del data.ids[next(iter(data.ids))]
        self._renew(room, data)
        if room in self._watched and self._listener is not None:
            self._listener.on_change(committed)
        return committed

    async def changes_since(
        self, room: str, since: int, tag: str | None = None
    ) -> list[CommittedChange] | None:
        data = self._live(room) or _Room()
        if since > data.rev:
            return None
        return continuing([entry for entry in data.log if entry.rev >= since], since, tag,
                          data.rev)

    async def list_rooms(self, cursor: str | None = None, limit: int = 100) -> RoomPage:
        """In room order; the cursor is the last room of the page before."""
        self._live("")  # drop expired rooms first
        names = sorted(name for name, data in self._rooms.items()
                       if data.rev > 0 and (cursor is None or name > cursor))
        page = [_summary(name, self._rooms[name]) for name in names[:limit]]
        return RoomPage(page, page[-1].room if len(names) > limit else None)

    async def watch(self, room: str) -> None:
        self._watched.add(room)

    async def unwatch(self, room: str) -> None:
        self._watched.discard(room)

    def set_listener(self, listener: ChangeListener) -> None:
        self._listener = listener

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._watched.clear()

    def _append(self, data: _Room, committed: CommittedChange) -> None:
        """Add to the log, then trim it to `history` entries and `history_bytes`, keeping
        the newest entry whatever its size."""
        size = len(encode_json({**committed.to_wire(), "prev": committed.prev}).encode())
        data.log.append(committed)
        data.sizes.append(size)
        data.log_bytes += size
        while len(data.log) > 1 and (
            len(data.log) > self._history or data.log_bytes > self._history_bytes
        ):
            data.log.popleft()
            data.log_bytes -= data.sizes.popleft()

    def _live(self, room: str) -> _Room | None:
        """The room, unless it expired; expired rooms are dropped as they are found, the
        least recently renewed first, so abandoned rooms do not stay in memory. A watched
        room (one with members) is renewed instead, as the Redis store does."""
        now = time.monotonic()
        while self._rooms:
            oldest, data = next(iter(self._rooms.items()))
            if data.expires > now:
                break
            if oldest in self._watched:
                self._renew(oldest, data)
            else:
                del self._rooms[oldest]
        return self._rooms.get(room)

    def _renew(self, room: str, data: _Room) -> None:
        data.expires = time.monotonic() + self._ttl
        self._rooms[room] = data
        self._rooms.move_to_end(room)


def _summary(name: str, data: _Room) -> RoomSummary:
    return RoomSummary(name, data.rev, len(data.fields), data.size, data.changed)
