"""The arguments of commit.lua and what its answer means: the one place the Python side
spells them (the script names its ARGV in CommitArgs' order; tests/test_store.py checks)."""

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kpk_io.change import Change, CommittedChange
from kpk_io.limits import Limits
from kpk_io.store.base import Conflict, Duplicate, Stale, TooLarge, exceeds


@dataclass(slots=True)  # not frozen: made for every commit, and a frozen init is slower
class CommitArgs:
    """The fixed ARGV of commit.lua, in order; field/value pairs and unset names follow."""

    base_rev: int | str  # '' for none
    replace_flag: int  # 0 or 1
    history: int  # entries the log keeps at most
    channel: str  # the room's feed channel
    message_head: str  # redis_log.message_head(room)
    entry_body: str  # redis_log.entry_body(...)
    dedupe_key: str
    set_count: int  # how many field/value pairs follow
    dedupe_window: int  # in revs
    tag: str  # of this commit
    history_bytes: int  # the log's bytes at most
    retention_ms: int  # 0 for none
    max_fields: int
    max_state_bytes: int
    guard_count: int  # how many guard pairs follow the field/value pairs

    def argv(
        self, encoded: Sequence[tuple[str, str]], guards: Mapping[str, str], unset: Sequence[str]
    ) -> list[str | int]:
        args: list[str | int] = [getattr(self, name) for name in _ARGV_NAMES]
        for name, text in encoded:
            args += [name, text]
        for name, expected in guards.items():
            args += [name, expected]
        return args + list(unset)


_ARGV_NAMES = tuple(f.name for f in dataclasses.fields(CommitArgs))


def commit_result(
    reply: list[Any],
    room: str,
    change: Change,
    limits: Limits,
    *,
    change_id: str | None,
    origin: str | None,
    tag: str,
    by: Mapping[str, str] | None,
) -> CommittedChange | Conflict | Duplicate | TooLarge | Stale:
    """The script's answer `[status, rev, ...]` as StateStore.commit returns it."""
    status, rev, *rest = reply
    if status == 0:
        return Conflict(rev)
    if status == 2:
        return Duplicate(rev, _text(rest[0]) or None)
    if status == 3:
        # The script found the room growing past a bound; exceeds() says which.
        after, before = (int(rest[1]), int(rest[2])), (int(rest[3]), int(rest[4]))
        return exceeds(limits, after, before) or TooLarge("too large")
    if status == 4:
        return Stale(rev)
    prev = _text(rest[0])
    return CommittedChange(room, rev, change, change_id, origin, tag, prev,
                           None if by is None else dict(by))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
