"""Which rooms a token admits: the `rooms` (join and write) and `read_rooms` (join and read)
patterns of its claims.

A pattern is an exact room ID, `PREFIX/*` for every room whose ID starts with `PREFIX/`, or
`*` for every room. Matching compares the room ID exactly as it was joined (after
kpk_io.rooms.check_room) with plain string operations: nothing is decoded, normalised or
case-folded on either side, so no spelling of an ID reaches a room outside its pattern.
"""

from collections.abc import Iterable
from dataclasses import dataclass

ANY = "*"
_PREFIX_SUFFIX = "/*"


def admits(pattern: str, room: str) -> bool:
    """Whether one pattern admits `room`: `org/a/*` admits `org/a/x` and `org/a/x/y`, but
    neither `org/a` nor `org/ab/x`."""
    if pattern == ANY:
        return True
    if pattern.endswith(_PREFIX_SUFFIX):
        # The prefix keeps its slash: "org/a/" never matches "org/ab/...".
        return room.startswith(pattern[:-1])
    return room == pattern


def any_admits(patterns: Iterable[str], room: str) -> bool:
    return any(admits(pattern, room) for pattern in patterns)


@dataclass(frozen=True)
class Permissions:
    """What one identity may do in which rooms."""

    write: tuple[str, ...] = ()
    read: tuple[str, ...] = ()

    def can_read(self, room: str) -> bool:
        return any_admits(self.write, room) or any_admits(self.read, room)

    def can_write(self, room: str) -> bool:
        return any_admits(self.write, room)

    @property
    def every_room(self) -> bool:
        """Whether every room is readable (the pattern `*`): needed to list rooms."""
        return ANY in self.write or ANY in self.read


FULL_ACCESS = Permissions(write=(ANY,))
