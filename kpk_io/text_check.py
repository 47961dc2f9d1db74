"""A strict reading of a text edit (a Yjs update, encoding v1) before pycrdt sees it.

pycrdt (yrs) trusts the counts an update starts with: a few random bytes announcing billions of
clients or structs cost it seconds of CPU, some never return, and the call holds the event
loop. So every edit is first read here, in time linear in its size: each count must fit in
the bytes left, lengths and clocks are bounded, and only what a Y.Text named "text" is made
of may appear (garbage-collected and skipped ranges, items holding deleted runs, strings,
embeds and formats whose parent is the root "text"). Anything else is InvalidText.

The format is Yjs' UpdateEncoderV1 / lib0 encoding: varuints of 7 bits per byte, strings as
a varuint byte length and UTF-8.
"""

ROOT = "text"  # the name of the Y.Text in each text field's document


class InvalidText(ValueError):
    """An edit that is not a base64 Yjs update (v1) of a text."""


class StaleText(InvalidText):
    """An edit made on a document the server no longer holds (the text was unset, replaced
    or lost since): it builds on characters the stored document lacks, so merging it would
    keep it pending and drop it."""


_MAX_VARUINT = 2**53 - 1  # what JavaScript's lib0 can write
_MAX_LENGTH = 2**32  # of a struct, a deleted run or a delete-set range
# Item content kinds (the low 5 bits of an item's info byte) a Y.Text may hold.
_DELETED, _STRING, _EMBED, _FORMAT = 1, 4, 5, 6
_GC, _SKIP = 0, 10


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.at

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise InvalidText("a Yjs update ends too early")
        value = self.data[self.at]
        self.at += 1
        return value

    def varuint(self, at_most: int = _MAX_VARUINT) -> int:
        value, shift = 0, 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if value > at_most:
                raise InvalidText("a Yjs update holds a number out of range")
            if byte < 0x80:
                return value
            shift += 7

    def count(self, per_item: int = 1) -> int:
        """A number of things that follow, each at least `per_item` bytes."""
        return self.varuint(self.left // per_item)

    def string(self) -> str:
        size = self.count()
        raw = self.data[self.at:self.at + size]
        self.at += size
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidText("a Yjs update holds a string that is not UTF-8") from None


def check_update(data: bytes) -> dict[int, int]:
    """Raise InvalidText unless `data` is a Yjs v1 update of a text as kpk-io keeps it;
    returns the clock each of its clients' structs reach (a state vector)."""
    reader = _Reader(data)
    reaches: dict[int, int] = {}
    for _ in range(reader.count(3)):  # clients: struct count, client and clock each
        structs = reader.count(3)
        client = reader.varuint()
        clock = reader.varuint()
        for _ in range(structs):
            clock += _struct(reader)
            if clock > _MAX_VARUINT:
                raise InvalidText("a Yjs update's clock is out of range")
        if structs:
            reaches[client] = max(reaches.get(client, 0), clock)
    for _ in range(reader.count(2)):  # the delete set: per client, ranges
        reader.varuint()
        for _ in range(reader.count(2)):
            reader.varuint()
            reader.varuint(_MAX_LENGTH)
    if reader.left:
        raise InvalidText("a Yjs update has bytes after its end")
    return reaches


def read_state_vector(data: bytes) -> dict[int, int]:
    """A Yjs state vector (pycrdt Doc.get_state()) as {client: clock}."""
    reader = _Reader(data)
    return {reader.varuint(): reader.varuint() for _ in range(reader.count(2))}


def _struct(reader: _Reader) -> int:
    """Read one struct; returns its length (clocks it takes)."""
    info = reader.byte()
    kind = info & 0x1F
    if kind in (_GC, _SKIP):
        return reader.varuint(_MAX_LENGTH)
    if info & 0x80:  # origin: the item to the left
        reader.varuint()
        reader.varuint()
    if info & 0x40:  # right origin
        reader.varuint()
        reader.varuint()
    if not info & 0xC0:  # no origins: the parent is named
        if reader.varuint(1) != 1 or reader.string() != ROOT:
            raise InvalidText(f"a text edit may only change the root Y.Text {ROOT!r}")
        if info & 0x20:
            raise InvalidText("a text edit holds a map entry")
    return _content(reader, kind)


def _content(reader: _Reader, kind: int) -> int:
    if kind == _DELETED:
        return max(1, reader.varuint(_MAX_LENGTH))
    if kind == _STRING:
        return max(1, len(reader.string().encode("utf-16-le")) // 2)
    if kind == _EMBED:
        reader.string()
        return 1
    if kind == _FORMAT:
        reader.string()
        reader.string()
        return 1
    raise InvalidText(f"a text edit holds content of kind {kind}, which a Y.Text never does")
