"""tests/client_vectors.json against the Python client; web/test/client-vectors.test.js runs
the same cases against the browser client."""

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pycrdt
import pytest

from kpk_io.change import Change, CommittedChange, merge_changes, update_payload
from kpk_io.client_error import is_retryable
from kpk_io.client_text import RoomTexts
from kpk_io.protocol import ErrorCode
from kpk_io.room_state import RoomChange, RoomState
from kpk_io.rooms import InvalidRoom, check_room
from kpk_io.text import ROOT, decode_update

SPEC = json.loads((Path(__file__).parent / "client_vectors.json").read_text(encoding="utf-8"))
Case = dict[str, Any]


def _cases(section: str) -> list[Case]:
    cases: list[Case] = SPEC[section]["cases"]
    return cases


def _change(body: dict[str, Any]) -> Change:
    fields, unset = dict(body.get("set", {})), tuple(body.get("unset", []))
    return Change(fields, unset, body.get("replace", False), dict(body.get("text", {})))


def _written(change: Change | None) -> dict[str, Any] | None:
    """A change as the vectors write it: only what it does."""
    if change is None:
        return None
    body: dict[str, Any] = {}
    if change.set:
        body["set"] = dict(change.set)
    if change.unset:
        body["unset"] = list(change.unset)
    if change.replace:
        body["replace"] = True
    if change.text:
        body["text"] = dict(change.text)
    return body


@pytest.mark.parametrize("case", _cases("apply"), ids=lambda c: c["name"])
def test_apply(case: Case) -> None:
    state = copy.deepcopy(case["state"])
    _change(case["change"]).apply_to(state)
    assert state == case["after"]


@pytest.mark.parametrize("case", _cases("payload"), ids=lambda c: c["name"])
def test_payload(case: Case) -> None:
    edits = [_change(edit) for edit in case["edits"]]
    merged = edits[0]
    for edit in edits[1:]:
        merged = merge_changes(merged, edit)
    assert _written(merged) == case["merged"]
    assert update_payload("r", "c-1", merged, case.get("rev")) == case["payload"]


@pytest.mark.parametrize("case", _cases("from_wire"), ids=lambda c: c["name"])
def test_from_wire(case: Case) -> None:
    if case.get("refused"):
        with pytest.raises(ValueError, match="not a change"):
            CommittedChange.from_wire("r", case["wire"])
        return
    committed = CommittedChange.from_wire("r", case["wire"])
    read: dict[str, Any] = {
        "rev": committed.rev,
        "set": dict(committed.change.set),
        "unset": list(committed.change.unset),
        "replace": committed.change.replace,
    }
    if committed.change.text:
        read["text"] = dict(committed.change.text)
    for key in ("id", "tag", "prev"):
        if getattr(committed, key) is not None:
            read[key] = getattr(committed, key)
    assert read == case["committed"]
    assert committed.room == "r"


@pytest.mark.parametrize("case", _cases("rooms"), ids=lambda c: repr(c["room"])[:40])
def test_rooms(case: Case) -> None:
    if case["ok"]:
        assert check_room(case["room"]) == case["room"]
    else:
        with pytest.raises(InvalidRoom):
            check_room(case["room"])


@pytest.mark.parametrize("case", _cases("retryable"), ids=lambda c: c["code"])
def test_retryable(case: Case) -> None:
    assert is_retryable(case["code"]) is case["retryable"]


def test_retryable_covers_every_error_code() -> None:
    listed = {case["code"] for case in _cases("retryable")}
    assert {code.value for code in ErrorCode} <= listed


def _step(room: RoomState, step: Case) -> tuple[list[RoomChange], bool | None]:
    """Drive `room` by one step; returns what listeners hear and, after a join, whether a
    sync must follow."""
    kind = next(key for key in step if key != "expect")
    args = step[kind]
    if kind == "edit":
        room.edit(_change(args))
    elif kind == "send":
        room.send(args["id"])
    elif kind == "ack":
        return room.acknowledged(args["id"], args["rev"], args.get("tag")), None
    elif kind == "drop":
        room.drop(args["id"])
    elif kind == "remote":
        return room.remote(CommittedChange.from_wire("r", args["wire"])), None
    elif kind == "sync_changes":
        applied = [room.remote(CommittedChange.from_wire("r", body)) for body in args["changes"]]
        return [change for part in applied for change in part], None
    elif kind in ("sync_state", "join"):
        state = copy.deepcopy(args["state"])
        if kind == "join":
            return room.joined(args["rev"], state, args.get("tag"))
        return room.reset(args["rev"], state, args.get("tag")), None
    elif kind == "joining":
        room.joining()
    elif kind == "left":
        room.left()
    else:
        assert kind == "disconnect", kind
    return [], None


def _heard(change: RoomChange) -> dict[str, Any]:
    heard: dict[str, Any] = {"rev": change.rev}
    if change.id is not None:
        heard["id"] = change.id
    if change.reset:
        heard["reset"] = True
    return heard


@pytest.mark.parametrize("case", _cases("transitions"), ids=lambda c: c["name"])
def test_transitions(case: Case) -> None:
    room = RoomState("r")
    for number, step in enumerate(case["steps"]):
        applied, needs_sync = _step(room, step)
        seen: dict[str, Any] = {
            "confirmed": room.confirmed,
            "rev": room.rev,
            "tag": room.tag,
            "view": room.view,
            "pending": _written(room.pending),
            "in_flight": [entry.id for entry in room.in_flight],
            "gap": room.has_gap,
            "applied": [_heard(change) for change in applied],
            "needs_sync": needs_sync,
        }
        for key, expected in step["expect"].items():
            assert seen[key] == expected, f"step {number} ({step}): {key}"


@pytest.mark.parametrize("case", _cases("texts"), ids=lambda c: c["name"][:60])
async def test_texts(case: Case) -> None:
    sent: list[Change] = []
    forgotten: list[str] = []
    acked = 0
    texts = RoomTexts(sent.append, forgotten.append)
    state: dict[str, Any] = {}
    for number, step in enumerate(case["steps"]):
        kind = next(key for key in step if key != "expect")
        args, shown = step[kind], None
        if kind == "whole":
            state = copy.deepcopy(args["state"])
            texts.took_whole(args)
        elif kind == "bind":
            texts.text(args["field"], state.get(args["field"]))
        elif kind == "type":
            texts.text(args["field"], None).insert(args["at"], args["insert"])
        elif kind == "ack":
            for change in sent[acked:]:
                texts.acknowledged(change)
            acked = len(sent)
        elif kind == "remote":
            texts.took_change(CommittedChange.from_wire("r", args["wire"]).change)
        elif kind == "show":
            shown = texts.show(copy.deepcopy(args["view"]))
        else:
            assert kind == "unset", kind
            texts.removed((args["field"],))
        await asyncio.sleep(0)  # edits are sent by a callback of the loop's
        seen = {"sent": len(sent), "forgotten": forgotten, "shown": shown}
        if sent and sent[-1].text:
            empty: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
            empty.apply_update(decode_update(next(iter(sent[-1].text.values()))))
            seen["last_sent_onto_empty"] = str(empty.get(ROOT, type=pycrdt.Text))
        for key, expected in step["expect"].items():
            actual = str(texts.text("note", None)) if key == "string" else seen.get(key)
            assert actual == expected, f"step {number} ({step}): {key}"
