"""Commits that may touch text fields: merge in Python, commit guarded, retry when stale.

Redis' Lua cannot merge Yjs updates, so a text edit is merged here into the text as it was
read, and committed with a guard on that field (the SHA-1 of its stored value): if another
node committed an edit of the same text in between, nothing is written (Stale) and the edit
is merged again into the newer text. Yjs updates are idempotent and commute, so merging
again loses nothing, and the stored value is always one whole merged (compacted) document,
which join and sync hand out as is. The other choice, appending raw updates and merging on
read, makes every read pay for the whole edit history and needs a second, racy compaction
step; a guard only costs a retry when two nodes edit the same text in the same instant.

A plain `set` is committed with guards that the fields are not texts, so it costs nothing
extra; only when one is (the set must then merge, as a replacement of the text's content)
is the room read.
"""

import dataclasses
from collections.abc import Mapping

from kpk_io.change import Change, CommittedChange, Snapshot
from kpk_io.protocol import ErrorCode, ProtocolError
from kpk_io.store.base import (
    Conflict,
    Duplicate,
    Stale,
    StateStore,
    StoreUnavailable,
    TooLarge,
    guard_of,
)
from kpk_io.text import InvalidText, StaleText, TextDoc, store_value

_ATTEMPTS = 50  # each one lost to another node's edit of the same text in the same instant

Result = CommittedChange | Conflict | Duplicate | TooLarge


@dataclasses.dataclass(frozen=True)
class _Plan:
    change: Change  # what the log and the members get
    stored: dict[str, str]  # merged documents for the hash
    guards: dict[str, str]


async def commit_change(
    store: StateStore, room: str, change: Change, *, base_rev: int | None = None,
    change_id: str | None = None, dedupe_key: str | None = None, origin: str | None = None,
    by: Mapping[str, str] | None = None,
) -> Result:
    """store.commit() for a change that may edit, set or create text fields; raises
    ProtocolError(invalid_update) for a text edit that is not a Yjs update, and
    ProtocolError(text_stale) for one that builds on text the stored document lacks."""
    plan = None if change.text else _Plan(change, {}, {name: "-" for name in change.set})
    for _ in range(_ATTEMPTS):
        if plan is None:
            plan = _merge(change, await store.snapshot(room))
        result = await store.commit(
            room, plan.change, base_rev=base_rev, change_id=change_id, dedupe_key=dedupe_key,
            origin=origin, by=by, stored=plan.stored, guards=plan.guards,
        )
        if not isinstance(result, Stale):
            return result
        plan = None
    raise StoreUnavailable(f"room {room!r}: its texts kept changing while merging an edit")


def _merge(change: Change, snapshot: Snapshot) -> _Plan:
    """The change as committed onto `snapshot`: each text edit merged into its text, each
    string set on a text turned into an edit replacing its content."""
    fields, texts = dict(change.set), {}
    stored, guards = {}, {name: "-" for name in {*change.set, *change.text}}
    for name in {*change.text, *change.set}:
        current = snapshot.texts.get(name)
        edits_text = name in change.text or isinstance(change.set.get(name), str)
        if current is not None:
            guards[name] = guard_of(store_value(current))
        if name not in change.text and (current is None or not edits_text):
            continue  # a plain set: it stays plain, or makes a text plain again
        try:
            doc = TextDoc(current)
            if name in change.text:
                doc.apply(change.text[name])
            else:
                doc.replace(change.set[name])
        except StaleText as exc:
            raise ProtocolError(ErrorCode.TEXT_STALE, f"text {name[:64]!r}: {exc}") from None
        except InvalidText as exc:
            raise ProtocolError(ErrorCode.INVALID_UPDATE, f"text {name[:64]!r}: {exc}") from None
        edit = doc.edit()
        fields[name], texts[name], stored[name] = edit.plain, edit.delta, edit.stored
    return _Plan(dataclasses.replace(change, set=fields, text=texts), stored, guards)
