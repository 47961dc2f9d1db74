"""Text fields: collaborative strings whose concurrent edits merge character by character.

A text field is a Yjs document whose content is the root-level Y.Text named "text". Edits
travel as Yjs updates (encoding v1, base64). The room's hash keeps a text field as the JSON
object {"$text": <base64 of the whole merged document>}: re-encoding the merged document
after each edit is the compaction (Yjs squashes runs of one client's insertions and keeps
only a tombstone range for deleted text), so the stored size follows the text and its
CRDT metadata, not the number of edits. pycrdt (Yjs' Rust port) does the merging.
"""

import base64
import binascii
import json
import logging
from dataclasses import dataclass

import pycrdt

from kpk_io.text_check import ROOT, InvalidText, StaleText, check_update, read_state_vector

log = logging.getLogger(__name__)

__all__ = ["ROOT", "InvalidText", "StaleText", "TextDoc", "TextEdit", "merge_text_updates"]

MARKER = "$text"  # the key of a stored text field's JSON object


def decode_update(encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidText("not base64") from None


def encode_update(update: bytes) -> str:
    return base64.b64encode(update).decode("ascii")


def merge_text_updates(first: str, then: str) -> str:
    """Two base64 updates of one text as one (what Y.mergeUpdates gives)."""
    return encode_update(pycrdt.merge_updates(decode_update(first), decode_update(then)))


def stored_text(encoded_json: str) -> str | None:
    """The merged state of a stored field's JSON text when the field is a text, else None."""
    if not encoded_json.startswith('{"' + MARKER):
        return None
    value = json.loads(encoded_json)
    return _state_of(value)


def _state_of(value: object) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        merged = value.get(MARKER)
        return merged if isinstance(merged, str) else None
    return None


def is_reserved(value: object) -> bool:
    """Whether a plain value looks like a stored text (which a `set` may not write)."""
    return _state_of(value) is not None


def store_value(state: str) -> str:
    """The JSON text the room's hash keeps for a text whose merged state is `state`."""
    return json.dumps({MARKER: state}, separators=(",", ":"))


def split_texts(state: dict[str, object]) -> dict[str, str]:
    """Turn each stored text of `state` (decoded JSON) into its plain string, in place;
    returns their merged states. A stored text that does not decode is left out."""
    texts = {}
    for name, value in list(state.items()):
        merged = _state_of(value)
        if merged is None:
            continue
        try:
            state[name] = TextDoc(merged).plain
            texts[name] = merged
        except InvalidText:
            log.warning("field %r holds a text that does not decode; left out", name)
            del state[name]
    return texts


@dataclass(frozen=True)
class TextEdit:
    """One committed edit: what the hash stores, what members receive, the new string."""

    stored: str  # the JSON text for the hash
    delta: str  # base64 update from the state before to the state after
    plain: str


class TextDoc:
    """One text field's document, loaded from its merged state (None: a new text)."""

    def __init__(self, merged: str | None = None) -> None:
        self._doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
        self._text = self._doc.get(ROOT, type=pycrdt.Text)
        if merged is not None:
            self.apply(merged)
        self._before = self._doc.get_state()

    @property
    def plain(self) -> str:
        return str(self._text)

    def apply(self, update: str) -> None:
        """Merge an edit from a client; checked first (text_check), as pycrdt trusts the
        counts an update announces."""
        data = decode_update(update)
        reaches = check_update(data)
        try:
            self._doc.apply_update(data)
        except ValueError as exc:
            raise InvalidText(f"not a Yjs update (v1): {exc}") from None
        except BaseException as exc:  # a panic in yrs is pyo3's PanicException
            if type(exc).__name__ != "PanicException":
                raise
            raise InvalidText("a Yjs update pycrdt cannot apply") from None
        # pycrdt keeps structs whose origins it lacks pending, and get_update() leaves them
        # out: the edit would be acked and lost. Then the state vector stops short of them.
        state = read_state_vector(self._doc.get_state())
        if any(state.get(client, 0) < clock for client, clock in reaches.items()):
            raise StaleText("the edit builds on text the stored document does not hold")

    def replace(self, content: str) -> None:
        """Replace the whole content, as one edit that merges with concurrent ones."""
        with self._doc.transaction():
            del self._text[:]
            self._text += content

    def edit(self) -> TextEdit:
        merged = encode_update(self._doc.get_update())
        delta = encode_update(self._doc.get_update(self._before))
        return TextEdit(store_value(merged), delta, self.plain)
