"""A text field in the Python client: a pycrdt Y.Text whose edits become room changes.

Each local transaction on the document is sent as the field's Yjs update (merged with the
other unsent edits by merge_changes); edits of other members arrive as updates and are
applied to the same document, so local and remote edits merge character by character.

Besides its document each field keeps `confirmed`: the server's document as far as this
client knows (the server's updates and our acknowledged edits). When the server's document
no longer holds it (the field was unset, replaced away or made plain, or Redis lost the room)
edits of the old document would build on characters the server lacks (`text_stale`), so the
field starts over from the server's document, and what was typed here and not acknowledged
(the difference between `confirmed` and the document) is typed again on top: no character
typed is lost. room.text(field) then returns the new document's Y.Text; edits made on the
old one are carried over to it.
"""

import asyncio
from collections.abc import Callable, Mapping

import pycrdt

from kpk_io.change import JSON, Change, State
from kpk_io.text import ROOT, decode_update, encode_update, merge_text_updates
from kpk_io.text_check import InvalidText, check_update


def difference(before: str, after: str) -> tuple[int, int, str]:
    """Where `before` and `after` differ: (at, removed, inserted), one replaced range."""
    at, common = 0, min(len(before), len(after))
    while at < common and before[at] == after[at]:
        at += 1
    tail = 0
    while tail < common - at and before[-1 - tail] == after[-1 - tail]:
        tail += 1
    return at, len(before) - at - tail, after[at:len(after) - tail]


def clocks_of(update: str) -> dict[int, int]:
    """The state vector of a base64 update's structs ({} when it is not one)."""
    try:
        return check_update(decode_update(update))
    except InvalidText:
        return {}


class RoomText:
    """One text field of a joined room, bound to its document."""

    def __init__(self, field: str, send: Callable[[Change], None]) -> None:
        self.field = field
        self._send = send
        self._applying = False
        # Documents started over from, still forwarding edits made on them.
        self._retired: list[tuple[pycrdt.Doc[pycrdt.Text], pycrdt.Subscription]] = []
        self._start(None)

    def _start(self, merged: str | None) -> None:
        self.doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
        self.text = self.doc.get(ROOT, type=pycrdt.Text)
        self.confirmed: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
        self._confirmed_text = self.confirmed.get(ROOT, type=pycrdt.Text)
        self._unsent: list[bytes] = []
        self._subscription = self.doc.observe(self._on_transaction)
        if merged is not None:
            self.apply(merged)

    def __str__(self) -> str:
        return str(self.text)

    def apply(self, update: str) -> None:
        """Merge an update (base64) from the server: another member's edit, or the whole
        merged document of a join or sync."""
        data = decode_update(update)
        self._applying = True
        try:
            self.doc.apply_update(data)
        finally:
            self._applying = False
        self.confirmed.apply_update(data)

    def acknowledged(self, update: str) -> None:
        """Our edit `update`, acknowledged: the server holds it now, unless it was made on
        a document this field has since started over from (another client id)."""
        if set(clocks_of(update)) <= {self.doc.client_id}:
            self.confirmed.apply_update(decode_update(update))

    def made_here(self, update: str) -> bool:
        """Whether `update` was made on the current document (not one started over from)."""
        return set(clocks_of(update)) <= {self.doc.client_id}

    def holds(self, merged: str | None) -> bool:
        """Whether the server's document `merged` holds everything confirmed here."""
        theirs = {} if merged is None else clocks_of(merged)
        mine = clocks_of(encode_update(self.confirmed.get_update()))
        return all(theirs.get(client, 0) >= clock for client, clock in mine.items())

    def start_over(self, merged: str | None, *, retype: bool = True) -> None:
        """Start from the server's document `merged` (None: no text), then type again what
        was typed here and not acknowledged (`retype` False: nothing, after our own unset).
        Edits made later on the old document's Y.Text (a caller still holding it) go on to
        the new one."""
        local, confirmed = str(self.text), str(self._confirmed_text)
        self._retire()
        self._start(merged)
        if retype:
            self._edit(*difference(confirmed, local))

    def _edit(self, at: int, removed: int, inserted: str) -> None:
        """Replace `removed` characters at `at` with `inserted` (clamped to the text)."""
        at = min(at, len(self.text))
        removed = min(removed, len(self.text) - at)
        if not removed and not inserted:
            return
        with self.doc.transaction():  # sent as an edit of the current document
            if removed:
                del self.text[at:at + removed]
            if inserted:
                self.text.insert(at, inserted)

    def _retire(self) -> None:
        old, text = self.doc, self.text
        old.unobserve(self._subscription)
        last = [str(text)]

        def forward() -> None:
            now = str(text)
            at, removed, inserted = difference(last[0], now)
            last[0] = now
            self._edit(at, removed, inserted)

        def on_transaction(event: pycrdt.TransactionEvent) -> None:
            if event.update and event.update != b"\x00\x00":
                asyncio.get_running_loop().call_soon(forward)

        self._retired.append((old, old.observe(on_transaction)))

    def replace(self, content: str) -> None:
        """Replace the whole content, as one edit."""
        with self.doc.transaction():
            del self.text[:]
            self.text += content

    def _on_transaction(self, event: pycrdt.TransactionEvent) -> None:
        if self._applying or not event.update or event.update == b"\x00\x00":
            return  # a remote edit, or a transaction that changed nothing
        # The document cannot be read inside its own callback: send once it is closed.
        self._unsent.append(event.update)
        if len(self._unsent) == 1:
            asyncio.get_running_loop().call_soon(self._send_unsent, self._unsent)

    def _send_unsent(self, unsent: list[bytes]) -> None:
        if unsent is not self._unsent:
            return  # made on a document this field has started over from
        update, self._unsent = pycrdt.merge_updates(*unsent), []
        edit = {self.field: encode_update(update)}
        self._send(Change({self.field: str(self.text)}, text=edit))


