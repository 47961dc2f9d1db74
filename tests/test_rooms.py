import json
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kpk_io.rooms import (
    InvalidRoom,
    check_room,
    encode_uri_component,
    room_from_path,
    room_of_sio_room,
    sio_room,
)

VECTORS = json.loads((Path(__file__).parent / "room_vectors.json").read_text())["cases"]


@pytest.mark.parametrize("case", VECTORS, ids=lambda c: f"{c['pattern']} {c['path']}")
def test_room_from_path_matches_shared_vectors(case: dict[str, str | None]) -> None:
    assert room_from_path(str(case["pattern"]), str(case["path"])) == case["room"]


@pytest.mark.parametrize(
    "room",
    ["a_b/c", "a/b_c", "x%2Fy", "ünï cödé", "{braces}:colons", "with space", "🎉", "a" * 256,
     "undefined!", "nullable", "room:sid"],
)
def test_valid_rooms_are_kept_as_given(room: str) -> None:
    assert check_room(room) == room


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "string"), (42, "string"), (["a"], "string"), ("", "empty"), ("   ", "empty"),
        ("\t\n", "empty"), ("a" * 257, "256"), ("a\x00b", "control"), ("a\nb", "control"),
        ("a\x7fb", "control"), ("undefined", "placeholder"), ("UNDEFINED", "placeholder"),
        ("Null", "placeholder"), (" null ", "placeholder"),
    ],
)
def test_invalid_rooms_are_refused_with_a_reason(value: object, reason: str) -> None:
    with pytest.raises(InvalidRoom, match=reason):
        check_room(value)


segment = st.text(min_size=1, max_size=6).filter(
    lambda s: s.strip().casefold() not in {"undefined", "null"}
)


@given(st.tuples(segment, segment, segment), st.tuples(segment, segment, segment))
def test_distinct_segments_give_distinct_rooms(a: tuple[str, ...], b: tuple[str, ...]) -> None:
    pattern = "/notes/:org/:project/:page"
    path_a = "/notes/" + "/".join(encode_uri_component(s) for s in a)
    path_b = "/notes/" + "/".join(encode_uri_component(s) for s in b)
    room_a, room_b = room_from_path(pattern, path_a), room_from_path(pattern, path_b)
    assume(len(path_a) <= 256 and len(path_b) <= 256)  # else too long to be a room
    assert room_a is not None and room_b is not None
    assert (room_a == room_b) == (a == b)


def test_underscore_joining_no_longer_collides() -> None:
    pattern = "/kpk/:a/:b"
    assert room_from_path(pattern, "/kpk/a_b/c") != room_from_path(pattern, "/kpk/a/b_c")


def test_socketio_room_names_are_prefixed_and_invertible() -> None:
    name = sio_room("Zx81-AAAB")
    assert name != "Zx81-AAAB"
    assert room_of_sio_room(name) == "Zx81-AAAB"
    assert room_of_sio_room("Zx81-AAAB") is None
