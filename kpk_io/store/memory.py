"""In-process state store: the embedded default for one process, and the reference in tests."""

import json
from collections import deque
from dataclasses import dataclass, field

from kpk_io.change import Change, CommittedChange, Snapshot, encode_json
from kpk_io.store.base import (
    DEFAULT_HISTORY,
    ChangeListener,
    Conflict,
    Duplicate,
    continuing,
    dedupe_window,
    new_tag,
)


@dataclass
class _Room:
    rev: int = 0
    # Values are kept as JSON text, as Redis keeps them, so callers never share objects.
    fields: dict[str, str] = field(default_factory=dict)
    log: deque[CommittedChange] = field(default_factory=deque)
    ids: dict[str, int] = field(default_factory=dict)  # dedupe key -> rev, oldest first


class MemoryStateStore:
    """StateStore kept in this process; lost when it exits."""

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        self._history = history
        self._dedupe_window = dedupe_window(history)
        self._rooms: dict[str, _Room] = {}
        self._watched: set[str] = set()
        self._listener: ChangeListener | None = None

    async def snapshot(self, room: str) -> Snapshot:
        data = self._rooms.get(room) or _Room()
        state = {name: json.loads(text) for name, text in data.fields.items()}
        return Snapshot(data.rev, state, data.log[-1].tag if data.log else None)

    async def commit(
        self,
        room: str,
        change: Change,
        *,
        base_rev: int | None = None,
        change_id: str | None = None,
        dedupe_key: str | None = None,
        origin: str | None = None,
    ) -> CommittedChange | Conflict | Duplicate:
        data = self._rooms.setdefault(room, _Room())
        if dedupe_key is not None and dedupe_key in data.ids:
            rev = data.ids[dedupe_key]
            return Duplicate(rev, next((c.tag for c in data.log if c.rev == rev), None))
        if base_rev is not None and base_rev != data.rev:
            return Conflict(data.rev)
        encoded = {name: encode_json(value) for name, value in change.set.items()}
        if change.replace:
            data.fields.clear()
        for name in change.unset:
            data.fields.pop(name, None)
        data.fields.update(encoded)
        data.rev += 1
        copied = {name: json.loads(text) for name, text in encoded.items()}
        stored = Change(copied, change.unset, change.replace)
        prev = data.log[-1].tag if data.log else ""
        committed = CommittedChange(room, data.rev, stored, change_id, origin, new_tag(), prev)
        data.log.append(committed)
        while len(data.log) > self._history:
            data.log.popleft()
        if dedupe_key is not None:
            data.ids[dedupe_key] = data.rev
        while data.ids and next(iter(data.ids.values())) <= data.rev - self._dedupe_window:
            del data.ids[next(iter(data.ids))]
        if room in self._watched and self._listener is not None:
            self._listener.on_change(committed)
        return committed

    async def changes_since(
        self, room: str, since: int, tag: str | None = None
    ) -> list[CommittedChange] | None:
        data = self._rooms.get(room) or _Room()
        if since > data.rev:
            return None
        return continuing([entry for entry in data.log if entry.rev >= since], since, tag,
                          data.rev)

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
