"""The Python client's presence and signals, against two real nodes (and the join-time
ordering rule on its own)."""

import json
from pathlib import Path
from typing import Any

import pytest
import socketio

from kpk_io.broadcast import socketio_channel
from kpk_io.client import KpkClient, KpkError, Member
from kpk_io.client_presence import Presence
from kpk_io.rooms import sio_room
from tests.conftest import StartKpk
from tests.polling import eventually
from tests.processes import KpkServer, RedisServer

ROOM = "kpk/notes/acme/q1/client-presence"


@pytest.fixture
def two_nodes(start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str) -> list[KpkServer]:
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    return [start_kpk(*flags), start_kpk(*flags)]


async def test_members_presence_events_meta_and_signals(
    two_nodes: list[KpkServer], redis_server: RedisServer, key_prefix: str,
) -> None:
    a = KpkClient(two_nodes[0].url)
    b = KpkClient(two_nodes[1].url)
    await a.connect()
    await b.connect()
    try:
        seen: list[tuple[str, list[str]]] = []
        signals: list[tuple[str | None, Any]] = []
        notices: list[Any] = []
        room_a = await a.join(ROOM)
        room_a.on_presence(lambda room, kind, ms: seen.append((kind, [m.user for m in ms])))
        room_a.on_signal(lambda room, sender, data: signals.append((sender, data)))
        a.on("notice", notices.append)
        await room_a.set_meta({"color": "teal"})
        room_b = await b.join(ROOM)
        me_a = room_a.presence.me
        assert me_a is not None and me_a.meta == {"color": "teal"}
        assert me_a in room_b.members and len(room_b.members) == 2
        me_b = room_b.presence.me
        assert me_b is not None
        await eventually(lambda: len(room_a.members) == 2, 10, "b in a's members")
        assert ("joined", [me_b.user]) in seen

        await room_b.set_meta({"typing": True})
        await eventually(
            lambda: Member(me_b.id, me_b.user, None, {"typing": True}) in room_a.members, 10,
            "b's meta",
        )
        await room_b.signal({"caret": 7})
        await eventually(lambda: signals == [(me_b.id, {"caret": 7})], 10, "signal")

        emitter = socketio.AsyncRedisManager(
            redis_server.url, channel=socketio_channel(key_prefix), write_only=True
        )
        await emitter.emit("notice", {"n": 1}, room=sio_room(ROOM))
        await eventually(lambda: notices == [{"n": 1}], 10, "custom event")

        try:
            await room_b.signal("x" * 5000)
            raise AssertionError("a 5 KB signal was accepted")
        except KpkError as exc:
            assert exc.code == "too_large"
        await b.leave(ROOM)
        await eventually(lambda: [m.id for m in room_a.members] == [me_a.id], 10, "b left")
    finally:
        await a.close()
        await b.close()


VECTORS = json.loads((Path(__file__).parent / "presence_vectors.json").read_text())


@pytest.mark.parametrize("vector", VECTORS["cases"], ids=lambda v: v["name"])
def test_presence_vectors(vector: dict[str, Any]) -> None:
    """The member list rule both clients keep (web/test/presence.test.js runs these too)."""
    presence = Presence("r")
    changes: list[tuple[str, list[str]]] = []
    presence.on_presence(lambda kind, ms: changes.append((kind, [m.id for m in ms])))
    presence.joining()
    for body in vector["before"]:
        presence.event(body)
    assert changes == []
    presence.joined(vector["ack"])
    for body in vector["after"]:
        presence.event(body)
    assert {m.id: m.meta for m in presence.members} == vector["members"]
    assert [[kind, ids] for kind, ids in changes] == vector["events"]
    assert presence.me is not None and presence.me.id == vector["ack"]["member"]["id"]
