"""A text field in the Python client: a pycrdt Y.Text whose edits become room changes.

Each local transaction on the document is sent as the field's Yjs update (merged with the
other unsent edits by merge_changes); edits of other members arrive as updates and are
applied to the same document, so local and remote edits merge character by character.
"""

import asyncio
from collections.abc import Callable, Mapping

import pycrdt

from kpk_io.change import JSON, Change, State
from kpk_io.text import ROOT, decode_update, encode_update, merge_text_updates


class RoomText:
    """One text field of a joined room, bound to its document."""

    def __init__(self, field: str, send: Callable[[Change], None]) -> None:
        self.field = field
        self._send = send
        self.doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
        self.text = self.doc.get(ROOT, type=pycrdt.Text)
        self._applying = False
        self._unsent: list[bytes] = []
        self._subscription = self.doc.observe(self._on_transaction)

    def __str__(self) -> str:
        return str(self.text)

    def apply(self, update: str) -> None:
        """Merge an update (base64) from the server: another member's edit, or the whole
        merged document of a join or sync."""
        self._applying = True
        try:
            self.doc.apply_update(decode_update(update))
        finally:
            self._applying = False

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
            asyncio.get_running_loop().call_soon(self._send_unsent)

    def _send_unsent(self) -> None:
        update, self._unsent = pycrdt.merge_updates(*self._unsent), []
        edit = {self.field: encode_update(update)}
        self._send(Change({self.field: str(self.text)}, text=edit))


class RoomTexts:
    """The text fields of one room bound with Room.text(), and the documents of the last
    whole state (join, sync) to start new ones from."""

    def __init__(self, send: Callable[[Change], None]) -> None:
        self._send = send
        self._bound: dict[str, RoomText] = {}
        self._merged: dict[str, str] = {}

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
        """`view` with each bound text's string: its document holds every edit received."""
        for name, handle in self._bound.items():
            if name in view:
                view[name] = str(handle)
        return view

    def set(self, field: str, value: JSON) -> bool:
        """A set of a bound text with a string edits it (as the server would); True then."""
        handle = self._bound.get(field)
        if handle is None or not isinstance(value, str):
            return False
        handle.replace(value)
        return True

    def took_whole(self, ack: Mapping[str, JSON]) -> None:
        """Merge a whole state's texts into the bound documents (idempotent: Yjs)."""
        texts = ack.get("texts")
        self._merged = {k: v for k, v in texts.items() if isinstance(v, str)} if isinstance(
            texts, dict) else {}
        for name, merged in self._merged.items():
            if name in self._bound:
                self._bound[name].apply(merged)

    def took(self, text: Mapping[str, str]) -> None:
        """Merge committed text edits (another member's, or the server's edit made of a set
        of ours, from its ack); kept for fields not bound yet, so text() starts current."""
        for name, update in text.items():
            if name in self._bound:
                self._bound[name].apply(update)
            else:
                known = self._merged.get(name)
                self._merged[name] = update if known is None else merge_text_updates(known, update)
