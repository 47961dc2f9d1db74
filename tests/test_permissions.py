"""Room patterns: exact IDs, PREFIX/* and *, compared as plain strings."""

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from kpk_io.permissions import Permissions, admits

segment = st.text(min_size=1, max_size=8).filter(lambda s: "/" not in s)
room_id = st.text(min_size=1, max_size=40)


def test_prefix_pattern_admits_rooms_below_it_only() -> None:
    assert admits("org/a/*", "org/a/x")
    assert admits("org/a/*", "org/a/x/y")
    for outside in ("org/a", "org/ab/x", "org/ab", "org/a%2Fx", "org%2Fa/x", "org/A/x",
                    "ORG/a/x", " org/a/x", "org\uff0fa/x", "org/a\u200b/x", "xorg/a/x"):
        assert not admits("org/a/*", outside), outside


def test_exact_pattern_admits_that_id_only() -> None:
    assert admits("kpk/notes/acme/q1", "kpk/notes/acme/q1")
    for other in ("kpk/notes/acme/q1/", "kpk/notes/acme/q1 ", "kpk/notes/acme/q",
                  "KPK/notes/acme/q1"):
        assert not admits("kpk/notes/acme/q1", other)
    composed = unicodedata.normalize("NFC", "caf\u00e9")
    assert not admits(composed, unicodedata.normalize("NFD", composed))


def test_star_admits_every_room_and_star_inside_is_literal() -> None:
    assert admits("*", "anything at all")
    assert not admits("org/*/x", "org/a/x")
    assert admits("org/*/x", "org/*/x")


def test_read_rooms_read_only() -> None:
    permissions = Permissions(write=("w/*",), read=("r/*",))
    assert permissions.can_read("r/1") and not permissions.can_write("r/1")
    assert permissions.can_read("w/1") and permissions.can_write("w/1")
    assert not permissions.can_read("x") and not Permissions().can_read("x")


@given(st.lists(segment, min_size=1, max_size=4), room_id)
def test_a_prefix_pattern_never_admits_a_room_outside_its_prefix(
    segments: list[str], room: str
) -> None:
    prefix = "/".join(segments)
    assert admits(prefix + "/*", room) == room.startswith(prefix + "/")


@given(st.lists(segment, min_size=1, max_size=4), segment, room_id)
def test_a_look_alike_of_the_prefix_is_never_admitted(
    segments: list[str], extra: str, rest: str
) -> None:
    prefix = "/".join(segments)
    # The prefix's last segment with more characters, and the prefix itself, are outside.
    assert not admits(prefix + "/*", prefix + extra + "/" + rest)
    assert not admits(prefix + "/*", prefix)


@given(room_id, room_id)
def test_an_exact_pattern_admits_only_itself(pattern: str, room: str) -> None:
    if pattern != "*" and not pattern.endswith("/*"):
        assert admits(pattern, room) == (pattern == room)
