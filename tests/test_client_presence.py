"""The Python client's presence and signals, against two real nodes (and the join-time
ordering rule on its own)."""

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
        room_a.presence.on_presence(lambda kind, ms: seen.append((kind, [m.user for m in ms])))
        room_a.presence.on_signal(lambda sender, data: signals.append((sender, data)))
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


def test_events_during_a_join_apply_on_top_of_its_list() -> None:
    presence = Presence("r")
    one: dict[str, Any] = {"id": "1", "user": "u1", "name": None, "meta": {}}
    two: dict[str, Any] = {"id": "2", "user": "u2", "name": None, "meta": {}}
    presence.joining()
    presence.event({"room": "r", "left": [one]})  # read before it left: still listed
    presence.event({"room": "r", "joined": [two]})  # also in the list: harmless
    presence.event({"room": "r", "updated": [{**two, "meta": {"c": 1}}]})
    assert presence.members == []
    presence.joined({"members": [one, two], "member": two})
    assert [(m.id, m.meta) for m in presence.members] == [("2", {"c": 1})]
