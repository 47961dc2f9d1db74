"""A text field in the Python client: a pycrdt Y.Text whose edits become room changes.

Each local transaction on the document is sent as the field's Yjs update (merged with the
other unsent edits by merge_changes); edits of other members arrive as updates and are
applied to the same document, so local and remote edits merge character by character.
"""

import asyncio
from collections.abc import Callable

import pycrdt

from kpk_io.change import Change
from kpk_io.text import ROOT, decode_update, encode_update


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