class RoomTexts:
    """The text fields of one room bound with Room.text(), and the documents of the last
    whole state (join, sync) to start new ones from. `forget(field)` takes the field's
    unsent edits of a document started over from out of the room's pending change."""

    def __init__(
        self, send: Callable[[Change], None], forget: Callable[[str], None] = lambda _: None
    ) -> None:
        self._send = send
        self._forget = forget
        self._bound: dict[str, RoomText] = {}
        self._merged: dict[str, str] = {}

    @property
    def bound(self) -> tuple[str, ...]:
        return tuple(self._bound)

    def text(self, field: str, current: JSON) -> pycrdt.Text:
        handle = self._bound.get(field)
        if handle is None:
            handle = self._bound[field] = RoomText(field, self._send)
            if field in self._merged:
                handle.apply(self._merged[field])
            elif isinstance(current, str) and current:
                handle.text += current  # sent as the text's first edit
        return handle.text

    def show(self, view: State) -> State:
        """`view` with each bound text's string: its document holds every edit received. A
        field whose value is not a string (set by another member) shows that value."""
        for name, handle in self._bound.items():
            if isinstance(view.get(name), str):
                view[name] = str(handle)
        return view

    def set(self, field: str, value: JSON) -> bool:
        """A set of a bound text with a string edits it (as the server would); True then.
        Any other value makes the field plain: its document starts over, empty."""
        handle = self._bound.get(field)
        if handle is None:
            return False
        if not isinstance(value, str):
            self.removed((field,))
            return False
        handle.replace(value)
        return True

    def removed(self, fields: tuple[str, ...] | None = None) -> None:
        """Our own unset or replace (None: every field) removes these texts."""
        for name, handle in self._bound.items():
            if fields is None or name in fields:
                self._merged.pop(name, None)
                self._forget(name)
                handle.start_over(None, retype=False)

    def _start_over(self, name: str, merged: str | None) -> None:
        self._forget(name)
        self._bound[name].start_over(merged)

    def took_whole(self, ack: Mapping[str, JSON]) -> None:
        """Merge a whole state's texts into the bound documents (idempotent: Yjs); a field
        whose server document lost what was confirmed here starts over from it."""
        texts = ack.get("texts")
        self._merged = {k: v for k, v in texts.items() if isinstance(v, str)} if isinstance(
            texts, dict) else {}
        for name, handle in list(self._bound.items()):
            merged = self._merged.get(name)
            if not handle.holds(merged):  # unset, replaced or lost while we were away
                self._start_over(name, merged)
            elif merged is not None:
                handle.apply(merged)

    def took_change(self, change: Change) -> None:
        """A committed change of another member: text edits merge; a bound text it unsets,
        replaces away or makes plain starts over, empty."""
        for name in list(self._bound):
            removed = name in change.unset or (change.replace and name not in change.set)
            if name not in change.text and (removed or name in change.set):
                self._merged.pop(name, None)
                self._start_over(name, None)
        self.took(change.text)

    def took(self, text: Mapping[str, str]) -> None:
        """Merge committed text edits (another member's, or the server's edit made of a set
        of ours, from its ack); kept for fields not bound yet, so text() starts current."""
        for name, update in text.items():
            if name in self._bound:
                self._bound[name].apply(update)
            else:
                known = self._merged.get(name)
                self._merged[name] = update if known is None else merge_text_updates(known, update)

    def acknowledged(self, change: Change) -> None:
        """Our change, acknowledged: its text edits are in the server's documents."""
        for name, update in change.text.items():
            if name in self._bound:
                self._bound[name].acknowledged(update)

    def stale(self, change: Change) -> None:
        """The server refused `change` as text_stale (after a sync brought what it lacked):
        each text it edits on a current document starts over from what is confirmed."""
        for name, update in change.text.items():
            handle = self._bound.get(name)
            if handle is not None and handle.made_here(update):
                self._start_over(name, encode_update(handle.confirmed.get_update()))
